"""SpectralGPT / SpectralEarth importers: upstream key layouts, ONNX = rebuilt PyTorch, segment runs.

No upstream code here: the checkpoints are seeded random states with exactly the key names and
shapes recorded from the official code (``training/layouts/*.json``, written by
``scripts/check_foundation_upstream.py --write-layouts``), saved in the upstream formats. The
comparison with the upstream forward pass itself is that script's job (see models/README.md).
Each model is exported once per test session (ViT-B is large on two cores).
"""
import argparse
import json
import os

import numpy as np
import pytest

from support import qgis_process, require_torch, shared

torch = require_torch()
import yaml  # noqa: E402

from spectral_transformers.runtime.models import model_card, tile_norm  # noqa: E402
from spectral_transformers.training import foundation_io as fio  # noqa: E402
from spectral_transformers.training import spectralearth as se  # noqa: E402
from spectral_transformers.training import spectralgpt as sg  # noqa: E402
from spectral_transformers.training.__main__ import main as training_main  # noqa: E402

GPT_LAYOUT = fio.recorded_layout("spectralgpt-vit-base-segmunich")
SE_LAYOUT = fio.recorded_layout("spectralearth-spec-vit-small-p4-cdl")


def _gdal():
    from osgeo import gdal
    return gdal


def _gpt_checkpoint(path, state):
    """The layout of the SegMunich training script's save_file."""
    torch.save({"model": state, "optimizer": {"state": {}, "param_groups": [{"lr": 1e-4, "params": [0]}]},
                "lr_scheduler": {"last_epoch": 3}, "epoch": 3,
                "args": argparse.Namespace(num_classes=12, lr=1e-4, batch_size=8)}, path)
    return str(path)


def _se_files(folder, state):
    """Lightning-style .ckpt, composed config, statistics and band table for a seeded state."""
    ckpt = os.path.join(folder, "last.ckpt")
    torch.save({"epoch": 9, "global_step": 100, "pytorch-lightning_version": "2.4.0", "state_dict": state,
                "loops": {}, "callbacks": {}, "optimizer_states": [], "lr_schedulers": []}, ckpt)
    cfg = os.path.join(folder, "config.yaml")
    with open(cfg, "w") as f:
        yaml.safe_dump(SE_LAYOUT["config"], f)
    rows = SE_LAYOUT["bands_csv"]
    csv_path = os.path.join(folder, "bands.csv")
    with open(csv_path, "w") as f:
        f.write("idx,center_nm,fwhm_nm,original_idx\r\n")
        f.writelines(f"{i},{c},{w},{o}\r\n" for i, c, w, o in rows)
    stats = os.path.join(folder, "statistics")
    os.makedirs(stats)
    rng = np.random.default_rng(0)
    np.save(os.path.join(stats, "mu.npy"), (800 + 1500 * rng.random(len(rows))).astype(np.float32))
    np.save(os.path.join(stats, "sigma.npy"), (500 + 1000 * rng.random(len(rows))).astype(np.float32))
    return ckpt, cfg, stats, csv_path


@pytest.fixture(scope="session")
def gpt_model(tmp_path_factory):
    d = tmp_path_factory.mktemp("spectralgpt")
    state = fio.seeded_state(GPT_LAYOUT["keys"], seed=0)
    ckpt = _gpt_checkpoint(d / "best_model.pth", state)
    res = sg.import_checkpoint(ckpt, str(d / "spectralgpt.onnx"), log=lambda m: None)
    return d / "spectralgpt.onnx", res


@pytest.fixture(scope="session")
def se_model(tmp_path_factory):
    d = tmp_path_factory.mktemp("spectralearth")
    state = fio.seeded_state(SE_LAYOUT["keys"], seed=1)
    files = _se_files(str(d), state)
    out = d / "spectralearth.onnx"
    rc = training_main(["import-spectralearth", "--checkpoint", files[0], "--config", files[1], "--statistics",
                        files[2], "--bands-csv", files[3], "--output", str(out), "--license", "CC-BY-4.0"])
    assert rc == 0
    return out, files


# -- layouts ----------------------------------------------------------------------------------

