#!/usr/bin/env bash
# Compile bdc-workstation.iss against a dummy program folder and run the installer under Wine:
# a missing /FLEETCONFIG file stops it (exit 7), a silent install writes the files, the fleet
# file and the tel:/callto: candidate registration, an upgrade replaces the bundle in place under
# the same AppId, a silent uninstall removes the registration and keeps the fleet file.
#
# Not part of `make package` or CI (Wine, Xvfb and Inno Setup are not project dependencies); a
# developer runs it after changing the .iss, and tests/packaging/test_windows_recipe.py runs it
# when BDC_ISCC names ISCC.exe. What Wine cannot tell (the ACL icacls sets, Windows' Default Apps
# honouring the registration, signing) is checked by .github/workflows/windows.yml on Windows.
#
#   ISCC=/path/to/Inno\ Setup\ 6/ISCC.exe xvfb-run -a packaging/windows/check-installer-wine.sh
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
ISCC=${ISCC:?set ISCC to the path of Inno Setup 6 ISCC.exe}
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
WORK=$(mktemp -d)
export WINEPREFIX=${WINEPREFIX:-$WORK/wineprefix} WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
PF="$WINEPREFIX/drive_c/Program Files/BDC Workstation"
PD="$WINEPREFIX/drive_c/ProgramData/bdc-workstation"
APPKEY='HKLM\Software\Microsoft\Windows\CurrentVersion\Uninstall\{6F0B7C1E-3B0A-4E0F-9E7A-BDC0C0FFEE01}_is1'
failures=0
check() { # check DESCRIPTION COMMAND...
    local what=$1; shift
    if "$@"; then echo "ok   $what"; else echo "FAIL $what"; failures=$((failures + 1)); fi
}
reg64() { wine reg query "$@" /reg:64 2>/dev/null | tr -d '\r'; }
has_reg() { # has_reg KEY VALUE-NAME ("" = default) TEXT
    if [ -z "$2" ]; then reg64 "$1" /ve; else reg64 "$1" /v "$2"; fi | grep -qF -- "$3"
}
no_key() { ! wine reg query "$1" /reg:64 >/dev/null 2>&1; }
winpath() { echo "Z:${1//\//\\}"; }

