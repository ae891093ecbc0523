"""L-TAE: dates, training on real eo-learn NDVI, ONNX export parity, streaming temporal attention."""
import datetime as dt
import json
import os
import time

import numpy as np
import pytest
from osgeo import gdal

from support import require_torch, shared

from spectral_transformers.runtime.io import dates as dates_mod
from spectral_transformers.runtime.models import ltae as rt
from spectral_transformers.runtime.errors import Cancelled, InputError, ModelError
from spectral_transformers.runtime.monitor import RecordingMonitor
from spectral_transformers.runtime.pipeline import write_array
from spectral_transformers.runtime.io.raster_io import Grid

torch = require_torch()
torch.set_num_threads(1)
ort = pytest.importorskip("onnxruntime")
from spectral_transformers.training import ltae  # noqa: E402

EOLEARN = ("timeseries", "eolearn")


@pytest.fixture(scope="module")
def eolearn():
    return ltae.load_eolearn(str(shared(*EOLEARN, "ndvi.npy").parent))


@pytest.fixture(scope="module")
def trained(eolearn, tmp_path_factory):
    """A tiny L-TAE trained on a subset of the real NDVI (first 24 dates), exported to ONNX."""
    data = dict(eolearn)
    t = 24
    train_mask, test_mask = ltae.spatial_split(101, 100, 25)
    labelled = data["labels"] > 0
    x = ltae.pixels(data["cube"][:t], mask=train_mask & labelled)[::3]
    y = data["labels"][train_mask & labelled][::3]
    doy = ltae.positions_for(data["dates"][:t], "days_since_first")
    t0 = time.time()
    model, info = ltae.train(x, doy, y, class_values=[1, 2, 3, 4, 8], epochs=4, d_model=32, n_head=4, d_k=8,
                             mlp_hidden=32)
    seconds = time.time() - t0
    card = ltae.make_card(model, info, "ltae-test", ["NDVI"], dates_policy="days_since_first")
    path = str(tmp_path_factory.mktemp("ltae") / "ltae-test.onnx")
    ltae.export_onnx(model, path, card)
    return {"model": model, "info": info, "path": path, "card": card, "seconds": seconds, "t": t, "doy": doy,
            "test_mask": test_mask & labelled, "data": data}


# ---------------------------------------------------------------------------------------------
# dates
# ---------------------------------------------------------------------------------------------
def test_parse_dates_variants():
    assert dates_mod.parse_dates_list("2016-05-06, 20160516 ,2016-05-26T10:06:11") == [
        dt.date(2016, 5, 6), dt.date(2016, 5, 16), dt.date(2016, 5, 26)]
    assert dates_mod.parse_date("2016:05:06 10:05:27") == dt.date(2016, 5, 6)
    assert dates_mod.parse_date("2016-13-40") is None
    with pytest.raises(InputError, match="^dates: "):
        dates_mod.parse_dates_list("2016-05-06, yesterday")
    assert dates_mod.date_from_filename("/x/S2A_20160506_ndvi.tif") == dt.date(2016, 5, 6)
    assert dates_mod.date_from_filename("ndvi_003_2016-05-16.tif") == dt.date(2016, 5, 16)
    assert dates_mod.date_from_filename("tile_123456789.tif") is None
    assert dates_mod.date_from_filename("scene_20161345.tif") is None


def test_dates_from_metadata_and_filename(tmp_path):
    a = write_array(str(tmp_path / "a.tif"), np.zeros((1, 2, 2), np.float32))
    b = write_array(str(tmp_path / "b_20170301.tif"), np.zeros((1, 2, 2), np.float32))
    c = write_array(str(tmp_path / "c.tif"), np.zeros((1, 2, 2), np.float32))
    ds = gdal.Open(a, gdal.GA_Update)
    ds.SetMetadataItem("TIFFTAG_DATETIME", "2017:02:01 10:00:00")
    ds = None
    ds = gdal.Open(c, gdal.GA_Update)
    ds.SetMetadataItem("ACQUISITION_DATE", "2017-04-01T10:00:00Z")
    ds = None
    paths = [a, b, c]
    dss = [gdal.Open(p) for p in paths]
    dates, source = dates_mod.resolve_dates(3, None, dss, paths)
    assert dates == [dt.date(2017, 2, 1), dt.date(2017, 3, 1), dt.date(2017, 4, 1)]
    assert source == "metadata+filename"
    with pytest.raises(InputError, match="^dates: .*2 dates given.*3"):
        dates_mod.resolve_dates(3, "2017-01-01,2017-01-02", dss, paths)
    with pytest.raises(InputError, match="^dates: .*stack"):
        dates_mod.resolve_dates(3, None, [], [])


def test_positions_policies():
    d = [dt.date(2016, 12, 31), dt.date(2017, 1, 10)]
    assert dates_mod.positions(d, "day_of_year").tolist() == [366, 10]
    assert dates_mod.positions(d, "days_since_first").tolist() == [0, 10]
    assert dates_mod.positions(d, "days_since_reference", "2016-12-01").tolist() == [30, 40]