def test_rebuilt_spectralgpt_has_exactly_the_upstream_layout():
    model = sg.SpectralGPTSegmenter(768, 12, 12, 13)
    assert sg.expected_layout(model) == GPT_LAYOUT["keys"]
    assert sg.infer_architecture(fio.seeded_state(GPT_LAYOUT["keys"])) == (768, 12, 12, 13)


def test_rebuilt_spectralearth_has_exactly_the_upstream_layout():
    state = {k[len(se.PREFIX):]: torch.zeros(s) for k, s in SE_LAYOUT["keys"].items()}
    arch = se.architecture(SE_LAYOUT["config"], state)
    assert (arch["backbone"], arch["patch"], arch["classes"], arch["tile"], arch["bands"]) == \
        ("spec_vit_small", 4, 14, 128, 202)
    expected = {se.PREFIX + k: v for k, v in se.expected_layout(se.build(arch)).items()}
    assert expected == SE_LAYOUT["keys"]


def test_spectralearth_class_table_follows_the_upstream_ordinal_map():
    cfg = {"data": {"classes": [0, 1, 5, 24]}}
    assert se.class_table(cfg, 3) == [(0, 1), (1, 5), (2, 24)]          # background ignored (ignore_index)
    assert se.class_table(cfg, 4) == [(0, 1), (1, 5), (2, 24), (3, 0)]  # background last
    assert se.cfg_value({"a": {"b": "${c.d}"}, "c": {"d": 7}}, "a.b") == 7


# -- refusals (before any export work) --------------------------------------------------------

def test_spectralgpt_refuses_wrong_layouts_and_unsafe_pickles(tmp_path, capsys):
    state = fio.seeded_state(GPT_LAYOUT["keys"], seed=0, std=0.0)
    bad = dict(state)
    bad["decoder.fuse_all.0.weight"] = torch.zeros(256, 512, 1, 1)
    del bad["blocks.3.attn.q.bias"]
    ckpt = _gpt_checkpoint(tmp_path / "bad.pth", bad)
    rc = training_main(["import-spectralgpt", "--checkpoint", ckpt, "--output", str(tmp_path / "x.onnx")])
    err = capsys.readouterr().err
    assert rc == 2 and "blocks.3.attn.q.bias" in err and "decoder.fuse_all.0.weight: [256, 512, 1, 1]" in err
    assert not os.path.exists(tmp_path / "x.onnx")

    mae = {k: v for k, v in state.items() if not k.startswith(("cls_seg", "decoder.", "conv", "fc."))}
    mae["mask_token"] = torch.zeros(1, 1, 768)
    mae["decoder_embed.weight"] = torch.zeros(512, 768)
    rc = training_main(["import-spectralgpt", "--checkpoint", _gpt_checkpoint(tmp_path / "mae.pth", mae),
                        "--output", str(tmp_path / "x.onnx")])
    assert rc == 2 and "MAE pre-training checkpoint" in capsys.readouterr().err

    import fractions
    torch.save({"model": {"patch_embed.proj.weight": torch.zeros(768, 1, 3, 8, 8)}, "args": fractions.Fraction(1, 3)},
               tmp_path / "evil.pth")
    rc = training_main(["import-spectralgpt", "--checkpoint", str(tmp_path / "evil.pth"), "--output",
                        str(tmp_path / "x.onnx")])
    err = capsys.readouterr().err
    assert rc == 2 and "weights_only=True" in err and "Traceback" not in err


def test_spectralearth_refuses_config_mismatch(tmp_path, capsys):
    state = {k: torch.zeros(s) for k, s in SE_LAYOUT["keys"].items()}
    ckpt, cfg, stats, csv_path = _se_files(str(tmp_path), state)
    wrong = dict(SE_LAYOUT["config"], model=dict(SE_LAYOUT["config"]["model"], token_patch_size=8))
    with open(cfg, "w") as f:
        yaml.safe_dump(wrong, f)
    rc = training_main(["import-spectralearth", "--checkpoint", ckpt, "--config", cfg, "--statistics", stats,
                        "--bands-csv", csv_path, "--output", str(tmp_path / "x.onnx")])
    assert rc == 2 and "token_patch_size is 8" in capsys.readouterr().err
    rc = training_main(["import-spectralearth", "--checkpoint", ckpt, "--config", cfg, "--statistics",
                        str(tmp_path / "nowhere"), "--bands-csv", csv_path, "--output", str(tmp_path / "x.onnx")])
    assert rc == 2 and "--" in capsys.readouterr().err


