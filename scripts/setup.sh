#!/usr/bin/env bash
# One-time (idempotent) setup on Debian 12, 13 or unstable: QGIS from apt, a venv that sees QGIS's
# Python packages, pip dependencies (NumPy pinned to the system's own, no CUDA wheels on machines
# without an NVIDIA GPU), the plugin made loadable by qgis_process (isolated profile under build/), and
# the model store built from the published weights in ../shared/data (when present).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo

debs=$(tr '\n' ' ' < scripts/debian_packages.txt)
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
# Debian's GDAL bindings (and h5py, scipy, netCDF4) are built against the system NumPy: a NumPy of
# another major version in the venv breaks `osgeo.gdal_array`. Pin the venv to exactly that NumPy.
numpy_version=$(/usr/bin/python3 -c 'import numpy; print(numpy.__version__)')
echo "numpy==$numpy_version" > .venv/system-constraints.txt
# ONNX Runtime: the CUDA build only where an NVIDIA GPU is visible (no CUDA wheels on a CPU machine).
ort=onnxruntime other=onnxruntime-gpu
if nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then ort=onnxruntime-gpu other=onnxruntime; fi
pip=(.venv/bin/pip install -q --disable-pip-version-check -c constraints.txt -c .venv/system-constraints.txt)
want=$(cat requirements*.txt constraints.txt .venv/system-constraints.txt <(echo "$ort") | sha1sum | cut -c1-40)
if [ "$(cat .venv/.requirements-sha 2>/dev/null)" != "$want" ]; then
  echo "setup: installing Python packages into .venv (numpy==$numpy_version as the system's, $ort)"
  # Both builds provide the same `onnxruntime` module: never keep the two side by side.
  if .venv/bin/pip show -q "$other" 2>/dev/null; then .venv/bin/pip uninstall -q -y "$other" "$ort" || true; fi
  "${pip[@]}" -r requirements-dev.txt "$ort"
  # training/ needs torch, and only its CPU build (a few hundred MB; any other torch pulls GBs of CUDA
  # wheels). Where this Python has no CPU torch wheel, the training tests are skipped with the reason.
  rm -f .venv/torch-unavailable
  if ! "${pip[@]}" -r requirements-training.txt 2>.venv/torch-install.log; then
    py=$(.venv/bin/python -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    echo "no CPU build of $(grep -v '^#' requirements-training.txt | head -1) for Python $py on this machine" \
      "(training/ runs on Python 3.11, e.g. Debian 12)" > .venv/torch-unavailable
    echo "setup: training/ NOT set up: $(cat .venv/torch-unavailable); its tests will be skipped"
  fi
  echo "$want" > .venv/.requirements-sha
fi

# Native SpecTf attention kernel (C, Linux x86-64; without a compiler the runtime uses ONNX Runtime's).
bash scripts/build_native.sh

# The repository root is the plugin: expose it as 'spectral_transformers' for QGIS and Python.
mkdir -p build/plugins
ln -sfn "$here" build/plugins/spectral_transformers
site=$(.venv/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
echo "$here/build/plugins" > "$site/spectral_transformers_dev.pth"

# Isolated QGIS profile for scripts/qgis_process with the plugin enabled.
ini=build/qgis-config/profiles/default/QGIS/QGIS3.ini
mkdir -p "$(dirname "$ini")"
grep -q '^spectral_transformers=true' "$ini" 2>/dev/null || printf '[PythonPlugins]\nspectral_transformers=true\n' >> "$ini"

# Model store: ONNX files built from the published weights (build outputs, gitignored). Building needs
# torch; where this Python has none (see above), SPECTRALTF_MODEL_STORE may name a folder of models
# built elsewhere (the QGIS test matrix builds them on the host).
if [ -f .venv/torch-unavailable ]; then
  if [ -n "${SPECTRALTF_MODEL_STORE:-}" ]; then
    echo "setup: models from $SPECTRALTF_MODEL_STORE (built where training/ runs)"
    cp -a "$SPECTRALTF_MODEL_STORE"/. models/
  else
    echo "setup: SpecTf models NOT built (they need training/; set SPECTRALTF_MODEL_STORE to a built store)"
  fi
elif [ -f training/build_store.py ]; then
  .venv/bin/python -m spectral_transformers.training.build_store --quiet
fi
# Wheelhouse for the end-to-end ZIP install test (issue 10; see scripts/wheelhouse.sh).
bash scripts/wheelhouse.sh

echo "setup: done ($(scripts/qgis_process --version 2>/dev/null | head -1))"