# The scratch tree mirrors the repository paths the .iss names (..\..\dist, ..\..\build\icons).
mkdir -p "$WORK/packaging/windows" "$WORK/dist/bdc-workstation/_internal" "$WORK/build/icons"
cp "$ROOT"/packaging/windows/* "$WORK/packaging/windows/"
cp "$ROOT/packaging/fleet.toml.example" "$WORK/packaging/"
cp "$ROOT/packaging/fleet.toml.example" "$WORK/fleet.toml"
QT_QPA_PLATFORM=offscreen "$PYTHON" -c "import sys; sys.path.insert(0, '$ROOT/packaging');
import make_icons; from pathlib import Path; sys.exit(make_icons.main(Path('$WORK/build/icons')))" \
    >/dev/null || exit 1
printf 'MZ dummy program\n' >"$WORK/dist/bdc-workstation/bdc-workstation.exe"
printf 'dummy\n' >"$WORK/dist/bdc-workstation/_internal/base_library.zip"

cd "$WORK" || exit 1
wineboot -i >/dev/null 2>&1
wine winecfg /v win10 >/dev/null 2>&1
compile() { wine "$ISCC" /Q "/DAppVersion=$1" 'packaging\windows\bdc-workstation.iss'; }
setup() { wine "dist/bdc-workstation-$1-setup.exe" /VERYSILENT /SUPPRESSMSGBOXES /NORESTART \
    "/LOG=$(winpath "$WORK/$2.log")" "${@:3}"; }

check "compiles 0.1.0" compile 0.1.0
setup 0.1.0 missing "/FLEETCONFIG=$(winpath "$WORK/nope.toml")"
code=$?
check "a missing /FLEETCONFIG file stops the install with exit code 7 (got $code)" test "$code" = 7
check "... before anything is installed" test ! -e "$PF"

setup 0.1.0 install "/FLEETCONFIG=$(winpath "$WORK/fleet.toml")"
code=$?
check "silent per-machine install exits 0 (got $code)" test "$code" = 0
check "program in C:\\Program Files\\BDC Workstation" test -f "$PF/bdc-workstation.exe"
check "fleet file copied to C:\\ProgramData\\bdc-workstation\\fleet.toml" cmp -s "$PD/fleet.toml" fleet.toml
check "ProgID command is the program with \"%1\"" has_reg 'HKLM\Software\Classes\BDCWorkstation.tel\shell\open\command' '' \
    '"C:\Program Files\BDC Workstation\bdc-workstation.exe" "%1"'
check "ProgID is a URL protocol" has_reg 'HKLM\Software\Classes\BDCWorkstation.tel' 'URL Protocol' 'REG_SZ'
for scheme in tel callto; do
    check "Capabilities\\URLAssociations\\$scheme -> BDCWorkstation.tel" \
        has_reg 'HKLM\Software\BDC Workstation\Capabilities\URLAssociations' "$scheme" BDCWorkstation.tel
    check "HKCR\\$scheme left alone (candidate, not default)" no_key "HKLM\\Software\\Classes\\$scheme"
done
check "RegisteredApplications entry" has_reg 'HKLM\Software\RegisteredApplications' 'BDC Workstation' \
    'Software\BDC Workstation\Capabilities'
check "uninstall entry with DisplayVersion 0.1.0" has_reg "$APPKEY" DisplayVersion 0.1.0

echo stale >"$PF/_internal/stale-from-old-version.dll"
echo "# IT's edit" >>"$PD/fleet.toml"
check "compiles 0.2.0" compile 0.2.0
setup 0.2.0 upgrade
code=$?
check "upgrade in place exits 0 (got $code)" test "$code" = 0
check "upgrade: uninstall entry now DisplayVersion 0.2.0" has_reg "$APPKEY" DisplayVersion 0.2.0
check "upgrade: one uninstaller (same AppId)" test ! -e "$PF/unins001.exe"
check "upgrade: the old bundle's files are gone" test ! -e "$PF/_internal/stale-from-old-version.dll"
check "upgrade: IT's fleet file untouched" grep -q "IT's edit" "$PD/fleet.toml"

wine "$PF/unins000.exe" /VERYSILENT /SUPPRESSMSGBOXES /NORESTART "/LOG=$(winpath "$WORK/uninstall.log")"
code=$?
check "silent uninstall exits 0 (got $code)" test "$code" = 0
check "uninstall: program removed" test ! -e "$PF/bdc-workstation.exe"
check "uninstall: ProgID removed" no_key 'HKLM\Software\Classes\BDCWorkstation.tel'
check "uninstall: Capabilities removed" no_key 'HKLM\Software\BDC Workstation'
check "uninstall: RegisteredApplications value removed" sh -c "! wine reg query 'HKLM\\Software\\RegisteredApplications' /v 'BDC Workstation' /reg:64 >/dev/null 2>&1"
check "uninstall: fleet file kept" test -f "$PD/fleet.toml"

# install.cmd, as a Group Policy startup script or an Intune/SCCM install command runs it.
mkdir -p "$WORK/share"
cp dist/bdc-workstation-0.2.0-setup.exe "$ROOT/packaging/windows/install.cmd" "$WORK/share/"
printf '[settings]\nserver_url = "https://leads.example.test"\n' >"$WORK/share/fleet.toml"
wine cmd /c "$(winpath "$WORK/share/install.cmd")" >"$WORK/cmd1.txt" 2>&1
code=$?
check "install.cmd installs (exit $code)" test "$code" = 0
check "install.cmd: version 0.2.0 installed" has_reg "$APPKEY" DisplayVersion 0.2.0
check "install.cmd: its fleet.toml deployed" cmp -s "$PD/fleet.toml" "$WORK/share/fleet.toml"
wine cmd /c "$(winpath "$WORK/share/install.cmd")" >"$WORK/cmd2.txt" 2>&1
code=$?
check "install.cmd again: exit 0, nothing to do (exit $code)" grep -q "0.2.0 is already installed" "$WORK/cmd2.txt"
test "$code" = 0 || check "install.cmd again exits 0" false
wine "$PF/unins000.exe" /VERYSILENT /SUPPRESSMSGBOXES /NORESTART
check "uninstalled again" test ! -e "$PF/bdc-workstation.exe"

wineserver -k 2>/dev/null
if [ "$failures" -ne 0 ]; then
    echo "$failures check(s) failed; logs in $WORK"
    exit 1
fi
rm -rf "$WORK"
echo "installer checks passed"
