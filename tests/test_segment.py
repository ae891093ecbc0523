"""Tiled segmentation runtime and the spectraltf:segment / spectraltf:models algorithms."""
import json
import os

import numpy as np
import pytest
from osgeo import gdal

import seg_models
from support import qgis_process, shared
from spectral_transformers.runtime.models import onnx_backend, segmentation
from spectral_transformers.runtime.errors import Cancelled, InputError, ModelError
from spectral_transformers.runtime.monitor import RecordingMonitor

RNG = np.random.default_rng(7)
NAMES = ["blue", "green", "red"]


def _model(tmp_path, card=None, kernel=5, **card_kw):
    card = card or seg_models.seg_card(**card_kw)
    return seg_models.conv_model(tmp_path / f"{card['id']}.onnx", in_ch=len(card["input"]["bands"]),
                                 classes=len(card["output"]["classes"]), kernel=kernel, card=card)


def _direct(model_path, img):
    """Softmax of one model run on the whole image (the reference a tiled run must reproduce)."""
    sess = onnx_backend.load_session(model_path, "cpu", 1)
    logits = sess.run(None, {"x": img[None].astype(np.float32)})[0]
    return segmentation.softmax(logits)[0]


def _run(tmp_path, inputs, model, name="out", **kw):
    outs = {"classes": str(tmp_path / f"{name}.tif"), "probabilities": str(tmp_path / f"{name}_p.tif"),
            "confidence": str(tmp_path / f"{name}_c.tif")}
    res = segmentation.run_segmentation(inputs, model, outs, threads=1, **kw)
    return res, seg_models.read(outs["classes"]), seg_models.read(outs["probabilities"]), outs


def test_tile_sized_image_equals_single_window_run(tmp_path):
    model = _model(tmp_path, tile=32, overlap=8)
    img = RNG.random((3, 32, 32)).astype(np.float32)
    src = seg_models.write_raster(tmp_path / "in.tif", img, NAMES)
    res, cls, prob, _ = _run(tmp_path, [src], model)
    ref = _direct(model, img)
    assert res.tiles_run == 1
    assert np.allclose(prob, ref, atol=1e-6)
    assert np.array_equal(cls, ref.argmax(0))


def test_blended_tiles_equal_whole_image_run(tmp_path):
    """Border crop >= the model's receptive radius (2 px): every blended pixel is exact, so the tiled
    result equals one run over the whole image (no seams)."""
    model = _model(tmp_path, tile=32, overlap=12, crop=2, kernel=5)
    img = RNG.random((3, 100, 77)).astype(np.float32)
    src = seg_models.write_raster(tmp_path / "in.tif", img, NAMES)
    res, cls, prob, _ = _run(tmp_path, [src], model)
    ref = _direct(model, img)
    assert res.tiles_run == 5 * 4  # rows 0,20,40,60,68; cols 0,20,40,45
    assert np.abs(prob - ref).max() < 1e-5
    top2 = np.sort(ref, axis=0)[-2:]
    assert np.all((cls == ref.argmax(0)) | (top2[1] - top2[0] < 1e-5))


def test_shifting_the_grid_changes_no_class(tmp_path):
    model = _model(tmp_path, tile=32, overlap=12, crop=2, kernel=5)
    img = RNG.random((3, 90, 90)).astype(np.float32)
    a = seg_models.write_raster(tmp_path / "a.tif", img, NAMES)
    b = seg_models.write_raster(tmp_path / "b.tif", img[:, 7:, 11:], NAMES)
    _, cls_a, prob_a, _ = _run(tmp_path, [a], model, "out_a")
    _, cls_b, prob_b, _ = _run(tmp_path, [b], model, "out_b", overlap=14)
    # compare away from the cut edges (2 px receptive radius sees different padding there)
    pa, pb = prob_a[:, 7 + 2:, 11 + 2:], prob_b[:, 2:, 2:]
    assert np.abs(pa - pb).max() < 1e-5
    assert np.array_equal(cls_a[9:, 13:], cls_b[2:, 2:])


