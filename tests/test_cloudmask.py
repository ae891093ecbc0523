"""SpecTf cloud mask: streaming runtime (runtime/models/spectf.py, spectf_pipeline.py) and ``spectraltf:cloudmask``.

Most pipeline tests use a *tiny* SpecTf-shaped ONNX model built here with onnx.helper (same
inputs/outputs as the real export: spectra (N,S), wavelengths (S,) → probability, logits,
attention), so they are fast and independent of the model store. Tests of what the real model
predicts use ``models/spectf-cloud-v0.1.0.onnx`` (built by ``make setup``; skipped elsewhere, fails
in CI when missing).

Synthetic clouds: no real cloudy EMIT spectra are available offline, so :func:`cloud_toa` builds
them by mixing the real Libya-4 TOA reflectance with a plausible cloud spectrum (see its docstring).
"""
import json
import os

import numpy as np
import pytest
from osgeo import gdal

from support import add_onnx, qgis_process, shared

from spectral_transformers.runtime.models import spectf, spectf_pipeline
from spectral_transformers.runtime.errors import Cancelled, InputError, ModelError
from spectral_transformers.runtime.monitor import RecordingMonitor
from spectral_transformers.runtime.pipeline import write_array
from spectral_transformers.runtime.io.spectral import read_spectral_info, write_spectral_metadata

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

gdal.UseExceptions()
REAL_MODEL = "spectf-cloud-v0.1.0"
EMIT = ("emit", "emit_l1b_rdn_libya4_25x22.img")
EMIT_OBS = ("emit", "emit_l1b_obs_libya4_25x22_derived.img")
EMIT_RFL = ("emit", "emit_l2a_rfl_10x10.img")
AVIRIS = ("aviris-ng", "ang20160910t185702_rdn.img")
AVIRIS_OBS = ("aviris-ng", "ang20160910t185702_obs.img")


# ---------------------------------------------------------------------------------------------
# fixtures: a tiny SpecTf-shaped ONNX model and small rasters
# ---------------------------------------------------------------------------------------------
def _const(name, values, dims=None):
    arr = np.asarray(values, dtype=np.float32)
    return helper.make_tensor(name, TensorProto.FLOAT, dims if dims is not None else arr.shape, arr.ravel().tolist())


