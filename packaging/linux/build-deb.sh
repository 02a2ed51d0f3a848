#!/usr/bin/env bash
# Build dist/bdc-workstation_<version>_amd64.deb from the PyInstaller folder in dist/.
# Usage: packaging/linux/build-deb.sh VERSION   (make package calls it after PyInstaller)
set -euo pipefail
cd "$(dirname "$0")/../.."
version=${1:?usage: build-deb.sh VERSION}
DIST=${DIST:-dist}
bundle=$DIST/bdc-workstation
[ -x "$bundle/bdc-workstation" ] || { echo "build-deb: $bundle is missing; run make package" >&2; exit 1; }

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root=$stage/root
install -d "$root/DEBIAN" "$root/opt" "$root/usr/bin" "$root/usr/share/applications" \
    "$root/usr/share/icons/hicolor/scalable/apps" "$root/usr/share/doc/bdc-workstation"
cp -a "$bundle" "$root/opt/bdc-workstation"
ln -s /opt/bdc-workstation/bdc-workstation "$root/usr/bin/bdc-workstation"
install -m 644 packaging/linux/bdc-workstation.desktop "$root/usr/share/applications/"
install -m 644 resources/icons/bdc-workstation.svg "$root/usr/share/icons/hicolor/scalable/apps/"
install -m 644 packaging/fleet.toml.example "$root/usr/share/doc/bdc-workstation/"
install -m 644 docs/deploy.md "$root/usr/share/doc/bdc-workstation/"
for script in postinst postrm; do
    install -m 755 "packaging/linux/$script" "$root/DEBIAN/$script"
done
size_kb=$(du -sk "$root/opt" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@SIZE@/$size_kb/" packaging/linux/control.in \
    > "$root/DEBIAN/control"
out=$DIST/bdc-workstation_${version}_amd64.deb
fakeroot dpkg-deb --build -Zxz -z6 "$root" "$out" >/dev/null
echo "built $out ($(du -h "$out" | cut -f1))"