def test_without_crop_seams_stay_small(tmp_path):
    """crop = 0 with a context model: blending keeps the tiled result close to the whole-image run."""
    model = _model(tmp_path, tile=32, overlap=12, crop=0, kernel=5)
    img = RNG.random((3, 80, 80)).astype(np.float32)
    src = seg_models.write_raster(tmp_path / "in.tif", img, NAMES)
    _, cls, prob, _ = _run(tmp_path, [src], model)
    ref = _direct(model, img)
    assert (cls == ref.argmax(0)).mean() > 0.97


def test_raster_smaller_than_tile_is_reflect_padded(tmp_path):
    model = _model(tmp_path, tile=32, overlap=8)
    img = RNG.random((3, 13, 20)).astype(np.float32)
    src = seg_models.write_raster(tmp_path / "in.tif", img, NAMES)
    res, cls, prob, outs = _run(tmp_path, [src], model)
    padded = np.pad(img, ((0, 0), (0, 19), (0, 12)), mode="reflect")
    ref = _direct(model, padded)[:, :13, :20]
    assert cls.shape == (13, 20) and np.allclose(prob, ref, atol=1e-6)


def test_nodata_masked_and_empty_tiles_skipped(tmp_path):
    model = _model(tmp_path, tile=32, overlap=8)
    img = RNG.random((3, 64, 96)).astype(np.float32)
    img[:, :, 64:] = -1  # a whole column of tiles without data
    img[1, 5, 7] = -1    # one band missing in one pixel
    src = seg_models.write_raster(tmp_path / "in.tif", img, NAMES, nodata=-1)
    res, cls, prob, outs = _run(tmp_path, [src], model)
    assert res.tiles_skipped >= 2
    assert cls[5, 7] == 255 and np.all(cls[:, 64:] == 255)
    assert np.all(prob[:, 5, 7] == -9999) and np.all(prob[:, :, 64:] == -9999)
    valid = cls != 255
    assert valid.sum() == 64 * 64 - 1 == res.valid_pixels
    assert np.allclose(prob[:, valid].sum(0), 1, atol=1e-5)
    conf = seg_models.read(outs["confidence"])
    assert np.allclose(conf[valid], prob[:, valid].max(0))


def test_outputs_metadata_colours_and_style(tmp_path):
    model = _model(tmp_path, tile=32, overlap=8)
    src = seg_models.write_raster(tmp_path / "in.tif", RNG.random((3, 40, 40)), NAMES)
    # GeoTIFF keeps category names in a .aux.xml side file (GDAL PAM), which the test session turns
    # off to keep ../shared/data untouched: turn it on for this run in a temporary folder.
    gdal.SetConfigOption("GDAL_PAM_ENABLED", "YES")
    try:
        _, _, _, outs = _run(tmp_path, [src], model)
    finally:
        gdal.SetConfigOption("GDAL_PAM_ENABLED", None)
    aux = open(outs["classes"] + ".aux.xml").read()
    assert "<Category>c0</Category>" in aux and "<Category>c2</Category>" in aux
    ds = gdal.Open(outs["classes"])
    band = ds.GetRasterBand(1)
    assert band.GetNoDataValue() == 255 and band.DataType == gdal.GDT_Byte
    assert band.GetColorTable().GetColorEntry(1) == (40, 215, 90, 255)
    assert ds.GetMetadataItem("model_id") == "tiny-seg"
    assert os.path.exists(tmp_path / "out.qml") and 'label="c2"' in (tmp_path / "out.qml").read_text()
    p = gdal.Open(outs["probabilities"])
    assert [p.GetRasterBand(i + 1).GetDescription() for i in range(3)] == ["c0", "c1", "c2"]
    assert p.GetGeoTransform() == ds.GetGeoTransform() == (500000, 30, 0, 4500000, 0, -30)