def build_tiny_spectf(path, card=None, fixed_bands=None, with_attention=True):
    """A small SpecTf-shaped model: attention = softmax over bands of 4·r + (λ−1440)/600;
    cloud logit z = 10·(Σ attention·r − 0.4); logits = [−z, z]; probability = softmax(logits)[1].
    Bright, flat spectra (clouds) get high probability; it is *not* a trained cloud model."""
    s_dim = fixed_bands if fixed_bands else "S"
    spectra = helper.make_tensor_value_info("spectra", TensorProto.FLOAT, ["N", s_dim])
    wavelengths = helper.make_tensor_value_info("wavelengths", TensorProto.FLOAT, [s_dim])
    outs = [helper.make_tensor_value_info("probability", TensorProto.FLOAT, ["N"]),
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 2])]
    if with_attention:
        outs.append(helper.make_tensor_value_info("attention", TensorProto.FLOAT, ["N", s_dim]))
    inits = [_const("off", [1440.0], []), _const("scale", [600.0], []), _const("four", [4.0], []),
             _const("ten", [10.0], []), _const("bias", [0.4], []),
             helper.make_tensor("axes1", TensorProto.INT64, [1], [1]),
             helper.make_tensor("idx1", TensorProto.INT64, [], [1])]
    nodes = [
        helper.make_node("Sub", ["wavelengths", "off"], ["wl0"]),
        helper.make_node("Div", ["wl0", "scale"], ["wn"]),
        helper.make_node("Mul", ["spectra", "four"], ["r4"]),
        helper.make_node("Add", ["r4", "wn"], ["score"]),
        helper.make_node("Softmax", ["score"], ["attention"], axis=1),
        helper.make_node("Mul", ["attention", "spectra"], ["weighted"]),
        helper.make_node("ReduceSum", ["weighted", "axes1"], ["pooled"], keepdims=1),
        helper.make_node("Sub", ["pooled", "bias"], ["centred"]),
        helper.make_node("Mul", ["centred", "ten"], ["z"]),
        helper.make_node("Neg", ["z"], ["nz"]),
        helper.make_node("Concat", ["nz", "z"], ["logits"], axis=1),
        helper.make_node("Softmax", ["logits"], ["soft"], axis=1),
        helper.make_node("Gather", ["soft", "idx1"], ["probability"], axis=1),
    ]
    graph = helper.make_graph(nodes, "tiny_spectf", [spectra, wavelengths], outs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if card is not False:
        base = {"id": "tiny-spectf", "name": "tiny SpecTf-shaped test model", "version": "0", "task":
                "spectral-cloud-mask", "architecture": "spectf", "threshold": 0.5, "input": "toa_reflectance",
                "drop_ranges_nm": [[0, 405], [1275, 1321], [2455, 9999]], "trained_on": "EMIT"}
        base.update(card or {})
        helper.set_model_props(model, {"model_card": json.dumps(base)})
    onnx.save(model, str(path))
    return str(path)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_spectf(tmp_path_factory.mktemp("models") / "tiny-spectf.onnx")


def emit_wavelengths():
    ds = gdal.Open(str(shared(*EMIT)))
    info = read_spectral_info(ds)
    return info.wavelength_nm, info.fwhm_nm


def write_cube(path, cube, wavelengths, fwhm=None, nodata=-9999.0):
    """GeoTIFF (bands, rows, cols) float32 with wavelength metadata."""
    write_array(str(path), cube.astype(np.float32), nodata=nodata)
    ds = gdal.Open(str(path), gdal.GA_Update)
    write_spectral_metadata(ds, wavelengths, fwhm)
    ds = None
    return str(path)


def random_toa(shape=(9, 11), seed=0, nodata_pixels=((0, 0), (3, 4))):
    """Reflectance-like cube (285 EMIT bands) with a few nodata pixels."""
    wl, fwhm = emit_wavelengths()
    rng = np.random.default_rng(seed)
    base = 0.2 + 0.3 * rng.random((1,) + shape)
    cube = base + 0.05 * rng.standard_normal((wl.size,) + shape)
    cube = np.clip(cube, 0.01, 1.0)
    for r, c in nodata_pixels:
        cube[:, r, c] = -9999.0
    return cube.astype(np.float32), wl, fwhm


def read(path):
    ds = gdal.Open(str(path))
    return ds.ReadAsArray(), ds


# ---------------------------------------------------------------------------------------------
# runtime: bands, types, parity, streaming
# ---------------------------------------------------------------------------------------------
def test_emit_keeps_268_bands():
    wl, _ = emit_wavelengths()
    keep = spectf.keep_bands(wl)
    assert wl.size == 285 and keep.sum() == 268
    assert wl[keep].min() > 405 and wl[keep].max() < 2455
    assert not np.any((wl[keep] >= 1275) & (wl[keep] <= 1321))


@pytest.mark.parametrize("block_rows,batch", [(1, 1), (2, 7), (4, 64), (100, 4096)])
def test_streaming_matches_single_batch_onnx(tmp_path, tiny, block_rows, batch):
    cube, wl, fwhm = random_toa()
    src = write_cube(tmp_path / "toa.tif", cube, wl, fwhm)
    out = {"mask": str(tmp_path / "m.tif"), "probability": str(tmp_path / "p.tif"),
           "attention": str(tmp_path / "a.tif"), "top_wavelength": str(tmp_path / "t.tif")}
    ds = gdal.Open(src)
    per_pixel = 268 * 5
    res = spectf_pipeline.run_spectf(ds, tiny, out, input_type="reflectance", device="cpu", batch_size=batch,
                            block_bytes=block_rows * ds.RasterXSize * per_pixel * 4)
    assert res.input_type == "reflectance" and res.wavelengths_nm.size == 268
    # direct single-batch ONNX call on all valid pixels (wavelengths as stored in the file)
    wl = read_spectral_info(ds).wavelength_nm
    keep = spectf.keep_bands(wl)
    valid = np.all(cube != -9999.0, axis=0)
    pixels = cube[keep][:, valid].T
    model = spectf.SpectfModel.load(tiny, device="cpu")
    prob, att = model.predict(pixels, wl[keep], attention=True)
    mask, _ = read(out["mask"])
    p, pds = read(out["probability"])
    a, ads = read(out["attention"])
    t, _ = read(out["top_wavelength"])
    np.testing.assert_array_equal(mask[valid], (prob >= 0.5).astype(np.uint8))
    assert np.all(mask[~valid] == 255) and np.all(p[~valid] == -9999) and np.all(t[~valid] == -9999)
    np.testing.assert_allclose(p[valid], prob, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(a[:, valid].T, att, rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(t[valid], wl[keep].astype(np.float32)[np.argmax(att, axis=1)])
    assert a.shape[0] == 268 and np.all(a[:, ~valid] == -9999)
    att_wl = read_spectral_info(ads).wavelength_nm
    np.testing.assert_allclose(att_wl, wl[keep], atol=1e-3)
    assert res.valid_pixels == valid.sum() and res.cloud_pixels == int((prob >= 0.5).sum())
    mds = gdal.Open(out["mask"])
    ct = mds.GetRasterBand(1).GetColorTable()
    from spectral_transformers.runtime.pipeline import styles

    assert ct.GetColorEntry(1)[:3] == styles.CLOUD_COLOR[:3]  # GeoTIFF palettes carry no alpha: see the QML
    qml = (tmp_path / "m.qml").read_text()
    assert 'value="0" color="#2ea043" alpha="90"' in qml and 'value="1" color="#40d2ff" alpha="255"' in qml
    assert 'value="255" color="#000000" alpha="0"' in qml
    assert "singlebandpseudocolor" in (tmp_path / "p.qml").read_text()
    assert pds.GetRasterBand(1).GetNoDataValue() == -9999


def test_real_emit_reflectance_runs(tmp_path, tiny):
    mon = RecordingMonitor()
    res = spectf_pipeline.run_spectf(str(shared(*EMIT_RFL)), tiny, {"mask": str(tmp_path / "m.tif")}, device="cpu",
                            monitor=mon)
    assert res.input_type == "reflectance"
    assert any("Input type (auto): reflectance" in m for m in mon.infos)
    assert any("CPUExecutionProvider" in m for m in mon.infos)
    mask, _ = read(tmp_path / "m.tif")
    assert mask.shape == (10, 10) and set(np.unique(mask)) <= {0, 1}
    assert not mon.warnings, mon.warnings  # EMIT wavelengths: no sensor warning
    assert mon.fractions and mon.fractions[-1] == pytest.approx(1.0)


def test_cancellation_leaves_no_output(tmp_path, tiny):
    cube, wl, fwhm = random_toa()
    src = write_cube(tmp_path / "toa.tif", cube, wl, fwhm)
    out = {"mask": str(tmp_path / "m.tif"), "probability": str(tmp_path / "p.tif")}
    with pytest.raises(Cancelled):
        spectf_pipeline.run_spectf(src, tiny, out, input_type="reflectance", device="cpu", batch_size=4,
                          monitor=RecordingMonitor(cancel_after=3))
    assert sorted(os.listdir(tmp_path)) == ["toa.tif"]


def test_bad_inputs(tmp_path, tiny):
    cube, wl, fwhm = random_toa()
    src = write_cube(tmp_path / "toa.tif", cube, wl, fwhm)
    out = {"mask": str(tmp_path / "m.tif")}
    # non-SpecTf ONNX
    add = add_onnx(tmp_path / "add.onnx")
    with pytest.raises(ModelError, match=r"model: .*not a SpecTf cloud model: expected inputs spectra \(N,S\)"):
        spectf_pipeline.run_spectf(src, add, out, device="cpu")
    # no wavelengths
    plain = write_array(str(tmp_path / "plain.tif"), cube[:20])
    with pytest.raises(InputError, match="input: .*no band wavelengths"):
        spectf_pipeline.run_spectf(plain, tiny, out, device="cpu")
    # threshold outside (0, 1)
    for bad in (0, 1, 1.5, -0.1):
        with pytest.raises(InputError, match="^threshold: "):
            spectf_pipeline.run_spectf(src, tiny, out, threshold=bad, device="cpu")
    # radiance given as reflectance
    with pytest.raises(InputError, match="input: .*looks like radiance.*input_type=radiance"):
        spectf_pipeline.run_spectf(str(shared(*EMIT)), tiny, out, input_type="reflectance", device="cpu")
    # fixed band count that does not fit
    fixed = build_tiny_spectf(tmp_path / "fixed.onnx", fixed_bands=100)
    with pytest.raises(InputError, match="exactly 100 bands"):
        spectf_pipeline.run_spectf(src, fixed, out, device="cpu")
    # wrong task in the card
    seg = build_tiny_spectf(tmp_path / "seg.onnx", card={"task": "temporal-attention"})
    with pytest.raises(ModelError, match="model: .*not a SpecTf cloud model"):
        spectf_pipeline.run_spectf(src, seg, out, device="cpu")
    assert sorted(os.listdir(tmp_path)) == sorted(["toa.tif", "plain.tif", "add.onnx", "fixed.onnx", "seg.onnx"])


def test_cuda_without_gpu_names_device(tmp_path, tiny):
    from spectral_transformers.runtime.models import onnx_backend

    if "CUDAExecutionProvider" in onnx_backend.available_providers():
        try:
            onnx_backend.load_session(tiny, "cuda")
            pytest.skip("a usable CUDA GPU is present")
        except InputError:
            pass
    cube, wl, fwhm = random_toa()
    src = write_cube(tmp_path / "toa.tif", cube, wl, fwhm)
    with pytest.raises(InputError, match="^device: "):
        spectf_pipeline.run_spectf(src, tiny, {"mask": str(tmp_path / "m.tif")}, device="cuda")
    assert not os.path.exists(tmp_path / "m.tif")


# ---------------------------------------------------------------------------------------------
# the real SpecTf model (models/spectf-cloud-v0.1.0.onnx, built by `make setup`)
# ---------------------------------------------------------------------------------------------
def real_model():
    """The built v0.1.0 model (path); fails in CI / skips elsewhere when the store is not built."""
    from support import built_model

    return str(built_model(REAL_MODEL))


def libya_toa():
    """Real Libya-4 EMIT radiance converted to TOA reflectance with the derived OBS:
    (cube (285, 25, 22) float32 NaN at nodata, valid (25, 22), wavelengths nm, fwhm nm)."""
    from spectral_transformers.runtime.io import raster_io
    from spectral_transformers.runtime.physics import toa

    ds = gdal.Open(str(shared(*EMIT)))
    conv = toa.ToaConverter.create(ds, str(shared(*EMIT_OBS)))
    window = raster_io.Window(0, 0, ds.RasterXSize, ds.RasterYSize)
    values, valid = raster_io.read_block(ds, window)
    return conv.convert(window, values), valid, conv.wavelength_nm, conv.fwhm_nm


def cloud_toa(wavelength_nm, clear_spectrum):
    """A plausible (synthetic) water-cloud TOA reflectance spectrum.

    Cloud reflectance: flat and high in the VNIR (0.85), falling through the NIR with the liquid /
    ice absorptions near 1.5 and 2.0 µm (0.5 at 1.45–1.55 µm, 0.3 at 2.0 µm). Gas absorption: the
    atmospheric transmittance T(λ) is estimated from the real Libya-4 TOA spectrum itself (ratio to
    a continuum through window bands), and the cloud sees T^0.3: shallower water-vapour bands at
    940, 1140, 1380 and 1880 nm because most water vapour lies below the cloud top."""
    wl = np.asarray(wavelength_nm, dtype=np.float64)
    nodes = [450, 550, 650, 750, 870, 1040, 1250, 1650, 2200]
    continuum = np.interp(wl, nodes, np.interp(nodes, wl, clear_spectrum))
    transmittance = np.clip(clear_spectrum / continuum, 0, 1)
    reflectance = np.interp(wl, [400, 900, 1100, 1250, 1450, 1550, 1650, 1800, 2000, 2200, 2500],
                            [.85, .85, .8, .75, .5, .5, .55, .45, .3, .35, .25])
    return (reflectance * transmittance ** 0.3).astype(np.float32)


def test_synthetic_clouds_flagged_and_clear_desert_clear(tmp_path):
    """TOA GeoTIFF written here: left columns clear Libya-4 spectra, the rest mixed with a synthetic
    cloud (cloud fractions 0.5 and 1.0). Clear pixels stay clear, mixed ones are flagged."""
    model = real_model()
    cube, valid, wl, fwhm = libya_toa()
    cloud = cloud_toa(wl, np.nanmean(cube[:, valid], axis=1))
    fraction = np.zeros(valid.shape, np.float32)
    fraction[:, 8:15] = 0.5
    fraction[:, 15:] = 1.0
    mixed = (1 - fraction) * cube + fraction * cloud[:, None, None]
    mixed[:, ~valid] = -9999.0
    src = write_cube(tmp_path / "toa_cloudy.tif", mixed, wl, fwhm)
    mon = RecordingMonitor()
    res = spectf_pipeline.run_spectf(src, model, {"mask": str(tmp_path / "m.tif"), "probability": str(tmp_path / "p.tif")},
                            device="cpu", monitor=mon)
    assert res.input_type == "reflectance" and res.threshold == pytest.approx(0.51)
    mask, _ = read(tmp_path / "m.tif")
    prob, _ = read(tmp_path / "p.tif")
    assert np.all(mask[~valid] == 255) and np.all(prob[~valid] == -9999)
    clear, cloudy = valid & (fraction == 0), valid & (fraction > 0)
    assert clear.sum() > 50 and cloudy.sum() > 100
    assert np.all(mask[clear] == 0) and np.all(prob[clear] < 0.1)
    assert np.all(mask[cloudy] == 1) and np.all(prob[cloudy] > 0.9)


def test_aviris_ng_runs_with_warning(tmp_path):
    model = real_model()
    mon = RecordingMonitor()
    res = spectf_pipeline.run_spectf(str(shared(*AVIRIS)), model, {"mask": str(tmp_path / "m.tif")},
                            observation=str(shared(*AVIRIS_OBS)), device="cpu", monitor=mon)
    assert res.input_type == "radiance" and res.wavelengths_nm.size == 400
    assert any("trained on EMIT" in w for w in mon.warnings), mon.warnings
    mask, _ = read(tmp_path / "m.tif")
    assert mask.shape == (25, 30) and set(np.unique(mask)) <= {0, 1, 255}


# ---------------------------------------------------------------------------------------------
# the Processing algorithm
# ---------------------------------------------------------------------------------------------
def _run_alg(params):
    import processing
    from qgis.core import QgsProcessingContext, QgsProcessingFeedback

    return processing.run("spectraltf:cloudmask", params, context=QgsProcessingContext(),
                          feedback=QgsProcessingFeedback())


def test_processing_emit_radiance_clear_desert(processing_provider, tmp_path):
    real_model()
    rdn = str(shared(*EMIT))
    res = _run_alg({"INPUT": rdn, "OBSERVATION": str(shared(*EMIT_OBS)), "DEVICE": "cpu",
                    "OUTPUT": str(tmp_path / "mask.tif"), "OUTPUT_PROBABILITY": str(tmp_path / "prob.tif")})
    mask, mds = read(res["OUTPUT"])
    prob, _ = read(res["OUTPUT_PROBABILITY"])
    rds = gdal.Open(rdn)
    raw = rds.GetRasterBand(1).ReadAsArray()
    valid = raw != -9999
    assert valid.sum() == 266 and res["VALID_PIXELS"] == 266
    assert np.all(mask[valid] == 0) and np.all(mask[~valid] == 255)  # clear-sky Libya-4
    assert np.all((prob[valid] >= 0) & (prob[valid] < 0.51)) and np.all(prob[~valid] == -9999)
    assert res["CLOUD_PIXELS"] == 0 and res["CLOUD_FRACTION"] == 0
    assert mds.GetRasterBand(1).GetNoDataValue() == 255
    assert (tmp_path / "mask.qml").exists() and (tmp_path / "prob.qml").exists()


def test_processing_errors(processing_provider, tmp_path):
    from qgis.core import QgsProcessingException

    cube, wl, fwhm = random_toa()
    src = write_cube(tmp_path / "toa.tif", cube, wl, fwhm)
    tiny_path = build_tiny_spectf(tmp_path / "tiny.onnx")
    add = add_onnx(tmp_path / "add.onnx")
    out = str(tmp_path / "m.tif")
    with pytest.raises(QgsProcessingException, match="THRESHOLD"):
        _run_alg({"INPUT": src, "MODEL": tiny_path, "THRESHOLD": 1.5, "OUTPUT": out})
    with pytest.raises(QgsProcessingException, match="MODEL: .*not a SpecTf cloud model"):
        _run_alg({"INPUT": src, "MODEL": add, "OUTPUT": out})
    with pytest.raises(QgsProcessingException, match="INPUT: .*looks like radiance"):
        _run_alg({"INPUT": str(shared(*EMIT)), "INPUT_TYPE": "reflectance", "MODEL": tiny_path, "OUTPUT": out})
    assert not os.path.exists(out)
    # a tiny model and reflectance input run through the algorithm end to end
    res = _run_alg({"INPUT": src, "MODEL": tiny_path, "THRESHOLD": 0.3, "BATCH_SIZE": 5, "DEVICE": "cpu",
                    "OUTPUT": out})
    mask, _ = read(res["OUTPUT"])
    assert mask.shape == cube.shape[1:] and mask[0, 0] == 255 and res["VALID_PIXELS"] == cube[0].size - 2


@pytest.mark.qgis_process
def test_qgis_process_cloudmask(tmp_path):
    real_model()
    out = tmp_path / "mask.tif"
    rc, parsed, stdout, stderr = qgis_process(
        "run", "spectraltf:cloudmask", "--", f"INPUT={shared(*EMIT)}", f"OBSERVATION={shared(*EMIT_OBS)}",
        "DEVICE=cpu", f"OUTPUT={out}")
    assert rc == 0, stdout + stderr
    assert parsed["results"]["VALID_PIXELS"] == 266 and parsed["results"]["CLOUD_PIXELS"] == 0
    mask, _ = read(out)
    assert set(np.unique(mask)) == {0, 255}
    rc, _, stdout, stderr = qgis_process(
        "run", "spectraltf:cloudmask", "--", f"INPUT={shared(*EMIT_RFL)}", "THRESHOLD=2",
        f"OUTPUT={tmp_path / 'x.tif'}", json_output=False)
    assert rc != 0 and "THRESHOLD" in stdout + stderr and not (tmp_path / "x.tif").exists()


def test_reflectance_declared_as_radiance_warns(tmp_path, tiny):
    mon = RecordingMonitor()
    res = spectf_pipeline.run_spectf(str(shared(*EMIT_RFL)), tiny, {"mask": str(tmp_path / "m.tif")}, input_type="radiance",
                            solar_zenith=30.0, earth_sun_distance=1.0, device="cpu", monitor=mon)
    assert res.input_type == "radiance"
    assert any("look like reflectance" in w for w in mon.warnings), mon.warnings
    assert (tmp_path / "m.tif").exists()


def test_auto_input_type_logs_decision(tmp_path, tiny):
    mon = RecordingMonitor()
    res = spectf_pipeline.run_spectf(str(shared(*EMIT)), tiny, {"mask": str(tmp_path / "m.tif")},
                            observation=str(shared(*EMIT_OBS)), device="cpu", monitor=mon)
    assert res.input_type == "radiance" and res.valid_pixels == 266
    assert any(m.startswith("Input type (auto): radiance (99th percentile") for m in mon.infos), mon.infos
    assert any("Earth–Sun distance" in m for m in mon.infos)  # the ToaConverter ran


def test_probability_variant_matches_full_model():
    """The pruned probability-only graph (what the cloud mask runs) equals the full export."""
    model = spectf.SpectfModel.load(real_model(), device="cpu")
    assert model.probability_session() is not model.session, "build_store writes the variant"
    cube, valid, wl, _ = libya_toa()
    keep = spectf.keep_bands(wl)
    clear = cube[:, valid].T[:, keep]
    cloudy = 0.6 * cloud_toa(wl, cube[:, valid].mean(axis=1))[keep] + 0.4 * clear
    x = np.vstack([clear, cloudy]).astype(np.float32)
    fast, _ = model.predict(x, wl[keep])
    full, _ = model.predict(x, wl[keep], attention=True)
    np.testing.assert_allclose(fast, full, atol=1e-6)
    assert (fast[len(clear):] > 0.5).any() and (fast[:len(clear)] < 0.5).all()


def test_radiance_input_uses_the_models_solar_spectrum(tmp_path):
    """Radiance + OBS → probabilities equal the SpecTf reference chain (TOA with SpecTf's irr.npy,
    Gaussian-FWHM resampling, per-pixel zenith, mean Earth–Sun distance) within 1e-4."""
    from spectral_transformers.runtime.io import raster_io
    from spectral_transformers.runtime.physics import toa

    path = real_model()
    monitor = RecordingMonitor()
    spectf_pipeline.run_spectf(str(shared(*EMIT)), path, {"probability": str(tmp_path / "p.tif")}, input_type="radiance",
                      observation=str(shared(*EMIT_OBS)), device="cpu", monitor=monitor)
    assert any("the model's own" in m for m in monitor.infos), monitor.infos
    got, _ = read(tmp_path / "p.tif")
    ds = gdal.Open(str(shared(*EMIT)))
    conv = toa.ToaConverter.create(ds, str(shared(*EMIT_OBS)), irradiance=str(shared("spectf", "irr.npy")))
    window = raster_io.Window(0, 0, ds.RasterXSize, ds.RasterYSize)
    values, valid = raster_io.read_block(ds, window)
    rho = conv.convert(window, values)
    keep = spectf.keep_bands(conv.wavelength_nm)
    ref, _ = spectf.SpectfModel.load(path, device="cpu").predict(rho[:, valid].T[:, keep], conv.wavelength_nm[keep])
    np.testing.assert_allclose(got[valid], ref, atol=1e-4)
