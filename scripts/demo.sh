#!/usr/bin/env bash
# End-to-end demo on real data from ../shared/data (run by `make demo` after `make setup`).
# Each step is a bash function; later steps (cloud mask, attention, ...) append their own function
# and a call in main().
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
data="${SPECTRALTF_SHARED_DATA:-$here/../shared/data}"
out="$here/out"
py="$here/.venv/bin/python"
qp="${SPECTRALTF_QGIS_PROCESS:-$here/scripts/qgis_process}"  # docs_images.sh: the ZIP-installed plugin
# Keep GDAL from writing .aux.xml side files (histograms QGIS computes) beside the shared inputs.
export GDAL_PAM_ENABLED=NO

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
gdal.UseExceptions()
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

step_cloudmask() {  # EMIT radiance + OBS → SpecTf cloud mask (radiance converted to TOA on the fly)
  local rdn="$data/emit/emit_l1b_rdn_libya4_25x22.img" obs="$data/emit/emit_l1b_obs_libya4_25x22_derived.img"
  need "$rdn" "$obs"
  echo "== SpecTf cloud mask (EMIT Libya-4 clip, published v0.1.0 weights) =="
  "$qp" run spectraltf:cloudmask -- INPUT="$rdn" OBSERVATION="$obs" INPUT_TYPE=radiance \
      MODEL=spectf-cloud-v0.1.0 DEVICE=auto OUTPUT="$out/cloud_mask.tif" OUTPUT_PROBABILITY="$out/cloud_probability.tif"
  "$py" - "$out/cloud_mask.tif" "$out/cloud_probability.tif" <<'PY'
import sys
import numpy as np
from osgeo import gdal
gdal.UseExceptions()
m = gdal.Open(sys.argv[1]).ReadAsArray()
p = gdal.Open(sys.argv[2]).ReadAsArray()
valid = m != 255
print(f"{sys.argv[1]}: {valid.sum()} valid pixels, {(m == 1).sum()} cloud ({100 * (m[valid] == 1).mean():.1f} %), "
      f"cloud probability max {p[valid].max():.4f} (threshold 0.51) -> clear desert scene")
PY
}

step_attention() {  # SpecTf band attention on the TOA reflectance of step_toa
  need "$out/toa_reflectance.tif"
  echo "== SpecTf band attention (which wavelengths the transformer looks at) =="
  "$qp" run spectraltf:attentionmaps -- INPUT="$out/toa_reflectance.tif" INPUT_TYPE=reflectance \
      MODEL=spectf-cloud-v0.1.0 OUTPUT="$out/band_attention.tif" OUTPUT_TOP_WAVELENGTH="$out/top_wavelength.tif"
  "$py" - "$out/band_attention.tif" <<'PY'
import sys
import numpy as np
from osgeo import gdal
gdal.UseExceptions()
ds = gdal.Open(sys.argv[1])
a = ds.ReadAsArray()
wl = np.array([float(ds.GetRasterBand(i + 1).GetMetadataItem("wavelength")) for i in range(ds.RasterCount)])
valid = a[0] != ds.GetRasterBand(1).GetNoDataValue()
mean = a[:, valid].mean(axis=1)
top = np.argsort(mean)[::-1][:5]
print(f"{sys.argv[1]}: {ds.RasterCount} bands; most-attended wavelengths (mean over pixels): "
      + ", ".join(f"{wl[i]:.0f} nm ({mean[i]:.4f})" for i in top))
PY
}

step_segment() {  # ukis-csmask 6-band L2A U-Net on a real labelled Sentinel-2 chip
  local npz="$data/multispectral/sentinel2.npz"
  need "$npz"
  echo "== Segmentation with ukis-csmask-6b-l2a (real Sentinel-2 chip, cloud/shadow labels) =="
  "$py" - "$npz" "$out/sentinel2_chip.tif" "$out/sentinel2_labels.tif" <<'PY'
import sys
import numpy as np
from osgeo import gdal
gdal.UseExceptions()
from spectral_transformers.runtime.io.spectral import write_spectral_metadata
d = np.load(sys.argv[1])
img = np.moveaxis(d["img"], -1, 0).astype(np.float32)
drv = gdal.GetDriverByName("GTiff")
ds = drv.Create(sys.argv[2], img.shape[2], img.shape[1], 6, gdal.GDT_Float32, ["COMPRESS=DEFLATE"])
ds.SetGeoTransform((0, 10, 0, 0, 0, -10))
for i, (name, arr) in enumerate(zip(["blue", "green", "red", "nir", "swir16", "swir22"], img)):
    ds.GetRasterBand(i + 1).WriteArray(arr)
    ds.GetRasterBand(i + 1).SetDescription(name)
write_spectral_metadata(ds, [492.4, 559.8, 664.6, 832.8, 1613.7, 2202.4], [66, 36, 31, 106, 91, 175])  # S2A B02 B03 B04 B08 B11 B12
ds = None
lab = drv.Create(sys.argv[3], img.shape[2], img.shape[1], 1, gdal.GDT_Byte)
lab.SetGeoTransform((0, 10, 0, 0, 0, -10))
lab.GetRasterBand(1).WriteArray(d["msk"][..., 0])
lab = None
PY
  "$qp" run spectraltf:segment -- INPUT="$out/sentinel2_chip.tif" MODEL=ukis-csmask-6b-l2a DEVICE=auto \
      OUTPUT="$out/segment_sentinel2.tif" OUTPUT_CONFIDENCE="$out/segment_confidence.tif"
  "$py" - "$out/segment_sentinel2.tif" "$out/sentinel2_labels.tif" <<'PY'
import sys
import numpy as np
from osgeo import gdal
gdal.UseExceptions()
pred = gdal.Open(sys.argv[1]).ReadAsArray()
lab = gdal.Open(sys.argv[2]).ReadAsArray()
def iou(a, b):
    return (a & b).sum() / max(1, (a | b).sum())
print(f"{sys.argv[1]}: classes {dict(zip(*np.unique(pred, return_counts=True)))}; vs hand labels: "
      f"cloud IoU {iou(pred == 1, lab == 4):.3f}, shadow IoU {iou(pred == 2, lab == 0):.3f}")
PY
}

main() {
  mkdir -p "$out"
  step_toa
  step_cloudmask
  step_attention
  step_segment
  echo "== Demo outputs in $out (open them in QGIS: each .tif has its .qml style beside it) =="
}

main "$@"
