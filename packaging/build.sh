#!/usr/bin/env bash
# Build both one-folder programs, the .deb and the server tarball into $DIST (default: dist/).
# `make package` runs this with the project's venv; the packaging test runs it into a scratch dir.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
DIST=${DIST:-dist}
version=$("$PYTHON" -c "import app; print(app.__version__)")
"$PYTHON" packaging/make_icons.py >/dev/null
"$PYTHON" -m PyInstaller --noconfirm --log-level WARN --distpath "$DIST" \
    --workpath build/pyinstaller packaging/pyinstaller/bdc.spec
DIST="$DIST" packaging/linux/build-deb.sh "$version"
tar -C "$DIST" -czf "$DIST/bdc-server-$version-linux-x86_64.tar.gz" bdc-server
echo "built in $DIST: bdc-workstation/ bdc-server/ $(cd "$DIST" && ls -1 *.deb *.tar.gz | tr '\n' ' ')"
