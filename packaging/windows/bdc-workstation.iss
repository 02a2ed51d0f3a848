; Inno Setup 6 script: per-machine install of the PyInstaller folder dist\bdc-workstation.
; Built by .github/workflows/windows.yml:  iscc /DAppVersion=0.1.0 packaging\windows\bdc-workstation.iss
;   (signed when the workflow adds /DSignTool=bdcsign /Sbdcsign=...; see docs/deploy.md)
; Silent install for fleets (exit code 0 = installed; docs/deploy.md lists the others):
;   bdc-workstation-0.1.0-setup.exe /VERYSILENT /SUPPRESSMSGBOXES /NORESTART /LOG="C:\Windows\Temp\bdc-workstation-install.log"
;   with an IT fleet file:   ... /FLEETCONFIG="\\fileserver\it\bdc\fleet.toml"
; Silent uninstall:  "C:\Program Files\BDC Workstation\unins000.exe" /VERYSILENT /SUPPRESSMSGBOXES /NORESTART
; Uninstall keeps every user's local data (their unsent work may be in it) and IT's fleet file.
; tests/packaging/test_windows_recipe.py checks this file's invariants; the workflow compiles it.

#if Ver < EncodeVer(6, 4, 0)
  #error Inno Setup 6.4 or newer is needed (x64compatible, CopyFile)
#endif

#ifndef AppVersion
  #define AppVersion "0.0.0"
#endif
#define AppName "BDC Workstation"
#define AppExe "bdc-workstation.exe"
#define ProgId "BDCWorkstation.tel"
; The folder app/settings.py reads the fleet file from on Windows:
; platformdirs.site_config_dir("bdc-workstation", appauthor=False) = C:\ProgramData\bdc-workstation
#define FleetDir "{commonappdata}\bdc-workstation"

