#!/usr/bin/env bash
# Local wheelhouse for the end-to-end ZIP test (tests/test_zip_install.py): the wheels the plugin's
# installer (spectraltf:installdependencies) fetches for QGIS's Python, downloaded once so the test
# installs offline (pip --no-index --find-links build/wheelhouse). Idempotent; ~190 MB.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
py=/usr/bin/python3  # QGIS's Python on Debian
out=build/wheelhouse
np=$($py -c "import numpy; print(numpy.__version__)")
want="onnxruntime numpy==$np pip | ukis-csmask (python $($py -c 'import sys; print(sys.version.split()[0])'))"
if [ "$(cat "$out/.spec" 2>/dev/null)" = "$want" ]; then exit 0; fi
mkdir -p "$out"
echo "setup: downloading the installer's wheels into $out"
# The venv runs on the same interpreter as QGIS, so pip picks wheels QGIS's Python can install.
.venv/bin/pip download -q --disable-pip-version-check --only-binary=:all: -d "$out" onnxruntime "numpy==$np" pip
.venv/bin/pip download -q --disable-pip-version-check --only-binary=:all: --no-deps -d "$out" ukis-csmask
echo "$want" > "$out/.spec"