# -- per-tile min-max -------------------------------------------------------------------------

def test_tile_minmax_uses_valid_pixels_only():
    rng = np.random.default_rng(0)
    tiles = rng.random((2, 1, 3, 8, 8)).astype(np.float32) * 1000
    valid = np.ones((2, 8, 8), bool)
    valid[1, :2] = False
    tiles[1, :, :, :2] = -5000.0  # nodata fill must not become the minimum
    out = tile_norm.apply("tile-minmax", tiles, valid, 1e-9, 0.0)
    ref0 = (tiles[0] - tiles[0].min(axis=(-2, -1), keepdims=True)) / (
        np.ptp(tiles[0], axis=(-2, -1), keepdims=True) + 1e-9)
    assert np.allclose(out[0], ref0, atol=1e-6)
    v = tiles[1, :, :, 2:]
    assert np.allclose(out[1, :, :, 2:], (v - v.min(axis=(-2, -1), keepdims=True)) / (
        np.ptp(v, axis=(-2, -1), keepdims=True) + 1e-9), atol=1e-6)
    assert (out[1, :, :, :2] == 0).all()
    card = {"id": "m", "task": "segmentation", "input": {"tile_size": 8, "bands": ["a"], "normalization": "tile-max"},
            "output": {"kind": "logits", "classes": ["x"]}}
    with pytest.raises(Exception, match="normalization"):
        model_card.validate_card(card)


def test_segment_applies_tile_minmax_per_window_over_valid_pixels(tmp_path):
    import seg_models
    from spectral_transformers.runtime.models import onnx_backend, segmentation

    card = seg_models.seg_card("minmax-seg", tile=32, overlap=8, normalization="tile-minmax")
    model = seg_models.conv_model(tmp_path / "m.onnx", in_ch=3, classes=3, kernel=3, card=card)
    rng = np.random.default_rng(3)
    img = (rng.random((3, 32, 32)) * 9000 + 500).astype(np.float32)
    img[:, :3, :5] = -1                                    # nodata corner
    src = seg_models.write_raster(tmp_path / "in.tif", img, ["blue", "green", "red"], nodata=-1)
    outs = {"classes": str(tmp_path / "c.tif"), "probabilities": str(tmp_path / "p.tif")}
    segmentation.run_segmentation(src, model, outs, threads=1)
    valid = img[0] != -1
    lo = np.array([b[valid].min() for b in img])[:, None, None]
    hi = np.array([b[valid].max() for b in img])[:, None, None]
    x = np.where(valid, (img - lo) / (hi - lo + 1e-9), 0).astype(np.float32)
    sess = onnx_backend.load_session(model, "cpu", 1)
    ref = segmentation.softmax(sess.run(None, {"x": x[None]})[0])[0]
    got = seg_models.read(outs["probabilities"])
    assert np.allclose(got[:, valid], ref[:, valid], atol=1e-5)
    assert (seg_models.read(outs["classes"])[~valid] == 255).all()


# -- export: ONNX equals the rebuilt network; the cards ---------------------------------------

def test_spectralgpt_export_equals_pytorch_and_card(gpt_model):
    path, res = gpt_model
    assert res["max_abs_diff"] <= 1e-3 and res["argmax_agreement"] >= 0.999
    assert os.path.getsize(str(path) + ".data") > 400e6 and os.path.getsize(path) < 5e6  # external data
    card = model_card.load_card(path)
    inp = card["input"]
    assert [b["name"] for b in inp["bands"]] == ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A",
                                                 "B09", "B11", "B12"]
    assert inp["normalization"] == "tile-minmax" and inp["tile_size"] == [128, 128]
    assert len(card["output"]["classes"]) == 13 and card["license"] and "SpectralGPT" in json.dumps(card["source"])


def test_spectralearth_export_equals_pytorch_and_card(se_model):
    path, _ = se_model
    card = model_card.load_card(path)
    inp = card["input"]
    centres = [b["wavelength_nm"] for b in inp["bands"]]
    assert len(centres) == 202 and centres == sorted(centres)
    assert inp["scale"][0] == 10000.0 and inp["normalization"] == "none"
    names = [c["name"] for c in card["output"]["classes"]]
    codes = [c for c in SE_LAYOUT["config"]["data"]["classes"] if c != 0]
    assert names == [f"cdl {c}" for c in codes][:14]
    assert not os.path.exists(str(path) + ".data")  # ViT-S: one file
    assert card["license"] == "CC-BY-4.0" and "spectral_earth" in card["source"]["repository"]


