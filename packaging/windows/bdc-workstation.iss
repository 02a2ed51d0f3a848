; Inno Setup 6 script: per-machine install of the PyInstaller folder dist\bdc-workstation.
; Built by .github/workflows/windows.yml:  iscc /DAppVersion=0.1.0 packaging\windows\bdc-workstation.iss
; Silent install for fleets:  bdc-workstation-setup.exe /VERYSILENT /SUPPRESSMSGBOXES /NORESTART
;   with an IT fleet file:   ... /FLEETCONFIG="\\fileserver\it\bdc\fleet.toml"
; Uninstall keeps every user's local data (their unsent work may be in it).

#ifndef AppVersion
  #define AppVersion "0.0.0"
#endif
#define AppName "BDC Workstation"
#define AppExe "bdc-workstation.exe"
#define ProgId "BDCWorkstation.tel"

[Setup]
AppId={{6F0B7C1E-3B0A-4E0F-9E7A-BDC0C0FFEE01}
AppName={#AppName}
AppVersion={#AppVersion}
AppPublisher=BDC Workstation
DefaultDirName={autopf}\{#AppName}
DefaultGroupName={#AppName}
; Per-machine: every agent who signs in to a shared call-floor PC gets it.
PrivilegesRequired=admin
PrivilegesRequiredOverridesAllowed=
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
OutputDir=..\..\dist
OutputBaseFilename=bdc-workstation-{#AppVersion}-setup
SetupIconFile=..\..\build\icons\bdc-workstation.ico
UninstallDisplayIcon={app}\{#AppExe}
Compression=lzma2/max
SolidCompression=yes
WizardStyle=modern
CloseApplications=yes
; The signing step is configured by the workflow (signtool with the certificate secret).
#ifdef SignTool
SignTool={#SignTool}
#endif

[Files]
Source: "..\..\dist\bdc-workstation\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs
Source: "..\fleet.toml.example"; DestDir: "{app}"; Flags: ignoreversion

[Dirs]
Name: "{commonappdata}\bdc-workstation"

[Icons]
Name: "{group}\{#AppName}"; Filename: "{app}\{#AppExe}"
Name: "{commondesktop}\{#AppName}"; Filename: "{app}\{#AppExe}"; Tasks: desktopicon

[Tasks]
Name: "desktopicon"; Description: "Create a desktop icon"; Flags: unchecked

[Registry]
; tel: and callto: — registered as a CANDIDATE handler (Windows lets only the user or a Group
; Policy default-associations file pick the default; see docs/deploy.md).
Root: HKLM; Subkey: "Software\Classes\{#ProgId}"; ValueType: string; ValueName: ""; ValueData: "BDC Workstation phone link"; Flags: uninsdeletekey
Root: HKLM; Subkey: "Software\Classes\{#ProgId}"; ValueType: string; ValueName: "URL Protocol"; ValueData: ""
Root: HKLM; Subkey: "Software\Classes\{#ProgId}\DefaultIcon"; ValueType: string; ValueName: ""; ValueData: "{app}\{#AppExe},0"
Root: HKLM; Subkey: "Software\Classes\{#ProgId}\shell\open\command"; ValueType: string; ValueName: ""; ValueData: """{app}\{#AppExe}"" ""%1"""
Root: HKLM; Subkey: "Software\BDC Workstation\Capabilities"; ValueType: string; ValueName: "ApplicationName"; ValueData: "{#AppName}"; Flags: uninsdeletekey
Root: HKLM; Subkey: "Software\BDC Workstation\Capabilities"; ValueType: string; ValueName: "ApplicationDescription"; ValueData: "Live lead queue and dialer for the BDC call floor"
Root: HKLM; Subkey: "Software\BDC Workstation\Capabilities\URLAssociations"; ValueType: string; ValueName: "tel"; ValueData: "{#ProgId}"
Root: HKLM; Subkey: "Software\BDC Workstation\Capabilities\URLAssociations"; ValueType: string; ValueName: "callto"; ValueData: "{#ProgId}"
Root: HKLM; Subkey: "Software\RegisteredApplications"; ValueType: string; ValueName: "{#AppName}"; ValueData: "Software\BDC Workstation\Capabilities"; Flags: uninsdeletevalue

[Run]
Filename: "{app}\{#AppExe}"; Parameters: "--self-test"; Flags: runhidden waituntilterminated; StatusMsg: "Checking the installation..."
Filename: "{app}\{#AppExe}"; Description: "Start {#AppName}"; Flags: nowait postinstall skipifsilent

[Code]
// /FLEETCONFIG=path copies IT's fleet file to C:\ProgramData\bdc-workstation\fleet.toml.
procedure CurStepChanged(CurStep: TSetupStep);
var
  Source: String;
begin
  if CurStep = ssPostInstall then
  begin
    Source := ExpandConstant('{param:FLEETCONFIG|}');
    if Source <> '' then
    begin
      if not FileCopy(Source, ExpandConstant('{commonappdata}\bdc-workstation\fleet.toml'), False) then
        MsgBox('Could not copy the fleet configuration from ' + Source, mbError, MB_OK);
    end;
  end;
end;