[Setup]
; Never change AppId: it is what makes a newer installer upgrade the installed copy in place
; (and Intune/SCCM detect it: HKLM\...\Uninstall\{6F0B7C1E-3B0A-4E0F-9E7A-BDC0C0FFEE01}_is1).
AppId={{6F0B7C1E-3B0A-4E0F-9E7A-BDC0C0FFEE01}
AppName={#AppName}
AppVersion={#AppVersion}
AppVerName={#AppName} {#AppVersion}
AppPublisher=BDC Workstation
DefaultDirName={autopf}\{#AppName}
DefaultGroupName={#AppName}
DisableProgramGroupPage=yes
; Per-machine: every agent who signs in to a shared call-floor PC gets it. No per-user fallback.
PrivilegesRequired=admin
PrivilegesRequiredOverridesAllowed=
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
MinVersion=10.0
OutputDir=..\..\dist
OutputBaseFilename=bdc-workstation-{#AppVersion}-setup
SetupIconFile=..\..\build\icons\bdc-workstation.ico
UninstallDisplayIcon={app}\{#AppExe}
UninstallDisplayName={#AppName}
Compression=lzma2/max
SolidCompression=yes
WizardStyle=modern
; An upgrade closes a running copy (Restart Manager); an agent's unsent work is kept in the
; encrypted outbox and sent at the next start. Push upgrades outside shift hours.
CloseApplications=yes
RestartApplications=no
ChangesAssociations=yes
; Signing: the workflow defines the sign tool "bdcsign" (signtool with the certificate secret);
; Inno Setup then signs the installer and the uninstaller with it.
#ifdef SignTool
SignTool={#SignTool}
SignedUninstaller=yes
#endif

[InstallDelete]
; Upgrade in place: the previous PyInstaller bundle goes first, so no stale DLL or module of an
; older version is loaded next to the new ones.
Type: filesandordirs; Name: "{app}\_internal"

[Files]
Source: "..\..\dist\bdc-workstation\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs
Source: "..\fleet.toml.example"; DestDir: "{app}"; Flags: ignoreversion
Source: "DefaultAssociations.xml"; DestDir: "{app}"; Flags: ignoreversion

[Dirs]
; The fleet folder stays on uninstall (IT's file in it is configuration, not program).
Name: "{#FleetDir}"; Flags: uninsneveruninstall

[Icons]
Name: "{group}\{#AppName}"; Filename: "{app}\{#AppExe}"
Name: "{commondesktop}\{#AppName}"; Filename: "{app}\{#AppExe}"; Tasks: desktopicon

[Tasks]
Name: "desktopicon"; Description: "Create a desktop icon"; Flags: unchecked

[Registry]
; tel: and callto: — registered as a CANDIDATE handler only (Default Programs: a ProgID, the
; application's Capabilities\URLAssociations and its RegisteredApplications entry). Nothing here
; writes HKCR\tel or a user's UserChoice: Windows 10/11 let only the user, or IT's
; default-associations file (Group Policy, docs/deploy.md), pick the default.
Root: HKLM; Subkey: "Software\Classes\{#ProgId}"; ValueType: string; ValueName: ""; ValueData: "BDC Workstation phone link"; Flags: uninsdeletekey
Root: HKLM; Subkey: "Software\Classes\{#ProgId}"; ValueType: string; ValueName: "FriendlyTypeName"; ValueData: "BDC Workstation phone link"
Root: HKLM; Subkey: "Software\Classes\{#ProgId}"; ValueType: string; ValueName: "URL Protocol"; ValueData: ""
Root: HKLM; Subkey: "Software\Classes\{#ProgId}\DefaultIcon"; ValueType: string; ValueName: ""; ValueData: "{app}\{#AppExe},0"
Root: HKLM; Subkey: "Software\Classes\{#ProgId}\shell\open\command"; ValueType: string; ValueName: ""; ValueData: """{app}\{#AppExe}"" ""%1"""
Root: HKLM; Subkey: "Software\BDC Workstation"; Flags: uninsdeletekeyifempty
Root: HKLM; Subkey: "Software\BDC Workstation\Capabilities"; ValueType: string; ValueName: "ApplicationName"; ValueData: "{#AppName}"; Flags: uninsdeletekey
Root: HKLM; Subkey: "Software\BDC Workstation\Capabilities"; ValueType: string; ValueName: "ApplicationDescription"; ValueData: "Live lead queue and dialer for the BDC call floor"
Root: HKLM; Subkey: "Software\BDC Workstation\Capabilities"; ValueType: string; ValueName: "ApplicationIcon"; ValueData: "{app}\{#AppExe},0"
Root: HKLM; Subkey: "Software\BDC Workstation\Capabilities\URLAssociations"; ValueType: string; ValueName: "tel"; ValueData: "{#ProgId}"
Root: HKLM; Subkey: "Software\BDC Workstation\Capabilities\URLAssociations"; ValueType: string; ValueName: "callto"; ValueData: "{#ProgId}"
Root: HKLM; Subkey: "Software\RegisteredApplications"; ValueType: string; ValueName: "{#AppName}"; ValueData: "Software\BDC Workstation\Capabilities"; Flags: uninsdeletevalue

[Run]
Filename: "{app}\{#AppExe}"; Description: "Start {#AppName}"; Flags: nowait postinstall skipifsilent

[Code]
// Before any file is installed: create the fleet folder, make it writable by administrators and
// SYSTEM only (ProgramData's default lets every user create files in a new folder, so an agent
// could otherwise plant a fleet.toml that unlocks settings), and with /FLEETCONFIG=path copy
// IT's fleet file into it. A missing or uncopyable file stops the install with exit code 7,
// so a deployment tool reports it instead of installing a PC with no fleet settings.

function LockDownFleetFolder(const Dir: String): Boolean;
var
  ResultCode: Integer;
begin
  // SIDs, not names, so it works on every Windows language: SYSTEM, Administrators, Users.
  Result := Exec(ExpandConstant('{sys}\icacls.exe'),
    '"' + Dir + '" /inheritance:r /grant:r *S-1-5-18:(OI)(CI)F *S-1-5-32-544:(OI)(CI)F *S-1-5-32-545:(OI)(CI)RX',
    '', SW_HIDE, ewWaitUntilTerminated, ResultCode) and (ResultCode = 0);
  Log(Format('icacls %s: exit code %d', [Dir, ResultCode]));
end;

function PrepareToInstall(var NeedsRestart: Boolean): String;
var
  Source, Dir, Target: String;
begin
  Result := '';
  Dir := ExpandConstant('{#FleetDir}');
  Source := ExpandConstant('{param:FLEETCONFIG|}');
  if (Source <> '') and not FileExists(Source) then
  begin
    Result := 'The fleet configuration file ' + Source + ' (/FLEETCONFIG) was not found.';
    Exit;
  end;
  if not ForceDirectories(Dir) then
  begin
    Result := 'Could not create the folder ' + Dir + '.';
    Exit;
  end;
  if not LockDownFleetFolder(Dir) then
    Log('Warning: could not restrict the permissions of ' + Dir + '.');
  if Source <> '' then
  begin
    Target := Dir + '\fleet.toml';
    if not CopyFile(Source, Target, False) then
      Result := 'Could not copy the fleet configuration from ' + Source + ' to ' + Target + '.'
    else
      Log('Fleet configuration copied from ' + Source + ' to ' + Target);
  end;
end;