def _segment(src, model, out, *extra):
    rc, js, stdout, stderr = qgis_process("run", "spectraltf:segment", "--", f"INPUT={src}", f"MODEL={model}",
                                          "DEVICE=cpu", f"OUTPUT={out}", *extra)
    assert rc == 0, stdout + stderr
    return _gdal().Open(str(out)).ReadAsArray(), stdout + stderr


@pytest.mark.qgis_process
def test_spectralgpt_segments_the_real_sentinel2_scene(gpt_model, tmp_path):
    """The whole 512 x 512 L1C scene as 4 x 4 windows without overlap (keeps CI short): each window
    is then exactly one model run on a tile-sized chip scaled by its own min-max, so a window of the
    class map must equal the rebuilt network on that chip with the upstream preprocessing."""
    path, res = gpt_model
    gdal = _gdal()
    src = shared("multispectral", "Spain_7370579_S2Hand.tif")
    cls, log = _segment(src, path, tmp_path / "scene_cls.tif", "TILE_OVERLAP=0")
    line = next(ln for ln in log.splitlines() if "Band matching" in ln)
    assert "by band name" in line and "B8A='B8A'" in line and "'B10'" not in line
    assert "tile-minmax" in log
    ds = gdal.Open(str(src))
    assert cls.shape == (512, 512) and (cls[ds.GetRasterBand(1).ReadAsArray() != 0] != 255).all()
    names = [ds.GetRasterBand(i + 1).GetDescription() for i in range(ds.RasterCount)]
    chip = ds.ReadAsArray(128, 256, 128, 128).astype(np.float32)
    assert (chip != 0).all()
    x = chip[[i for i, n in enumerate(names) if n != "B10"]]
    lo, hi = x.min(axis=(1, 2), keepdims=True), x.max(axis=(1, 2), keepdims=True)
    x = (x - lo) / (hi - lo + 1e-9)
    with torch.no_grad():
        ref = res["model"](torch.from_numpy(x[None]))[0].numpy().argmax(0)
    assert np.mean(cls[256:384, 128:256] == ref) >= 0.999


@pytest.mark.qgis_process
def test_spectralearth_segments_the_real_enmap_tile_matching_by_wavelength(se_model, tmp_path):
    path, files = se_model
    src = shared("enmap", "enmap_l2a_potsdam_tile.tif")
    cls, log = _segment(src, path, tmp_path / "enmap_cls.tif")
    line = next(ln for ln in log.splitlines() if "Band matching" in ln)
    assert "by wavelength" in line
    # L2A order: VNIR up to 993 nm, then SWIR from 902 nm; the model's band 80 (902.26 nm) is raster band 92
    assert "EnMAP-80 902 nm=band 92 (902 nm)" in line
    gdal = _gdal()
    ds = gdal.Open(str(src))
    wl = np.array([float(ds.GetRasterBand(i + 1).GetMetadataItem("wavelength")) for i in range(ds.RasterCount)])
    centres = np.array([r[1] for r in SE_LAYOUT["bands_csv"]])
    order = [int(np.argmin(np.abs(wl - c))) for c in centres]
    assert order != sorted(order)  # matching by index would be wrong
    x = ds.ReadAsArray().astype(np.float32)[order]                                # ×10000
    x = np.pad(x, ((0, 0), (0, 96), (0, 96)), mode="reflect")                     # the runtime's padding
    mu, sigma = (np.load(os.path.join(files[2], n)) for n in ("mu.npy", "sigma.npy"))
    x = (x - mu[:, None, None]) / sigma[:, None, None]
    state = {k[len(se.PREFIX):]: v for k, v in fio.seeded_state(SE_LAYOUT["keys"], seed=1).items()}
    model, _ = se.build_from_state(SE_LAYOUT["config"], state)
    with torch.no_grad():
        ref = model(torch.from_numpy(x[None].astype(np.float32)))[0].numpy().argmax(0)[:32, :32]
    assert cls.shape == (32, 32) and np.mean(cls == ref) >= 0.999