def test_band_matching_by_wavelength_explicit_and_errors(tmp_path):
    model = _model(tmp_path, tile=32, overlap=8)
    img = RNG.random((5, 32, 32)).astype(np.float32)  # one tile: comparable with a direct run
    # wavelengths only (no names), bands shuffled: 842, 665, 560, 490, 1610
    src = seg_models.write_raster(tmp_path / "wl.tif", img, wavelengths=[842, 665, 560, 490, 1610])
    mon = RecordingMonitor()
    res, cls, prob, _ = _run(tmp_path, [src], model, monitor=mon)
    assert any("by wavelength blue 490 nm=band 4" in m for m in mon.infos)
    ref = _direct(model, img[[3, 2, 1]])
    assert np.allclose(prob, ref, atol=1e-5)
    # explicit BANDS gives the same result
    _, cls2, _, _ = _run(tmp_path, [src], model, "explicit", bands="4,3,2")
    assert np.array_equal(cls, cls2)
    nameless = seg_models.write_raster(tmp_path / "nameless.tif", img)
    with pytest.raises(InputError, match="bands: cannot tell which bands .*Set bands"):
        _run(tmp_path, [nameless], model, "x")
    with pytest.raises(InputError, match="bands: 2 band numbers given but the model needs 3"):
        _run(tmp_path, [nameless], model, "x", bands="1,2")
    with pytest.raises(InputError, match="bands: band number.* out of range"):
        _run(tmp_path, [nameless], model, "x", bands="1,2,9")
    far = seg_models.write_raster(tmp_path / "far.tif", img, wavelengths=[400, 1000, 1200, 1300, 2400])
    with pytest.raises(InputError, match="no band of far.tif is within 50 nm of the model band blue"):
        _run(tmp_path, [far], model, "x")


def test_six_band_model_four_band_raster(tmp_path):
    four = seg_models.write_raster(tmp_path / "four.tif", RNG.random((4, 300, 300)),
                                   ["blue", "green", "red", "nir"])
    with pytest.raises(InputError, match=r"input: the model needs 6 bands \(blue .*\) but four.tif has 4"):
        segmentation.run_segmentation([four], "ukis-csmask-6b-l2a", {"classes": str(tmp_path / "o.tif")})
    assert not os.path.exists(tmp_path / "o.tif")


def test_sentinel2_band_names_are_understood(tmp_path):
    model = _model(tmp_path, tile=32, overlap=8)
    names = ["B01", "B02", "B03", "B04", "B08"]
    src = seg_models.write_raster(tmp_path / "S2A_MSIL2A_x.tif", RNG.random((5, 32, 32)), names)
    mon = RecordingMonitor()
    _run(tmp_path, [src], model, monitor=mon)
    assert any("blue='B02' (band 2), green='B03' (band 3), red='B04' (band 4)" in m for m in mon.infos)


def _temporal_card(stacking, layout="NCHW"):
    card = seg_models.seg_card("tiny-temporal-" + stacking, bands=("b0", "b1"), classes=4, tile=16, overlap=4,
                               frames=2, stacking=stacking, layout=layout)
    return card


@pytest.mark.parametrize("stacking, expected", [("date-major", 1), ("band-major", 2)])
def test_multitemporal_stacking_order(tmp_path, stacking, expected):
    """(date, band) values (t0,b0)=1, (t0,b1)=4, (t1,b0)=2, (t1,b1)=3; the identity model's class is
    the channel index of the largest value: 1 when stacked date-major, 2 when band-major."""
    card = _temporal_card(stacking)
    model = seg_models.channel_model(tmp_path / "m.onnx", 4, card=card)
    d0 = seg_models.write_raster(tmp_path / "d0.tif", np.stack([np.full((20, 20), 1.0), np.full((20, 20), 4.0)]))
    d1 = seg_models.write_raster(tmp_path / "d1.tif", np.stack([np.full((20, 20), 2.0), np.full((20, 20), 3.0)]))
    _, cls, _, _ = _run(tmp_path, [d0, d1], model, bands="1,2")
    assert np.all(cls == expected)


