#!/usr/bin/env bash
# End-to-end demo on real data from ../shared/data (run by `make demo` after `make setup`).
# Each step is a bash function; later steps (cloud mask, attention, ...) append their own function
# and a call in main().
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
data="${SPECTRALTF_SHARED_DATA:-$here/../shared/data}"
out="$here/out"
py="$here/.venv/bin/python"
qp="$here/scripts/qgis_process"

need() {  # need FILE...: fail clearly when shared data is missing
  local f
  for f in "$@"; do
    if [ ! -e "$f" ]; then
      echo "demo: missing $f (expected the shared data folder at $data; set SPECTRALTF_SHARED_DATA)" >&2
      exit 1
    fi
  done
}

step_toa() {  # EMIT Libya-4 radiance + derived OBS → out/toa_reflectance.tif
  local rdn="$data/emit/emit_l1b_rdn_libya4_25x22.img" obs="$data/emit/emit_l1b_obs_libya4_25x22_derived.img"
  need "$rdn" "$obs"
  echo "== Radiance to TOA reflectance (EMIT Libya-4 clip) =="
  "$qp" run spectraltf:toareflectance -- INPUT="$rdn" OBSERVATION="$obs" OUTPUT="$out/toa_reflectance.tif"
  "$py" - "$out/toa_reflectance.tif" <<'PY'
import sys
import numpy as np
from osgeo import gdal
ds = gdal.Open(sys.argv[1])
wl = np.array([float(ds.GetRasterBand(i + 1).GetMetadataItem("wavelength")) for i in range(ds.RasterCount)])
nodata = ds.GetRasterBand(1).GetNoDataValue()
print(f"{sys.argv[1]}: {ds.RasterXSize}x{ds.RasterYSize} px, {ds.RasterCount} bands")
for target in (450, 865, 1380):
    b = int(np.argmin(np.abs(wl - target)))
    a = ds.GetRasterBand(b + 1).ReadAsArray()
    v = a[a != nodata]
    print(f"  TOA reflectance at {wl[b]:7.1f} nm: mean {v.mean():.3f} over {v.size} valid pixels")
PY
}

main() {
  mkdir -p "$out"
  step_toa
}

main "$@"
