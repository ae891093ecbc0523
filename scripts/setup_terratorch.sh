#!/usr/bin/env bash
# Idempotent: a separate venv (.venv-terratorch) holding TerraTorch 1.2.11, the reference that the
# TerraTorch import is tested against. It is separate from .venv because TerraTorch needs NumPy 2
# and a torchvision that imports beside its torch, while QGIS's GDAL bindings pin .venv's NumPy.
# torch 2.14.1 + torchvision 0.29.1 are the releases that import together on this platform.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
venv=${TERRATORCH_VENV:-.venv-terratorch}
want="torch==2.14.1 torchvision==0.29.1 terratorch==1.2.11 onnx onnxscript onnxruntime"
stamp=$(echo "$want" | sha1sum | cut -c1-40)
if [ "$(cat "$venv/.requirements-sha" 2>/dev/null)" = "$stamp" ] && "$venv/bin/python" -c "import terratorch" 2>/dev/null; then
  exit 0
fi
if [ ! -x "$venv/bin/python" ]; then
  /usr/bin/python3 -m venv "$venv"
fi
echo "setup-terratorch: installing $want into $venv"
"$venv/bin/pip" install -q --disable-pip-version-check $want
echo "$stamp" > "$venv/.requirements-sha"