def test_multitemporal_wrong_count_and_grid(tmp_path):
    model = seg_models.channel_model(tmp_path / "m.onnx", 4, card=_temporal_card("date-major"))
    d0 = seg_models.write_raster(tmp_path / "d0.tif", RNG.random((2, 20, 20)))
    with pytest.raises(InputError, match="input: 1 raster.* multi-temporal model with 2 dates: give 2 rasters"):
        _run(tmp_path, [d0], model, bands="1,2")
    moved = seg_models.write_raster(tmp_path / "moved.tif", RNG.random((2, 20, 20)),
                                    geotransform=(500030, 30, 0, 4500000, 0, -30))
    with pytest.raises(InputError, match="input: moved.tif .* is not on the grid of d0.tif"):
        _run(tmp_path, [d0, moved], model, bands="1,2")
    small = seg_models.write_raster(tmp_path / "small.tif", RNG.random((2, 19, 20)))
    with pytest.raises(InputError, match="not on the grid"):
        _run(tmp_path, [d0, small], model, bands="1,2")


def test_ncthw_layout(tmp_path):
    card = _temporal_card("date-major", layout="NCTHW")
    # a model that averages over T then applies a 1x1 conv: build via ReduceMean
    from onnx import TensorProto, helper, numpy_helper

    w = (np.eye(2, dtype=np.float32) * 50)[:, :, None, None]
    nodes = [helper.make_node("ReduceMean", ["x"], ["m"], axes=[2], keepdims=0),
             helper.make_node("Conv", ["m", "w"], ["logits"])]
    graph = helper.make_graph(nodes, "t", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 2, "H", "W"])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 2, "H", "W"])],
                              [numpy_helper.from_array(w, "w")])
    card["output"]["classes"] = card["output"]["classes"][:2]
    model = seg_models._save(helper.make_model(graph, opset_imports=seg_models.OPSET), tmp_path / "t.onnx", card)
    d0 = seg_models.write_raster(tmp_path / "d0.tif", np.stack([np.full((20, 20), 1.0), np.full((20, 20), 0.0)]))
    d1 = seg_models.write_raster(tmp_path / "d1.tif", np.stack([np.full((20, 20), 0.0), np.full((20, 20), 0.8)]))
    _, cls, _, _ = _run(tmp_path, [d0, d1], model, bands="1,2")
    assert np.all(cls == 0)  # mean b0 = 0.5 > mean b1 = 0.4


def test_not_a_segmentation_model(tmp_path):
    src = seg_models.write_raster(tmp_path / "in.tif", RNG.random((3, 40, 40)), NAMES)
    add = seg_models.add_model(tmp_path / "add.onnx")
    with pytest.raises(ModelError, match="model: .*add.onnx has no model card"):
        _run(tmp_path, [src], add)
    flat_card = seg_models.seg_card("flat")
    flat_card["output"].pop("tensor")
    flat = seg_models.flat_model(tmp_path / "flat.onnx", card=flat_card)
    with pytest.raises(ModelError, match=r"model: output 'y' has rank 2"):
        _run(tmp_path, [src], flat)
    card = seg_models.seg_card("wrong-input")
    wrong = seg_models.add_model(tmp_path / "wrong.onnx", card=card)
    with pytest.raises(ModelError, match="model: .*must have one input tensor; this one has 2"):
        _run(tmp_path, [src], wrong)
    spectral = seg_models.conv_model(tmp_path / "sp.onnx", card={"id": "sp", "task": "spectral-cloud-mask"})
    with pytest.raises(ModelError, match="'spectral-cloud-mask' model; this algorithm needs a 'segmentation'"):
        _run(tmp_path, [src], spectral)
    assert not os.path.exists(tmp_path / "out.tif")


