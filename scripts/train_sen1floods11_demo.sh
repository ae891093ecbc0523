#!/usr/bin/env bash
# Train a tiny Prithvi-style ViT on the real Sen1Floods11 chip (../shared/data) and install it in the
# model store as models/prithvi-tiny-sen1floods11.onnx (+ .json card), so `spectraltf:models` lists it
# and `spectraltf:segment MODEL=prithvi-tiny-sen1floods11` runs it. Then segments the chip with it.
# A demonstration of the fine-tune → ONNX → QGIS path, not an operational flood model
# (one 512×512 chip, a few hundred steps on the CPU: about a minute on an idle 2-core machine;
# the reported accuracy is measured on the training chip itself: there is no held-out chip).
# Usage: scripts/train_sen1floods11_demo.sh [STEPS] [OUT_DIR for the demo class map]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
steps=${1:-300}
out=${2:-out/sen1floods11}
data=${SPECTRALTF_SHARED_DATA:-$here/../shared/data}
chip=$data/multispectral/Spain_7370579_S2Hand.tif
[ -f "$chip" ] || { echo "missing $chip (../shared/data)" >&2; exit 1; }
mkdir -p models/built "$out"
export PYTHONPATH="$here/build/plugins${PYTHONPATH:+:$PYTHONPATH}"
.venv/bin/python -m spectral_transformers.training seg-train --layout sen1floods11 --images "$chip" \
  --preset tiny --tile 64 --steps "$steps" --batch 8 --lr 2e-3 --threads 2 \
  --id prithvi-tiny-sen1floods11 --out models/prithvi-tiny-sen1floods11.onnx \
  --checkpoint models/built/prithvi-tiny-sen1floods11.pt
# Bands given explicitly (B02 B03 B04 B8A B11 B12 = bands 2,3,4,9,12,13 of the 13-band L1C stack).
scripts/qgis_process run spectraltf:segment -- "INPUT=$chip" MODEL=prithvi-tiny-sen1floods11 \
  BANDS=2,3,4,9,12,13 DEVICE=cpu "OUTPUT=$out/water.tif" "OUTPUT_PROBABILITIES=$out/water_probabilities.tif"
echo "class map: $out/water.tif (style $out/water.qml)"