# ---------------------------------------------------------------------------------------------
# training and export
# ---------------------------------------------------------------------------------------------
def test_training_tiny_ltae_on_real_ndvi(trained):
    """A few epochs on a subset of the real eo-learn NDVI series: fast, and it learns."""
    hist = trained["info"]["history"]
    assert trained["seconds"] < 30
    assert hist[-1]["loss"] < hist[0]["loss"] * 0.9
    data = trained["data"]
    x = ltae.pixels(data["cube"][:trained["t"]], mask=trained["test_mask"])
    y = data["labels"][trained["test_mask"]]
    logits, att = ltae.predict(trained["model"], x, trained["doy"])
    pred = np.array(trained["info"]["class_values"])[logits.argmax(1)]
    # held-out pixels (spatially disjoint): better than guessing uniformly among the 5 classes
    assert (pred == y).mean() > 0.4
    assert att.shape == (len(x), 4, trained["t"])
    np.testing.assert_allclose(att.sum(-1), 1.0, atol=1e-5)


def test_card_contents(trained):
    meta = {p.key: p.value for p in __import__("onnx").load(trained["path"]).metadata_props}
    card = json.loads(meta["model_card"])
    assert card["task"] == "temporal-attention" and card["architecture"] == "ltae"
    assert card["bands"] == ["NDVI"] and card["heads"] == 4 and card["d_model"] == 32
    assert len(card["normalisation"]["mean"]) == 1 and card["normalisation"]["std"][0] > 0
    assert card["dates_policy"]["kind"] == "days_since_first"
    assert [c["value"] for c in card["classes"]] == [1, 2, 3, 4, 8]
    assert card["classes"][1]["name"] == "Forest" and card["classes"][1]["color"].startswith("#")
    from spectral_transformers.runtime.models.model_card import load_card

    assert load_card(trained["path"])["id"] == "ltae-test"


@pytest.mark.parametrize("n,t", [(1, 24), (257, 24), (33, 7)])
def test_onnx_matches_pytorch(trained, n, t):
    """ONNX (dynamic N and T) vs the PyTorch module: logits 1e-4, attention 1e-5."""
    data = trained["data"]
    x = ltae.pixels(data["cube"][:t])[:n]
    doy = ltae.positions_for(data["dates"][:t], "days_since_first")
    sess = ort.InferenceSession(trained["path"], providers=["CPUExecutionProvider"])
    logits, attention = sess.run(["logits", "attention"], {"series": x, "doy": doy})
    ref_l, ref_a = ltae.predict(trained["model"], x, doy)
    assert attention.shape == (n, 4, t)
    np.testing.assert_allclose(logits, ref_l, atol=1e-4, rtol=0)
    np.testing.assert_allclose(attention, ref_a, atol=1e-5, rtol=0)


def test_checkpoint_roundtrip_and_cli(trained, tmp_path):
    ckpt = str(tmp_path / "m.pt")
    ltae.save_checkpoint(ckpt, trained["model"], trained["card"])
    out = str(tmp_path / "m.onnx")
    assert ltae.main_export([ckpt, out]) == 0
    x = ltae.pixels(trained["data"]["cube"][:5])[:10]
    doy = trained["doy"][:5]
    a = ort.InferenceSession(out).run(None, {"series": x, "doy": doy})
    b = ort.InferenceSession(trained["path"]).run(None, {"series": x, "doy": doy})
    np.testing.assert_allclose(a[0], b[0], atol=1e-6)
    from spectral_transformers.training.__main__ import COMMANDS

    assert "ltae-train" in COMMANDS and "ltae-export" in COMMANDS


# ---------------------------------------------------------------------------------------------
# streaming runtime
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def date_rasters(trained, tmp_path_factory):
    data = trained["data"]
    folder = tmp_path_factory.mktemp("dates")
    t = 6
    cube = data["cube"][:t, :, :40, :30].copy()
    cube[2, 0, 5, 7] = np.nan  # one nodata pixel on one date
    paths = ltae.write_date_rasters(cube, data["dates"][:t], str(folder), data["bbox"], data["epsg"])
    return {"paths": paths, "cube": cube, "dates": data["dates"][:t], "folder": folder}