def test_card_channel_mismatch_and_truncated_model(tmp_path):
    src = seg_models.write_raster(tmp_path / "in.tif", RNG.random((3, 40, 40)), NAMES)
    card = seg_models.seg_card("mismatch")
    path = seg_models.conv_model(tmp_path / "mm.onnx", in_ch=4, card=card, input_shape=["N", 4, "H", "W"])
    with pytest.raises(ModelError, match=r"model: input 'x' has shape \['N', 4, 'H', 'W'\] but the card describes"):
        _run(tmp_path, [src], path)
    good = _model(tmp_path, tile=32, overlap=8)
    data = open(good, "rb").read()
    (tmp_path / "trunc.onnx").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="model: .*truncated"):
        _run(tmp_path, [src], str(tmp_path / "trunc.onnx"))


def test_bad_overlap_and_cancel_leave_no_output(tmp_path):
    model = _model(tmp_path, tile=32, overlap=8)
    src = seg_models.write_raster(tmp_path / "in.tif", RNG.random((3, 100, 100)), NAMES)
    with pytest.raises(InputError, match="overlap: overlap \\(40 px\\) must be smaller than the tile"):
        _run(tmp_path, [src], model, overlap=40)
    with pytest.raises(Cancelled):
        _run(tmp_path, [src], model, monitor=RecordingMonitor(cancel_after=2))
    assert not [p for p in os.listdir(tmp_path) if p.startswith(("out", ".out"))]


# ---------------------------------------------------------------------------------------------
# Processing algorithms
# ---------------------------------------------------------------------------------------------
def test_processing_segment_and_models(processing_provider, tmp_path):
    import processing
    from qgis.core import QgsProcessingException

    model = _model(tmp_path, tile=32, overlap=8)
    src = seg_models.write_raster(tmp_path / "in.tif", RNG.random((3, 50, 60)), NAMES)
    out = processing.run("spectraltf:segment", {
        "INPUT": [src], "MODEL": model, "DEVICE": "cpu", "BATCH_SIZE": 2,
        "OUTPUT": str(tmp_path / "cls.tif"), "OUTPUT_CONFIDENCE": str(tmp_path / "conf.tif")})
    assert seg_models.read(out["OUTPUT"]).shape == (50, 60)
    assert out["VALID_PIXELS"] == 3000 and out["PROVIDER"] == "CPUExecutionProvider"
    assert sum(json.loads(out["CLASS_COUNTS"]).values()) == 3000
    with pytest.raises(QgsProcessingException, match="MODEL: no model with id 'nope'"):
        processing.run("spectraltf:segment", {"INPUT": [src], "MODEL": "nope", "OUTPUT": str(tmp_path / "x.tif")})
    listing = processing.run("spectraltf:models", {"OUTPUT_JSON": str(tmp_path / "models.json")})
    models = json.loads(listing["MODELS"])
    assert "ukis-csmask-6b-l2a" in {m["id"] for m in models}
    assert json.loads((tmp_path / "models.json").read_text()) == models
    alg = processing_provider.algorithm("segment")
    assert "model card" in alg.shortHelpString() and alg.group() == "Segmentation"


@pytest.mark.qgis_process
def test_qgis_process_segment_and_models(tmp_path):
    model = _model(tmp_path, tile=32, overlap=8)
    src = seg_models.write_raster(tmp_path / "in.tif", RNG.random((3, 40, 40)), NAMES)
    rc, js, out, err = qgis_process("run", "spectraltf:segment", "--", f"INPUT={src}", f"MODEL={model}",
                                    "DEVICE=cpu", f"OUTPUT={tmp_path / 'cls.tif'}")
    assert rc == 0, err + out
    assert js["results"]["VALID_PIXELS"] == 1600 and os.path.exists(tmp_path / "cls.qml")
    rc, js, out, err = qgis_process("run", "spectraltf:models")
    assert rc == 0, err
    ids = {m["id"] for m in json.loads(js["results"]["MODELS"])}
    assert {"ukis-csmask-6b-l2a", "ukis-csmask-4b-l1c"} <= ids
    rc, js, out, err = qgis_process("run", "spectraltf:segment", "--", f"INPUT={src}",
                                    f"MODEL={tmp_path / 'nothing.onnx'}", f"OUTPUT={tmp_path / 'x.tif'}",
                                    json_output=False)
    assert rc != 0 and "MODEL: model file not found" in out + err and "Traceback" not in out + err


