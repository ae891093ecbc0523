"""spectraltf:attentionmaps: SpecTf band attention and L-TAE temporal attention, through
processing.run and the qgis_process command line."""
import os

import numpy as np
import pytest
from osgeo import gdal

from support import built_model, qgis_process, require_torch, shared

from spectral_transformers.runtime.pipeline import write_array

torch = require_torch()
torch.set_num_threads(1)
from spectral_transformers.training import ltae  # noqa: E402

ALG = "spectraltf:attentionmaps"
EMIT_RFL = ("emit", "emit_l2a_rfl_10x10.img")
T = 5


@pytest.fixture(scope="module")
def ltae_model(tmp_path_factory):
    """A tiny L-TAE trained briefly on real eo-learn NDVI, plus per-date GeoTIFFs (dates in metadata)."""
    data = ltae.load_eolearn(str(shared("timeseries", "eolearn", "ndvi.npy").parent))
    mask = data["labels"] > 0
    x = ltae.pixels(data["cube"][:T], mask=mask)[::5]
    doy = ltae.positions_for(data["dates"][:T], "day_of_year")
    model, info = ltae.train(x, doy, data["labels"][mask][::5], class_values=[1, 2, 3, 4, 8], epochs=2,
                             d_model=16, n_head=2, d_k=4, mlp_hidden=16)
    folder = tmp_path_factory.mktemp("attention_maps")
    path = str(folder / "ltae-tiny.onnx")
    ltae.export_onnx(model, path, ltae.make_card(model, info, "ltae-tiny", ["NDVI"]))
    cube = data["cube"][:T, :, 30:54, 40:60].copy()
    paths = ltae.write_date_rasters(cube, data["dates"][:T], str(folder / "dates"), data["bbox"], data["epsg"])
    return {"path": path, "paths": paths, "cube": cube, "doy": doy, "dates": data["dates"][:T], "model": model}


def _run(params, feedback=None, context=None):
    import processing
    from qgis.core import QgsProcessingContext, QgsProcessingFeedback

    return processing.run(ALG, params, feedback=feedback or QgsProcessingFeedback(),
                          context=context or QgsProcessingContext())


def _feedback():
    from qgis.core import QgsProcessingFeedback

    fb = QgsProcessingFeedback()
    fb.progress_values = []
    fb.progressChanged.connect(fb.progress_values.append)
    return fb


def _spectf_reference(spectra, wavelengths, bbl=None):
    """SpecTf PyTorch module's own attention weights: mean over heads and query positions, on the bands
    outside SpecTf's drop ranges that the file does not flag bad (``bbl`` = 0, e.g. EMIT L2A's)."""
    from spectral_transformers.training import spectf as tspectf

    model = tspectf.load_weights(shared("spectf", "spectf_cloud_v0.1.0_weights.pt"))
    keep = tspectf.keep_bands(wavelengths)
    if bbl is not None:
        keep &= np.asarray(bbl) != 0
    with torch.no_grad():
        tokens = tspectf.SpecTf.tokens(spectra[:, keep], wavelengths[keep])
        _, attentions = model(tokens, return_attention=True)
    return attentions[0].mean(dim=(1, 2)).numpy(), wavelengths[keep]


# ---------------------------------------------------------------------------------------------
# temporal (L-TAE)
# ---------------------------------------------------------------------------------------------
def test_ltae_mode_processing_run(processing_provider, ltae_model, tmp_path):
    import onnxruntime as ort

    fb = _feedback()
    out, heads, cls = (str(tmp_path / n) for n in ("att.tif", "heads.tif", "cls.tif"))
    res = _run({"INPUT": ltae_model["paths"], "MODEL": ltae_model["path"], "OUTPUT": out,
                "OUTPUT_HEADS": heads, "OUTPUT_CLASSES": cls, "DEVICE": "cpu"}, fb)
    assert res["OUTPUT"] == out and res["OUTPUT_HEADS"] == heads and res["OUTPUT_CLASSES"] == cls
    assert fb.progress_values and fb.progress_values[-1] == pytest.approx(100.0)
    ds = gdal.Open(out)
    assert ds.RasterCount == T and (ds.RasterXSize, ds.RasterYSize) == (20, 24)
    assert [ds.GetRasterBand(i + 1).GetDescription() for i in range(T)] == [d.isoformat() for d in ltae_model["dates"]]
    x = ltae.pixels(ltae_model["cube"])
    logits, att = ort.InferenceSession(ltae_model["path"]).run(None, {"series": x, "doy": ltae_model["doy"]})
    np.testing.assert_allclose(ds.ReadAsArray().reshape(T, -1), att.mean(1).T, atol=1e-6)
    assert gdal.Open(heads).RasterCount == 2 * T
    np.testing.assert_array_equal(gdal.Open(cls).ReadAsArray().reshape(-1), np.array([1, 2, 3, 4, 8])[logits.argmax(1)])


def test_ltae_mode_stack_with_dates(processing_provider, ltae_model, tmp_path):
    stack = write_array(str(tmp_path / "stack.tif"), ltae_model["cube"].reshape(T, 24, 20))
    out = str(tmp_path / "att.tif")
    dates = ",".join(d.isoformat() for d in ltae_model["dates"])
    _run({"INPUT": [stack], "MODEL": ltae_model["path"], "DATES": dates, "OUTPUT": out})
    ref = str(tmp_path / "ref.tif")
    _run({"INPUT": ltae_model["paths"], "MODEL": ltae_model["path"], "OUTPUT": ref})
    np.testing.assert_allclose(gdal.Open(out).ReadAsArray(), gdal.Open(ref).ReadAsArray(), atol=1e-7)


