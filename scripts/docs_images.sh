#!/usr/bin/env bash
# Regenerate the README pictures (docs/images/*.png) from real outputs, rendered by QGIS itself.
# Runs the demo (real EMIT clip, real Sentinel-2 chip), adds a cloud-mask example on Libya-4 TOA
# spectra mixed with a synthetic cloud (no real cloudy EMIT scene is available offline — the picture
# says so), then renders maps with QgsMapRendererParallelJob and screenshots the cloud-mask and
# model-manager dialogs under Xvfb — all with the plugin installed from the ZIP (scripts/zip_profile.sh).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out="$here/out"
data="${SPECTRALTF_SHARED_DATA:-$here/../shared/data}"
py="$here/.venv/bin/python"
export GDAL_PAM_ENABLED=NO

# The pictures show the plugin as a user has it: installed from the ZIP into a fresh profile, its
# dependencies installed by its own installer (scripts/zip_profile.sh); every run below uses that copy.
profile="$out/zip-profile"
bash "$here/scripts/zip_profile.sh" "$profile"
printf '#!/usr/bin/env bash\nexec "%s" "%s" "$@"\n' "$here/scripts/zip_qgis_process" "$profile" > "$profile/qgis_process"
chmod +x "$profile/qgis_process"
qp="$profile/qgis_process"
plugin_dir="$profile/profiles/default/python/plugins"

[ "${SKIP_DEMO:-0}" = 1 ] || SPECTRALTF_QGIS_PROCESS="$qp" bash "$here/scripts/demo.sh"

echo "== Synthetic cloud over real Libya-4 TOA spectra (for the cloud-mask picture) =="
"$py" - "$out/toa_reflectance.tif" "$out/synthetic_cloudy_toa.tif" <<'PY'
import sys
import numpy as np
from osgeo import gdal
gdal.UseExceptions()
from spectral_transformers.runtime.io.spectral import read_spectral_info, write_spectral_metadata
from spectral_transformers.training.spectf_samples import cloud_spectrum
src = gdal.Open(sys.argv[1])
info = read_spectral_info(src)
toa = src.ReadAsArray()
nodata = src.GetRasterBand(1).GetNoDataValue()
valid = toa[0] != nodata
rows, cols = valid.shape
yy, xx = np.mgrid[0:rows, 0:cols]
# a soft-edged cloud blob: cloud fraction 1 in the centre falling to 0 at the rim
d = np.hypot((yy - rows * 0.42) / (rows * 0.5), (xx - cols * 0.5) / (cols * 0.5))
frac = np.clip((0.55 - d) / 0.3, 0, 1)
cloud = cloud_spectrum(info.wavelength_nm)[:, None, None]
mixed = np.where(valid, frac * cloud + (1 - frac) * toa, nodata).astype(np.float32)
ds = gdal.GetDriverByName("GTiff").Create(sys.argv[2], cols, rows, toa.shape[0], gdal.GDT_Float32, ["COMPRESS=DEFLATE"])
ds.WriteArray(mixed)
for i in range(toa.shape[0]):
    ds.GetRasterBand(i + 1).SetNoDataValue(nodata)
write_spectral_metadata(ds, info.wavelength_nm, info.fwhm_nm)
ds.SetMetadataItem("DESCRIPTION", "real EMIT Libya-4 TOA reflectance mixed with a synthetic cloud spectrum")
PY
"$qp" run spectraltf:cloudmask -- INPUT="$out/synthetic_cloudy_toa.tif" INPUT_TYPE=reflectance \
    OUTPUT="$out/cloudmask_synthetic.tif" OUTPUT_PROBABILITY="$out/cloudprob_synthetic.tif"
"$qp" run spectraltf:attentionmaps -- INPUT="$out/synthetic_cloudy_toa.tif" INPUT_TYPE=reflectance \
    OUTPUT="$out/attention_synthetic.tif" OUTPUT_TOP_WAVELENGTH="$out/attention_top_wavelength.tif"

echo "== Rendering maps and dialogs with QGIS (the ZIP-installed plugin, under Xvfb) =="
mkdir -p "$here/docs/images"
xvfb-run -a -s "-screen 0 1280x1024x24" env -u PYTHONPATH QT_QPA_PLATFORM=xcb GDAL_PAM_ENABLED=NO \
    QGIS_CUSTOM_CONFIG_PATH="$profile" SPECTRALTF_PLUGIN_DIR="$plugin_dir" \
    SPECTRALTF_EMIT_LAYER="$data/emit/emit_l1b_rdn_libya4_25x22.img" \
    "$py" "$here/scripts/render_docs_images.py" "$out" "$here/docs/images"
echo "== QGIS desktop with the plugin from the ZIP, before Install dependencies (under Xvfb) =="
SPECTRALTF_DESKTOP_SCREENSHOT="$here/docs/images/desktop_notice.png" \
    "$py" -m pytest -q "$here/tests/test_desktop_zip.py"
