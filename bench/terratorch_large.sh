#!/usr/bin/env bash
# Prithvi-EO-2.0 300M and 600M (random init, as TerraTorch builds them) → import-terratorch with ONNX
# external data → spectraltf:segment (qgis_process) on a 224 x 224 window of the Sen1Floods11 chip,
# compared with TerraTorch's tiled_inference. Heavy (GBs of RAM, minutes per size): run by hand,
# not in CI. Usage: bash bench/terratorch_large.sh [300 600]   (outputs under build/terratorch-large)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
bash scripts/setup_terratorch.sh
sizes=${*:-300 600}
out=build/terratorch-large
mkdir -p "$out"
tt=.venv-terratorch/bin/python
export PYTHONPATH="$here/build/plugins" GDAL_PAM_ENABLED=NO QT_QPA_PLATFORM=offscreen
chip=../shared/data/multispectral/Spain_7370579_S2Hand.tif
.venv/bin/python - "$chip" "$out" <<'EOF'
import sys, numpy as np
from osgeo import gdal
chip, out = sys.argv[1:3]
gdal.Translate(f"{out}/win.tif", chip, srcWin=[200, 150, 224, 224])
ds = gdal.Open(f"{out}/win.tif")
np.save(f"{out}/win.npy", np.stack([ds.GetRasterBand(b).ReadAsArray().astype(np.float32) for b in (2, 3, 4, 9, 12, 13)]))
EOF
for size in $sizes; do
  d=$out/$size
  mkdir -p "$d"
  case $size in
    300) idx="[5, 11, 17, 23]";;
    600) idx="[7, 15, 23, 31]";;
    *) echo "size must be 300 or 600" >&2; exit 2;;
  esac
  echo "{\"backbone\": \"prithvi_eo_v2_$size\", \"decoder\": \"UperNetDecoder\", \"indices\": $idx, \"seed\": 7, \"calibrate\": \"$out/win.npy\"}" > "$d/spec.json"
  echo "[{\"pixels\": \"$out/win.npy\", \"out\": \"$d/ref.npy\"}]" > "$d/jobs.json"
  t0=$(date +%s)
  $tt tests/terratorch_reference.py make-model "$d/spec.json" "$d"
  t1=$(date +%s)
  $tt -m spectral_transformers.training import-terratorch --config "$d/config.yaml" --checkpoint "$d/model.ckpt" \
      --output "$d/prithvi-eo2-$size.onnx" --license "Apache-2.0"
  t2=$(date +%s)
  $tt tests/terratorch_reference.py tiled "$d/config.yaml" "$d/model.ckpt" "$d/jobs.json"
  t3=$(date +%s)
  scripts/qgis_process run spectraltf:segment -- "INPUT=$out/win.tif" "MODEL=$d/prithvi-eo2-$size.onnx" \
      "BANDS=2,3,4,9,12,13" DEVICE=cpu "OUTPUT=$d/classes.tif" "OUTPUT_PROBABILITIES=$d/prob.tif" > "$d/segment.log" 2>&1
  t4=$(date +%s)
  .venv/bin/python - "$d" "$size" "$((t1 - t0))" "$((t2 - t1))" "$((t3 - t2))" "$((t4 - t3))" <<'EOF'
import os, sys, numpy as np
from osgeo import gdal
d, size, tmake, texp, tref, tseg = sys.argv[1:]
ref = np.load(f"{d}/ref.npy")
cls = gdal.Open(f"{d}/classes.tif").ReadAsArray()
prob = gdal.Open(f"{d}/prob.tif").ReadAsArray()
e = np.exp(ref - ref.max(0)); p = e / e.sum(0)
onnx_mb = os.path.getsize(f"{d}/prithvi-eo2-{size}.onnx") / 1e6
data = f"{d}/prithvi-eo2-{size}.onnx.data"
data_mb = os.path.getsize(data) / 1e6 if os.path.exists(data) else 0
print(f"Prithvi-EO-2.0 {size}M: onnx {onnx_mb:.1f} MB + external data {data_mb:.0f} MB; class agreement "
      f"{100 * np.mean(cls == ref.argmax(0)):.3f} % of {cls.size} px, max |p - p_ref| {np.abs(prob - p).max():.2e}; "
      f"seconds: make {tmake}, import+export {texp}, TerraTorch {tref}, segment {tseg}")
EOF
done
