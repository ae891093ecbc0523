"""import-terratorch and the ``terratorch`` tiling scheme against TerraTorch's OWN output.

TerraTorch (1.2.11) runs in ``.venv-terratorch`` (built here by ``scripts/setup_terratorch.sh``,
idempotent): it makes random-init models saved as ``terratorch fit`` leaves them (fit YAML +
Lightning .ckpt) and computes ``tiled_inference`` on the real Sen1Floods11 chip
(``tests/terratorch_reference.py``). The plugin side imports the model with
``python -m spectral_transformers.training import-terratorch`` and runs ``spectraltf:segment``.
Nothing here is skipped when TerraTorch is missing: it is installed.
"""
import datetime
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from support import PLUGINS, REPO, qgis_process, require_torch, shared

pytestmark = pytest.mark.timeout(1800)

TT_PY = REPO / ".venv-terratorch" / "bin" / "python"
REF = REPO / "tests" / "terratorch_reference.py"
CHIP = ("multispectral", "Spain_7370579_S2Hand.tif")
#: 1-based bands of the 13-band L1C chip: B02, B03, B04, B8A, B11, B12 (HLS BLUE … SWIR_2)
CHIP_BANDS = [2, 3, 4, 9, 12, 13]
DATES = ["2019-03-01", "2019-09-15"]
WINDOW = (150, 200)  # row, col of the single 224 x 224 window
SPECS = {
    "upernet": {"backbone": "prithvi_eo_tiny", "decoder": "UperNetDecoder", "indices": [0, 1, 2, 3], "seed": 1},
    "fcn": {"backbone": "prithvi_eo_tiny", "decoder": "FCNDecoder", "seed": 2},
    "tl": {"backbone": "prithvi_eo_v2_tiny_tl", "decoder": "UperNetDecoder", "indices": [2, 5, 8, 11], "frames": 2,
           "seed": 3},
}
FIGURES = {}


@pytest.fixture(scope="module", autouse=True)
def _write_figures():
    """Parity figures of this run → build/terratorch-parity.json (for the record)."""
    yield
    if FIGURES:
        out = REPO / "build" / "terratorch-parity.json"
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps(FIGURES, indent=1))