# ---------------------------------------------------------------------------------------------
# ukis-csmask parity on the real labelled chips
# ---------------------------------------------------------------------------------------------
BAND_ORDER = ["blue", "green", "red", "nir", "swir16", "swir22"]
#: Centre wavelengths (nm) written into the chips, per sensor (S2 MSI, Landsat 5 TM, Landsat 7 ETM+).
CHIP_WAVELENGTHS = {"sentinel2": [490, 560, 665, 842, 1610, 2190], "landsat5": [485, 560, 660, 830, 1650, 2215],
                    "landsat7": [477, 560, 661, 835, 1648, 2205]}


def write_chip(name, folder, with_names):
    data = np.load(shared("multispectral", f"{name}.npz"))
    img = np.moveaxis(data["img"], -1, 0)
    path = seg_models.write_raster(os.path.join(folder, f"{name}.tif"), img,
                                   BAND_ORDER if with_names else None, CHIP_WAVELENGTHS[name])
    return path, data["img"], data["msk"][..., 0]


def iou(pred, label):
    inter, union = np.sum(pred & label), np.sum(pred | label)
    return inter / union if union else 1.0


@pytest.mark.slow
def test_ukis_csmask_parity_on_real_chips(processing_provider, tmp_path):
    import processing
    from ukis_csmask.mask import CSmask

    for i, name in enumerate(["sentinel2", "landsat5", "landsat7"]):
        path, img, msk = write_chip(name, tmp_path, with_names=(i == 0))  # Landsat: matched by wavelength
        out = processing.run("spectraltf:segment", {"INPUT": [path], "MODEL": "ukis-csmask-6b-l2a", "DEVICE": "cpu",
                                                    "OUTPUT": str(tmp_path / f"{name}_cls.tif")})
        mine = seg_models.read(out["OUTPUT"])
        ref = CSmask(img.copy(), BAND_ORDER, product_level="l2a", providers=["CPUExecutionProvider"]).csm[..., 0]
        agree = float(np.mean(mine == ref))
        ious = {cls: (iou(mine == v, msk == lab), iou(ref == v, msk == lab))
                for cls, v, lab in (("cloud", 1, 4), ("shadow", 2, 0))}
        print(f"{name}: agreement {agree:.4%}; IoU cloud {ious['cloud'][0]:.4f} (ukis {ious['cloud'][1]:.4f}), "
              f"shadow {ious['shadow'][0]:.4f} (ukis {ious['shadow'][1]:.4f})")
        assert agree >= 0.99
        for cls, (m, r) in ious.items():
            assert m >= r - 0.005, (name, cls, m, r)


def test_narrow_nir_is_preferred_over_broad_nir(tmp_path):
    """A model band B8A (narrow NIR) takes the raster's B8A, not B8, even though both are 'NIR'."""
    from spectral_transformers.runtime.physics import band_matching

    names = ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12"]
    src = seg_models.write_raster(tmp_path / "s2.tif", RNG.random((13, 4, 4)), names)
    bands = [{"name": "B02", "aliases": ["Blue"]}, {"name": "B8A", "aliases": ["Narrow NIR"]},
             {"name": "nir"}, {"name": "B12"}]
    picked, how = band_matching.match_bands(gdal.Open(src), bands, path=src)
    assert picked == [2, 9, 8, 13], how
