@echo off
rem Install or upgrade BDC Workstation silently, per machine, from the folder this script is in:
rem a file share (Group Policy computer startup script), or the package folder (Intune Win32
rem app, SCCM/MECM). Next to it: ONE bdc-workstation-VERSION-setup.exe and, if IT deploys the
rem fleet file this way, fleet.toml. Does nothing when that version is already installed.
rem Exit code: the installer's (0 installed, 7 fleet file unusable; docs/deploy.md), 1 no setup.
setlocal
set "HERE=%~dp0"
set "SETUP="
rem pushd: a UNC share gets a temporary drive letter; the pattern stays free of quotes.
pushd "%HERE%"
for %%f in (bdc-workstation-*-setup.exe) do (
    set "SETUP=%HERE%%%~nxf"
    set "NAME=%%~nf"
)
popd
if not defined SETUP (
    echo no bdc-workstation-*-setup.exe in %HERE%
    exit /b 1
)
for /f "tokens=3 delims=-" %%v in ("%NAME%") do set "VERSION=%%v"
if not defined VERSION (
    echo cannot read the version from %NAME%
    exit /b 1
)
set "INSTALLED="
for /f "tokens=1,3" %%a in ('reg query "HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall\{6F0B7C1E-3B0A-4E0F-9E7A-BDC0C0FFEE01}_is1" /v DisplayVersion /reg:64 2^>nul') do (
    if /i "%%a"=="DisplayVersion" set "INSTALLED=%%b"
)
if "%INSTALLED%"=="%VERSION%" (
    echo BDC Workstation %VERSION% is already installed
    exit /b 0
)
set "FLEET="
if exist "%HERE%fleet.toml" set FLEET=/FLEETCONFIG="%HERE%fleet.toml"
"%SETUP%" /VERYSILENT /SUPPRESSMSGBOXES /NORESTART /LOG="%WINDIR%\Temp\bdc-workstation-install.log" %FLEET%
exit /b %ERRORLEVEL%