def test_ltae_bad_inputs_name_parameter(processing_provider, ltae_model, tmp_path):
    from qgis.core import QgsProcessingException

    out = str(tmp_path / "o.tif")
    base = {"INPUT": ltae_model["paths"], "MODEL": ltae_model["path"], "OUTPUT": out}
    with pytest.raises(QgsProcessingException, match="DATES: 2 dates given.*5"):
        _run(dict(base, DATES="2016-01-01,2016-02-01"))
    other = write_array(str(tmp_path / "other_20170101.tif"), np.zeros((1, 9, 9), np.float32))
    with pytest.raises(QgsProcessingException, match="INPUT: raster 6.*share one grid"):
        _run(dict(base, INPUT=ltae_model["paths"] + [other]))
    assert not os.path.exists(out)


def test_cancelled_run_leaves_no_output(processing_provider, ltae_model, tmp_path):
    from qgis.core import QgsProcessingException

    fb = _feedback()
    fb.cancel()
    out = str(tmp_path / "att.tif")
    with pytest.raises(QgsProcessingException, match="[Cc]ancel"):
        _run({"INPUT": ltae_model["paths"], "MODEL": ltae_model["path"], "OUTPUT": out,
              "OUTPUT_CLASSES": str(tmp_path / "c.tif")}, fb)
    assert os.listdir(tmp_path) == []


def test_models_without_attention(processing_provider, ltae_model, tmp_path):
    from qgis.core import QgsProcessingException

    from support import add_onnx

    add = add_onnx(tmp_path / "add.onnx")
    with pytest.raises(QgsProcessingException, match="MODEL: .*no 'attention' output"):
        _run({"INPUT": ltae_model["paths"], "MODEL": add, "OUTPUT": str(tmp_path / "o.tif")})


# ---------------------------------------------------------------------------------------------
# band attention (SpecTf)
# ---------------------------------------------------------------------------------------------
def test_spectf_mode_matches_pytorch_attention(processing_provider, tmp_path):
    from spectral_transformers.runtime.io.spectral import read_spectral_info

    model = built_model("spectf-cloud-v0.1.0")
    src = shared(*EMIT_RFL)
    fb = _feedback()
    out, top = str(tmp_path / "att.tif"), str(tmp_path / "top.tif")
    res = _run({"INPUT": [str(src)], "MODEL": str(model), "INPUT_TYPE": "reflectance", "OUTPUT": out,
                "OUTPUT_TOP_WAVELENGTH": top}, fb)
    assert res["OUTPUT_TOP_WAVELENGTH"] == top
    assert fb.progress_values[-1] == pytest.approx(100.0)
    ds_in = gdal.Open(str(src))
    cube = ds_in.ReadAsArray().astype(np.float32)
    info = read_spectral_info(ds_in)
    wl = info.wavelength_nm
    spectra = cube.reshape(cube.shape[0], -1).T
    ref, used = _spectf_reference(spectra, wl, info.bbl)
    ds = gdal.Open(out)
    assert ds.RasterCount == len(used) == 227  # 268 outside the drop ranges, 41 of them flagged bad
    assert float(ds.GetRasterBand(1).GetMetadataItem("wavelength")) == pytest.approx(used[0], abs=0.01)
    read_back = read_spectral_info(ds).wavelength_nm
    np.testing.assert_allclose(read_back, used, atol=0.01)  # written with 6 significant digits
    got = ds.ReadAsArray().reshape(len(used), -1).T
    np.testing.assert_allclose(got, ref, atol=1e-5, rtol=0)
    np.testing.assert_allclose(gdal.Open(top).ReadAsArray().reshape(-1), used[ref.argmax(1)], atol=1e-3)


def test_spectf_mode_rejects_several_rasters(processing_provider, tmp_path):
    from qgis.core import QgsProcessingException

    src = str(shared(*EMIT_RFL))
    with pytest.raises(QgsProcessingException, match="INPUT: 2 rasters given"):
        _run({"INPUT": [src, src], "MODEL": str(built_model("spectf-cloud-v0.1.0")), "OUTPUT": str(tmp_path / "o.tif")})


# ---------------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------------
@pytest.mark.qgis_process
def test_qgis_process_both_modes(ltae_model, tmp_path):
    out = str(tmp_path / "temporal.tif")
    args = ["run", ALG, "--"] + [f"INPUT={p}" for p in ltae_model["paths"]] + [
        f"MODEL={ltae_model['path']}", f"OUTPUT={out}", "DEVICE=cpu"]
    rc, res, stdout, stderr = qgis_process(*args)
    assert rc == 0, stdout + stderr
    assert res["results"]["OUTPUT"] == out and gdal.Open(out).RasterCount == T
    band = str(tmp_path / "band.tif")
    rc, res, stdout, stderr = qgis_process("run", ALG, "--", f"INPUT={shared(*EMIT_RFL)}",
                                           f"MODEL={built_model('spectf-cloud-v0.1.0')}", f"OUTPUT={band}")
    assert rc == 0, stdout + stderr
    assert gdal.Open(band).RasterCount == 227  # EMIT L2A: 268 outside the drop ranges − 41 flagged bad
    rc, _, stdout, stderr = qgis_process(*(args[:-2] + ["DATES=2016-01-01", f"OUTPUT={tmp_path / 'x.tif'}"]))
    assert rc != 0 and "DATES: 1 dates given" in stdout + stderr
