#!/usr/bin/env bash
# One-time (idempotent) setup on Debian 12: QGIS from apt, a venv that sees QGIS's Python packages,
# pip dependencies, the plugin made loadable by qgis_process (isolated profile under build/), and the
# model store built from the published weights in ../shared/data (when present).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo

debs="qgis python3-qgis qgis-providers gdal-bin python3-gdal xvfb python3-venv python3-h5py python3-scipy python3-netcdf4 zip unzip"
missing=""
for p in $debs; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  echo "setup: installing Debian packages:$missing"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q $missing
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv (system Python with QGIS's site packages)"
  /usr/bin/python3 -m venv --system-site-packages .venv
fi
want=$(cat requirements.txt requirements-dev.txt constraints.txt | sha1sum | cut -c1-40)
if [ "$(cat .venv/.requirements-sha 2>/dev/null)" != "$want" ]; then
  echo "setup: installing Python packages into .venv"
  .venv/bin/pip install -q --disable-pip-version-check -c constraints.txt -r requirements-dev.txt
  echo "$want" > .venv/.requirements-sha
fi

# The repository root is the plugin: expose it as 'spectral_transformers' for QGIS and Python.
mkdir -p build/plugins
ln -sfn "$here" build/plugins/spectral_transformers
site=$(.venv/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
echo "$here/build/plugins" > "$site/spectral_transformers_dev.pth"

# Isolated QGIS profile for scripts/qgis_process with the plugin enabled.
ini=build/qgis-config/profiles/default/QGIS/QGIS3.ini
mkdir -p "$(dirname "$ini")"
grep -q '^spectral_transformers=true' "$ini" 2>/dev/null || printf '[PythonPlugins]\nspectral_transformers=true\n' >> "$ini"

# Model store: ONNX files built from the published weights (build outputs, gitignored).
if [ -f training/build_store.py ]; then
  .venv/bin/python -m spectral_transformers.training.build_store --quiet
fi
# Wheelhouse for the end-to-end ZIP install test (issue 10; see scripts/wheelhouse.sh).
bash scripts/wheelhouse.sh

echo "setup: done ($(scripts/qgis_process --version 2>/dev/null | head -1))"