def _run(cmd, timeout=1200, **kw):
    env = dict(os.environ, PYTHONPATH=str(PLUGINS), OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, env=env, **kw)
    if proc.returncode != 0:
        raise AssertionError(f"{cmd[:4]} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc


@pytest.fixture(scope="session")
def tt_python():
    """TerraTorch's interpreter; the idempotent setup step builds it on a fresh clone (where this
    Python has a CPU torch wheel: elsewhere skipped with the reason make setup recorded)."""
    require_torch()
    _run(["bash", REPO / "scripts" / "setup_terratorch.sh"], timeout=3000)
    return TT_PY


def _read_chip(path, bands):
    from osgeo import gdal

    ds = gdal.Open(str(path))
    return np.stack([ds.GetRasterBand(b).ReadAsArray().astype(np.float32) for b in bands]), ds


def _write_frame(path, src_ds, array13, date):
    """A 13-band GeoTIFF on the chip's grid with an ACQUISITION_DATE."""
    from osgeo import gdal

    drv = gdal.GetDriverByName("GTiff")
    out = drv.Create(str(path), src_ds.RasterXSize, src_ds.RasterYSize, array13.shape[0], gdal.GDT_Int16)
    out.SetGeoTransform(src_ds.GetGeoTransform())
    out.SetProjection(src_ds.GetProjection())
    out.SetMetadataItem("ACQUISITION_DATE", date)
    for i in range(array13.shape[0]):
        b = out.GetRasterBand(i + 1)
        b.WriteArray(array13[i])
        b.SetDescription(src_ds.GetRasterBand(i + 1).GetDescription())
    out = None


def _window_tif(src, dst):
    from osgeo import gdal

    r, c = WINDOW
    gdal.Translate(str(dst), str(src), srcWin=[c, r, 224, 224])


def _centre(path):
    from osgeo import gdal

    ds = gdal.Open(str(path))
    gt = ds.GetGeoTransform()  # EPSG:4326 chip: x = lon, y = lat
    return gt[3] + ds.RasterYSize / 2 * gt[5], gt[0] + ds.RasterXSize / 2 * gt[1]


@pytest.fixture(scope="module")
def models(tt_python, chip_inputs, tmp_path_factory):
    """Each model, lazily and once: made by TerraTorch (saved as 'terratorch fit' leaves it),
    imported by the plugin's CLI, and TerraTorch's tiled_inference of the chip and of the window."""
    cache = {}

    def get(kind):
        if kind in cache:
            return cache[kind]
        d = tmp_path_factory.mktemp(f"tt-{kind}")
        spec = dict(SPECS[kind])
        temporal = spec.get("frames", 1) > 1
        full, win = (chip_inputs["two"], chip_inputs["two_w"]) if temporal else (chip_inputs["one"], chip_inputs["one_w"])
        spec["calibrate"] = str(full)
        if kind == "tl":
            spec.update(dates=DATES, location=list(chip_inputs["centre"]))
        (d / "spec.json").write_text(json.dumps(spec))
        # TerraTorch at full float32, and as imported (its import lowers matmul precision to "medium")
        jobs = [{"pixels": str(full), "out": str(d / "ref_full.npy")},
                {"pixels": str(win), "out": str(d / "ref_win.npy")},
                {"pixels": str(full), "out": str(d / "ref_full_medium.npy"), "precision": "medium"}]
        if kind == "tl":
            for job in (jobs[0], jobs[2]):
                job.update(dates=DATES, location=list(chip_inputs["centre"]))
            jobs[1].update(dates=DATES, location=list(chip_inputs["centre_w"]))
        (d / "jobs.json").write_text(json.dumps(jobs))
        # one TerraTorch process: make the model, save it, reload the saved files, tiled_inference
        out = _run([tt_python, REF, "make-model", d / "spec.json", d, d / "jobs.json"]).stdout
        made = json.loads([line for line in out.splitlines() if line.startswith("{")][-1])
        onnx_path = d / f"tt-{kind}.onnx"
        proc = _run([tt_python, "-m", "spectral_transformers.training", "import-terratorch", "--config",
                     made["config"], "--checkpoint", made["checkpoint"], "--output", onnx_path,
                     "--license", "Apache-2.0"])
        cache[kind] = dict(made, onnx=str(onnx_path), dir=d, log=proc.stdout,
                           ref_full=np.load(jobs[0]["out"]), ref_win=np.load(jobs[1]["out"]),
                           ref_full_medium=np.load(jobs[2]["out"]))
        return cache[kind]

    return get


@pytest.fixture(scope="module")
def chip_inputs(tmp_path_factory):
    """Raw band values of the chip (6, H, W), a mirrored second date, and their GeoTIFFs + windows."""
    src = shared(*CHIP)
    d = tmp_path_factory.mktemp("chip")
    six, ds = _read_chip(src, CHIP_BANDS)
    all13, _ = _read_chip(src, range(1, 14))
    f1, f2 = d / "frame1.tif", d / "frame2.tif"
    _write_frame(f1, ds, all13.astype(np.int16), DATES[0])
    _write_frame(f2, ds, all13[:, :, ::-1].astype(np.int16), DATES[1])
    w1, w2, wsrc = d / "frame1_win.tif", d / "frame2_win.tif", d / "chip_win.tif"
    for a, b in ((f1, w1), (f2, w2), (src, wsrc)):
        _window_tif(a, b)
    r, c = WINDOW
    one = d / "one.npy"
    np.save(one, six)
    one_w = d / "one_win.npy"
    np.save(one_w, np.ascontiguousarray(six[:, r:r + 224, c:c + 224]))
    two = np.stack([six, six[:, :, ::-1]])
    two_p, two_w = d / "two.npy", d / "two_win.npy"
    np.save(two_p, np.ascontiguousarray(two))
    np.save(two_w, np.ascontiguousarray(two[..., r:r + 224, c:c + 224]))
    return {"src": src, "f1": f1, "f2": f2, "w1": w1, "w2": w2, "wsrc": wsrc, "one": one, "one_w": one_w,
            "two": two_p, "two_w": two_w, "centre": _centre(src), "centre_w": _centre(wsrc), "dir": d}


def _segment(inputs, model, out, **extra):
    import processing

    params = {"INPUT": [str(p) for p in inputs], "MODEL": model, "BANDS": ",".join(map(str, CHIP_BANDS)),
              "DEVICE": "cpu", "OUTPUT": str(out), "OUTPUT_PROBABILITIES": str(out) + ".prob.tif"}
    params.update(extra)
    processing.run("spectraltf:segment", params)
    from osgeo import gdal

    ds = gdal.Open(str(out))
    cls = ds.GetRasterBand(1).ReadAsArray()
    pds = gdal.Open(str(out) + ".prob.tif")
    prob = np.stack([pds.GetRasterBand(i + 1).ReadAsArray() for i in range(pds.RasterCount)])
    return cls, prob


def _softmax(x):
    e = np.exp(x - x.max(0, keepdims=True))
    return e / e.sum(0, keepdims=True)


def _compare(name, cls, prob, ref_logits):
    ref_cls = ref_logits.argmax(0)
    agree = float(np.mean(cls == ref_cls))
    pdiff = float(np.max(np.abs(prob - _softmax(ref_logits))))
    lone_frac = float(np.mean(ref_cls == 1))
    FIGURES[name] = {"agreement_pct": round(100 * agree, 4), "max_prob_diff": pdiff,
                     "water_fraction_ref": round(lone_frac, 4)}
    print(f"\n[terratorch parity] {name}: class agreement {100 * agree:.4f} % of {cls.size} px, "
          f"max |p - p_ref| {pdiff:.2e}, reference class-1 share {100 * lone_frac:.1f} %")
    assert 0.1 <= lone_frac <= 0.9, f"{name}: degenerate reference map ({100 * lone_frac:.1f} % class 1)"
    return agree


def test_tiling_grid_and_blend_equal_terratorch(tt_python, tmp_path):
    """The terratorch scheme's windows and weights reproduce tiled_inference on a position-dependent
    fake model (not one of TerraTorch's defaults only: odd sizes, other crop/stride/delta)."""
    from spectral_transformers.runtime.models import tiling

    cases = [(512, 512, 224, 192, 8), (300, 701, 224, 192, 8), (224, 500, 224, 192, 8), (230, 230, 224, 192, 8),
             (225, 1000, 224, 192, 8), (400, 333, 64, 40, 6), (97, 150, 32, 20, 8)]
    jobs = [{"h": h, "w": w, "crop": crop, "stride": stride, "delta": delta, "out": str(tmp_path / f"fake{i}.npy")}
            for i, (h, w, crop, stride, delta) in enumerate(cases)]
    (tmp_path / "jobs.json").write_text(json.dumps(jobs))
    _run([tt_python, REF, "fake-tiled", tmp_path / "jobs.json"])
    for (h, w, crop, stride, delta), job in zip(cases, jobs):
        ref, x = np.load(job["out"]), np.load(job["out"] + ".input.npy")
        plan = tiling.make_plan(h, w, crop, crop - stride, delta, "terratorch")

        def predict(r, c):
            t = x[:, plan.row_index(r)][:, :, plan.col_index(c)]
            yy, xx = np.meshgrid(np.arange(crop, dtype=np.float32), np.arange(crop, dtype=np.float32), indexing="ij")
            return t * (1 + yy / crop) + np.sin(xx / 7.0)

        got, wsum = tiling.blend(plan, predict)
        assert wsum.min() > 0
        err = float(np.max(np.abs(got - ref)))
        assert err < 1e-4, (h, w, crop, stride, delta, err)


def test_import_writes_card_from_yaml_and_checkpoint(models):
    from spectral_transformers.runtime.models import model_card

    m = models("upernet")
    card = model_card.load_card(m["onnx"])
    inp = card["input"]
    assert [b["name"] for b in inp["bands"]] == ["Blue", "Green", "Red", "Narrow NIR", "SWIR 1", "SWIR 2"]
    assert [b["wavelength_nm"] for b in inp["bands"]] == [490.0, 560.0, 665.0, 865.0, 1610.0, 2190.0]
    assert inp["scale"] == [0.0001] * 6 and inp["tile_size"] == [224, 224]
    assert inp["mean"][0] == pytest.approx(0.1412956) and inp["std"][5] == pytest.approx(0.07659938)
    assert [c["name"] for c in card["output"]["classes"]] == ["dry", "water"]
    assert card["tiling"] == {"overlap": 32.0, "crop": 8, "scheme": "terratorch"}
    assert card["license"] == "Apache-2.0" and card["source"]["framework"] == "TerraTorch"
    assert card["source"]["backbone"] == "prithvi_eo_tiny" and card["source"]["decoder"] == "UperNetDecoder"
    assert "temporal_coords" not in inp
    # the importer's own ONNX Runtime vs PyTorch check on random input
    import re

    found = re.search(r"max \|logit diff\| ([0-9.e+-]+), same class ([0-9.]+) %", m["log"])
    assert found, m["log"]
    FIGURES["importer check (upernet, random input)"] = {"max_logit_diff": float(found.group(1)),
                                                        "same_class_pct": float(found.group(2))}
    assert float(found.group(1)) < 1e-2 and float(found.group(2)) >= 99.9


@pytest.mark.parametrize("kind", ["upernet", "fcn"])
def test_segment_equals_terratorch_tiled_inference(kind, models, chip_inputs, tt_python, processing_provider,
                                                   tmp_path):
    m = models(kind)
    ref, ref_w = m["ref_full"], m["ref_win"]
    cls, prob = _segment([chip_inputs["src"]], m["onnx"], tmp_path / "cls.tif")
    assert _compare(f"{kind} 512x512", cls, prob, ref) >= 0.99
    assert _compare(f"{kind} 512x512 vs TerraTorch at 'medium' matmul precision", cls, prob,
                    m["ref_full_medium"]) >= 0.99
    cls_w, prob_w = _segment([chip_inputs["wsrc"]], m["onnx"], tmp_path / "cls_w.tif")
    assert _compare(f"{kind} 224x224", cls_w, prob_w, ref_w) >= 0.999


def test_tl_model_with_dates_and_location(models, chip_inputs, tt_python, processing_provider, tmp_path):
    """A Prithvi-EO-2.0 _tl model, 2 dates: dates from raster metadata, location = raster centre."""
    from spectral_transformers.runtime.models import model_card

    m = models("tl")
    card = model_card.load_card(m["onnx"])
    assert card["input"]["frames"] == 2 and card["input"]["layout"] == "NCTHW"
    assert card["input"]["temporal_coords"]["tensor"] == "temporal_coords"
    assert card["input"]["location_coords"]["tensor"] == "location_coords"
    ref, ref_w = m["ref_full"], m["ref_win"]
    cls, prob = _segment([chip_inputs["f1"], chip_inputs["f2"]], m["onnx"], tmp_path / "cls.tif")
    assert _compare("tl 512x512 (dates from metadata)", cls, prob, ref) >= 0.99
    assert _compare("tl 512x512 vs TerraTorch at 'medium' matmul precision", cls, prob,
                    m["ref_full_medium"]) >= 0.99
    cls_w, prob_w = _segment([chip_inputs["w1"], chip_inputs["w2"]], m["onnx"], tmp_path / "cls_w.tif",
                             DATES=", ".join(DATES))
    assert _compare("tl 224x224 (DATES parameter)", cls_w, prob_w, ref_w) >= 0.999
    # the coordinates matter: other dates give another map (so the parity above is not vacuous)
    wrong = ["2016-12-24", "2023-06-30"]
    cls_x, prob_x = _segment([chip_inputs["w1"], chip_inputs["w2"]], m["onnx"], tmp_path / "cls_x.tif",
                             DATES=",".join(wrong))
    moved = float(np.max(np.abs(prob_x - prob_w)))
    print(f"\n[terratorch parity] tl 224x224 with other dates: max |p change| {moved:.3f}, class agreement with "
          f"reference {100 * np.mean(cls_x == ref_w.argmax(0)):.2f} %")
    assert moved > 1e-2


@pytest.mark.qgis_process
def test_qgis_process_tl_needs_dates_then_runs(models, chip_inputs, tmp_path):
    """Headless: a _tl model on rasters without dates fails naming DATES; with DATES it runs."""
    m = models("tl")
    w1 = chip_inputs["dir"] / "nodate1.tif"
    w2 = chip_inputs["dir"] / "nodate2.tif"
    from osgeo import gdal

    for a, b in ((chip_inputs["w1"], w1), (chip_inputs["w2"], w2)):
        gdal.Translate(str(b), str(a), metadataOptions=["ACQUISITION_DATE="])
    args = ["run", "spectraltf:segment", "--", f"INPUT={w1}", f"INPUT={w2}", f"MODEL={m['onnx']}",
            "BANDS=" + ",".join(map(str, CHIP_BANDS)), f"OUTPUT={tmp_path / 'c.tif'}"]
    rc, js, out, err = qgis_process(*args)
    assert rc != 0 and "DATES" in (out + err) and not (tmp_path / "c.tif").exists()
    rc, js, out, err = qgis_process(*args, "DATES=" + ",".join(DATES))
    assert rc == 0, err[-2000:]
    assert (tmp_path / "c.tif").exists()


def test_card_rejects_bad_coords_and_scheme():
    from spectral_transformers.runtime.models import model_card
    from spectral_transformers.runtime.errors import ModelError

    base = {"id": "x", "task": "segmentation", "output": {"kind": "logits", "classes": ["a", "b"]},
            "input": {"tile_size": 224, "bands": ["Blue"]}, "tiling": {"scheme": "terratorch", "overlap": 32, "crop": 8}}
    assert model_card.validate_card(base)["tiling"]["scheme"] == "terratorch"
    bad = json.loads(json.dumps(base))
    bad["input"]["temporal_coords"] = {"format": "doy"}
    with pytest.raises(ModelError, match="temporal_coords"):
        model_card.validate_card(bad)
    bad = json.loads(json.dumps(base))
    bad["output"]["kind"] = "sigmoid"
    with pytest.raises(ModelError, match="terratorch"):
        model_card.validate_card(bad)


def test_importer_errors_are_clear(tmp_path, tt_python):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model:\n  init_args:\n    model_args:\n      backbone: prithvi_eo_tiny\n")
    env = dict(os.environ, PYTHONPATH=str(PLUGINS))
    proc = subprocess.run([str(tt_python), "-m", "spectral_transformers.training", "import-terratorch", "--config",
                           str(cfg), "--checkpoint", str(tmp_path / "none.ckpt"), "--output", str(tmp_path / "o.onnx")],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "--config" in proc.stderr and not (tmp_path / "o.onnx").exists()
    proc = subprocess.run([str(tt_python), "-m", "spectral_transformers.training", "import-terratorch", "--config",
                           str(cfg), "--checkpoint", str(tmp_path / "none.ckpt"), "--output", str(tmp_path / "o.txt")],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 2 and "--output" in proc.stderr and "Traceback" not in proc.stderr


def test_temporal_coords_are_year_and_doy0():
    from spectral_transformers.runtime.models import model_coords

    tc = model_coords.temporal_coords([datetime.date(2019, 1, 1), "2020-12-31"])
    assert tc.tolist() == [[2019.0, 0.0], [2020.0, 365.0]]


@pytest.mark.parametrize("shape", [(150, 97), (32, 300), (70, 70)])
def test_streamed_terratorch_scheme_equals_in_memory_logit_blend(tmp_path, shape):
    """run_segmentation's strip-by-strip loop gives tiling.blend's weighted mean of logits."""
    import seg_models

    from spectral_transformers.runtime.models import onnx_backend, segmentation, tiling

    card = seg_models.seg_card(tile=32, overlap=12, crop=4)
    card["tiling"]["scheme"] = "terratorch"
    model = seg_models.conv_model(tmp_path / "m.onnx", in_ch=3, classes=3, kernel=5, card=card)
    img = np.random.default_rng(0).random((3,) + shape).astype(np.float32)
    src = seg_models.write_raster(tmp_path / "in.tif", img, ["blue", "green", "red"])
    outs = {"classes": str(tmp_path / "c.tif"), "probabilities": str(tmp_path / "p.tif")}
    segmentation.run_segmentation([src], model, outs, threads=1, batch_size=3)
    sess = onnx_backend.load_session(model, "cpu", 1)
    plan = tiling.make_plan(shape[0], shape[1], 32, 12, 4, "terratorch")

    def predict(r, c):
        return sess.run(None, {"x": img[:, plan.row_index(r)][:, :, plan.col_index(c)][None]})[0][0]

    logits, _ = tiling.blend(plan, predict)
    ref = segmentation.softmax(logits[None].astype(np.float32))[0]
    assert np.allclose(seg_models.read(outs["probabilities"]), ref, atol=2e-6)
    assert np.array_equal(seg_models.read(outs["classes"]), ref.argmax(0))