def test_streaming_matches_direct_onnx(trained, date_rasters, tmp_path):
    mon = RecordingMonitor()
    out, heads, cls = (str(tmp_path / n) for n in ("att.tif", "heads.tif", "cls.tif"))
    res = rt.temporal_attention(date_rasters["paths"], trained["path"], out, output_heads=heads,
                                output_classes=cls, monitor=mon, block_budget=30 * 4 * 36 * 5, batch_size=100)
    assert res["dates_source"] == "metadata"
    assert len(mon.fractions) > 2 and mon.fractions[-1] == pytest.approx(1.0)
    assert np.all(np.diff(mon.fractions) > 0)
    cube = date_rasters["cube"]
    x = ltae.pixels(cube)
    doy = ltae.positions_for(date_rasters["dates"], "days_since_first")
    ok = np.isfinite(x).all(axis=(1, 2))
    logits, att = ort.InferenceSession(trained["path"]).run(None, {"series": x[ok], "doy": doy})
    ds = gdal.Open(out)
    assert ds.RasterCount == 6
    assert ds.GetRasterBand(1).GetDescription() == date_rasters["dates"][0].isoformat()
    assert ds.GetGeoTransform() == gdal.Open(date_rasters["paths"][0]).GetGeoTransform()
    got = ds.ReadAsArray().reshape(6, -1)
    np.testing.assert_allclose(got[:, ok], att.mean(1).T, atol=1e-6)
    assert np.all(got[:, ~ok] == rt.ATTENTION_NODATA)
    got_heads = gdal.Open(heads).ReadAsArray().reshape(4 * 6, -1)
    np.testing.assert_allclose(got_heads[:, ok], att.reshape(len(att), -1).T, atol=1e-6)
    c = gdal.Open(cls)
    classes = c.ReadAsArray().reshape(-1)
    np.testing.assert_array_equal(classes[ok], np.array([1, 2, 3, 4, 8])[logits.argmax(1)])
    assert classes[~ok].tolist() == [255]
    assert c.GetRasterBand(1).GetColorTable().GetColorEntry(2)[:3] == (5, 73, 7)
    assert os.path.exists(str(tmp_path / "att.qml")) and os.path.exists(str(tmp_path / "cls.qml"))


def test_stack_input_needs_dates_and_matches(trained, date_rasters, tmp_path):
    cube = date_rasters["cube"]
    stack = write_array(str(tmp_path / "stack.tif"), cube.reshape(6, 40, 30))  # date-major, C = 1
    with pytest.raises(InputError, match="^dates_text: .*needs the dates_text parameter"):
        rt.temporal_attention([stack], trained["path"], str(tmp_path / "s.tif"))
    iso = ",".join(d.isoformat() for d in date_rasters["dates"])
    rt.temporal_attention([stack], trained["path"], str(tmp_path / "s.tif"), dates_text=iso)
    a = gdal.Open(str(tmp_path / "s.tif")).ReadAsArray()
    rt.temporal_attention(date_rasters["paths"], trained["path"], str(tmp_path / "p.tif"))
    np.testing.assert_allclose(a, gdal.Open(str(tmp_path / "p.tif")).ReadAsArray(), atol=1e-7)


def test_cancellation_leaves_no_output(trained, date_rasters, tmp_path):
    out = str(tmp_path / "att.tif")
    with pytest.raises(Cancelled):
        rt.temporal_attention(date_rasters["paths"], trained["path"], out, output_classes=str(tmp_path / "c.tif"),
                              monitor=RecordingMonitor(cancel_after=2), block_budget=30 * 4 * 36 * 5)
    assert os.listdir(tmp_path) == []


def test_bad_inputs(trained, date_rasters, tmp_path):
    paths = date_rasters["paths"]
    out = str(tmp_path / "o.tif")
    with pytest.raises(InputError, match="^dates_text: .*3 dates given.*6"):
        rt.temporal_attention(paths, trained["path"], out, dates_text="2016-01-01,2016-02-01,2016-03-01")
    other = write_array(str(tmp_path / "small_20170101.tif"), np.zeros((1, 10, 10), np.float32))
    with pytest.raises(InputError, match="input.*raster 7.*share one grid"):
        rt.temporal_attention(paths + [other], trained["path"], out)
    g = Grid.of(gdal.Open(paths[0]))
    g.geotransform = (g.geotransform[0] + 100,) + tuple(g.geotransform[1:])
    shifted = write_array(str(tmp_path / "shift_20170101.tif"), np.zeros((1, 40, 30), np.float32), grid=g)
    with pytest.raises(InputError, match="input.*georeferencing"):
        rt.temporal_attention(paths + [shifted], trained["path"], out)
    two = write_array(str(tmp_path / "two_20170101.tif"), np.zeros((2, 40, 30), np.float32), grid=Grid.of(gdal.Open(paths[0])))
    with pytest.raises(InputError, match="input.*2 bands.*1 channel"):
        rt.temporal_attention(paths + [two], trained["path"], out)
    assert not os.path.exists(out)


def test_models_without_attention_are_rejected(tmp_path):
    pytest.importorskip("onnx")
    from support import add_onnx

    path = add_onnx(tmp_path / "add.onnx")
    with pytest.raises(ModelError, match="model.*no 'attention' output"):
        rt.resolve_attention_model(path)
    with open(str(tmp_path / "add.json"), "w") as fh:  # a segmentation card does not help
        json.dump({"id": "seg", "task": "segmentation", "input": {"bands": ["r"], "tile_size": 8},
                   "output": {"kind": "logits", "classes": ["a", "b"]}}, fh)
    with pytest.raises(ModelError, match="model.*segmentation"):
        rt.resolve_attention_model(path)
