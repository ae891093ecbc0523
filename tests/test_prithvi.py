"""Prithvi-compatible encoder, chip loading, fine-tuning on the real Sen1Floods11 chip, ONNX export
with a model card, and the exported model run through ``spectraltf:segment``."""
import json
import os

import numpy as np
import pytest

from support import qgis_process, require_torch, shared

torch = require_torch()
pytest.importorskip("onnx")

from spectral_transformers.runtime.models import model_card  # noqa: E402
from spectral_transformers.runtime.errors import InputError  # noqa: E402
from spectral_transformers.runtime.pipeline import write_array  # noqa: E402
from spectral_transformers.training import prithvi, seg_data, seg_train  # noqa: E402

torch.set_num_threads(1)

# Sen1Floods11 13-band L1C stack: B02 B03 B04 B8A B11 B12 are raster bands 2 3 4 9 12 13.
S1F11_BANDS = "2,3,4,9,12,13"


def prithvi_100m_keys(depth=12, dim=768, frames=3, grid=14, chans=6, patch=16, mlp=4):
    """Parameter names and shapes of the Prithvi-100M encoder as published (written out
    independently of the module under test)."""
    keys = {
        "cls_token": (1, 1, dim),
        "pos_embed": (1, 1 + frames * grid * grid, dim),
        "patch_embed.proj.weight": (dim, chans, 1, patch, patch),
        "patch_embed.proj.bias": (dim,),
        "norm.weight": (dim,), "norm.bias": (dim,),
    }
    for i in range(depth):
        b = f"blocks.{i}."
        keys.update({
            b + "norm1.weight": (dim,), b + "norm1.bias": (dim,),
            b + "attn.qkv.weight": (3 * dim, dim), b + "attn.qkv.bias": (3 * dim,),
            b + "attn.proj.weight": (dim, dim), b + "attn.proj.bias": (dim,),
            b + "norm2.weight": (dim,), b + "norm2.bias": (dim,),
            b + "mlp.fc1.weight": (mlp * dim, dim), b + "mlp.fc1.bias": (mlp * dim,),
            b + "mlp.fc2.weight": (dim, mlp * dim), b + "mlp.fc2.bias": (dim,),
        })
    return keys


def _meta_encoder(cfg):
    with torch.device("meta"):
        return prithvi.PrithviEncoder(cfg)


def test_prithvi_100m_names_and_shapes_without_allocating():
    enc = _meta_encoder(prithvi.preset("prithvi-100m", num_frames=3))
    got = {k: tuple(v.shape) for k, v in enc.state_dict().items()}
    assert got == prithvi_100m_keys()
    n = sum(int(np.prod(s)) for k, s in got.items() if k != "pos_embed")
    assert 85e6 < n < 88e6  # ~86 M encoder parameters (Prithvi-100M = encoder + MAE decoder)


def test_prithvi_eo2_presets():
    for name, dim, depth, heads, patch in (("prithvi-eo2-300m", 1024, 24, 16, 16),
                                           ("prithvi-eo2-600m", 1280, 32, 16, 14)):
        cfg = prithvi.preset(name)
        assert (cfg.embed_dim, cfg.depth, cfg.num_heads, cfg.patch_size) == (dim, depth, heads, patch)
        sd = _meta_encoder(cfg).state_dict()
        assert tuple(sd["patch_embed.proj.weight"].shape) == (dim, 6, 1, patch, patch)
        assert tuple(sd["pos_embed"].shape) == (1, 1 + (224 // patch) ** 2, dim)
        assert f"blocks.{depth - 1}.mlp.fc2.weight" in sd and f"blocks.{depth}.norm1.weight" not in sd


def test_checkpoint_loads_strictly_with_weights_only(tmp_path):
    """A synthetic Prithvi MAE checkpoint (100M names/shapes, depth reduced to 2, decoder included,
    3-frame pos_embed) loads strictly into a 1-frame encoder from a weights_only file."""
    rng = torch.Generator().manual_seed(1)
    keys = prithvi_100m_keys(depth=2)
    sd = {k: torch.randn(s, generator=rng) for k, s in keys.items()}
    sd["mask_token"] = torch.zeros(1, 1, 512)
    sd["decoder_embed.weight"] = torch.zeros(512, 768)
    sd["decoder_pos_embed"] = torch.zeros(1, 589, 512)
    sd["decoder_blocks.0.attn.qkv.weight"] = torch.zeros(1536, 512)
    sd["decoder_pred.weight"] = torch.zeros(16 * 16 * 6, 512)
    path = tmp_path / "Prithvi_100M.pt"
    torch.save(sd, path)

    enc = prithvi.PrithviEncoder(prithvi.preset("prithvi-100m", depth=2, num_frames=1))
    own_pe = enc.pos_embed.detach().clone()
    missing, unexpected = prithvi.load_prithvi_weights(enc, str(path), strict=True)
    assert missing == [] and unexpected == []
    loaded = enc.state_dict()
    for k in keys:
        if k != "pos_embed":
            assert torch.equal(loaded[k], sd[k]), k
    assert torch.equal(loaded["pos_embed"], own_pe)  # fixed sin-cos of the model's own grid
    assert not enc.pos_embed.requires_grad

    # same grid: the checkpoint's pos_embed is used as is; nested {"model": ...} and prefixes work
    enc3 = prithvi.PrithviEncoder(prithvi.preset("prithvi-100m", depth=2, num_frames=3))
    prithvi.load_prithvi_weights(enc3, {"model": {"encoder." + k: v for k, v in sd.items()}})
    assert torch.equal(enc3.pos_embed.detach(), sd["pos_embed"])
    # a checkpoint missing a block fails strictly
    del sd["blocks.1.mlp.fc2.bias"]
    with pytest.raises(RuntimeError, match="blocks.1.mlp.fc2.bias"):
        prithvi.load_prithvi_weights(prithvi.PrithviEncoder(prithvi.preset("prithvi-100m", depth=2)), sd)


def test_3d_sincos_layout():
    pe = prithvi.get_3d_sincos_pos_embed(32, (2, 3, 4), cls_token=True)
    assert pe.shape == (1 + 24, 32) and np.all(pe[0] == 0)
    tokens = pe[1:].reshape(2, 3, 4, 32)        # frame, row, column
    w, h, t = tokens[..., :12], tokens[..., 12:24], tokens[..., 24:]
    assert np.allclose(w, w[:1, :1, :, :])     # column part depends on the column only
    assert np.allclose(h, h[:1, :, :1, :])
    assert np.allclose(t, t[:, :1, :1, :])
    assert np.allclose(tokens[0, 0, 1, 0], np.sin(1.0))   # first column channel: sin(pos · 1)


def test_segmenter_shapes_patch_14_and_frames():
    cfg = prithvi.ViTConfig(img_size=28, patch_size=14, embed_dim=32, depth=1, num_heads=2)
    m = prithvi.PrithviSegmenter(cfg, num_classes=3).eval()
    assert m(torch.zeros(2, 6, 28, 28)).shape == (2, 3, 28, 28)
    cfg = prithvi.ViTConfig(img_size=32, patch_size=16, embed_dim=32, depth=1, num_heads=2, num_frames=3)
    m = prithvi.PrithviSegmenter(cfg, num_classes=2).eval()
    assert m(torch.zeros(1, 6, 3, 32, 32)).shape == (1, 2, 32, 32)


# -- chips ------------------------------------------------------------------------------------

def test_sen1floods11_chip_loading():
    img = shared("multispectral", "Spain_7370579_S2Hand.tif")
    lay = seg_data.layout("sen1floods11")
    pairs = seg_data.find_pairs(str(img.parent), lay)
    assert pairs == [(str(img), str(img).replace("S2Hand", "LabelHand"))]
    chip = seg_data.load_chip(*pairs[0], lay)
    assert chip.image.shape == (6, 512, 512) and chip.source_bands == (2, 3, 4, 9, 12, 13)
    from osgeo import gdal
    ds = gdal.Open(str(img))
    raw = ds.GetRasterBand(9).ReadAsArray().astype(np.float32)   # B8A
    assert np.allclose(chip.image[3], raw * 1e-4)
    lab = gdal.Open(pairs[0][1]).ReadAsArray()
    assert np.array_equal(chip.label == seg_data.IGNORE, lab == -1)
    assert set(np.unique(chip.label)) == {-1, 0, 1}


def test_hls_layout_and_errors(tmp_path):
    lay = seg_data.layout("hls-burn-scars")
    img = np.random.default_rng(0).random((6, 20, 24)).astype(np.float32)
    img[:, 0, 0] = -9999
    lab = np.zeros((20, 24), np.int16)
    lab[5:, :] = 1
    lab[0, 1] = -1
    path = tmp_path / "subsetted_512x512_HLS.S30.T10SDH.2020248.v1.4_merged.tif"
    write_array(str(path), img, nodata=-9999)
    with pytest.raises(InputError, match="no label file"):
        seg_data.find_pairs(str(tmp_path), lay)
    write_array(str(tmp_path / "subsetted_512x512_HLS.S30.T10SDH.2020248.v1.4.mask.tif"), lab)
    (pair,) = seg_data.find_pairs(str(tmp_path), lay)
    chip = seg_data.load_chip(*pair, lay)
    assert np.isnan(chip.image[:, 0, 0]).all() and np.allclose(chip.image[:, 1:, 1:], img[:, 1:, 1:])
    assert chip.label[0, 0] == seg_data.IGNORE and chip.label[0, 1] == seg_data.IGNORE and chip.label[5, 5] == 1
    with pytest.raises(InputError, match="unknown chip layout"):
        seg_data.layout("nope")
    write_array(str(tmp_path / "x_S2Hand.tif"), img[:3])
    write_array(str(tmp_path / "x_LabelHand.tif"), lab)
    with pytest.raises(InputError, match="has 3 bands"):
        seg_data.load_chip(str(tmp_path / "x_S2Hand.tif"), str(tmp_path / "x_LabelHand.tif"),
                           seg_data.layout("sen1floods11"))


# -- fine-tune + export -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_flood_model(tmp_path_factory):
    """A tiny Prithvi-style model trained for a few steps on the real chip and exported."""
    img = shared("multispectral", "Spain_7370579_S2Hand.tif")
    lay = seg_data.layout("sen1floods11")
    model, card, report = seg_train.train_multispectral(
        seg_data.find_pairs(str(img), lay), lay, "prithvi-tiny-test", preset_name="tiny", tile=64,
        steps=40, batch=4, lr=2e-3, seed=0)
    out = tmp_path_factory.mktemp("prithvi") / "prithvi-tiny-test.onnx"
    diff = seg_train.export_onnx(model, out, card)
    return {"model": model, "card": card, "report": report, "onnx": out, "diff": diff, "image": img}


def test_training_learns_water(tiny_flood_model):
    r = tiny_flood_model["report"]
    lab = seg_data.load_chip(str(tiny_flood_model["image"]),
                             str(tiny_flood_model["image"]).replace("S2Hand", "LabelHand"),
                             seg_data.layout("sen1floods11")).label
    majority = max(np.mean(lab[lab >= 0] == 0), np.mean(lab[lab >= 0] == 1))   # 0.73
    print("training report:", json.dumps(r))
    assert r["loss_last"] < r["loss_first"]
    assert r["train_accuracy"] > majority + 0.05
    assert r["train_iou"][1] > 0.3


def test_onnx_export_and_card(tiny_flood_model):
    import onnx
    import onnxruntime as ort

    path = tiny_flood_model["onnx"]
    assert tiny_flood_model["diff"] <= 1e-4
    proto = onnx.load(str(path))
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 18
    meta = {p.key: p.value for p in proto.metadata_props}
    embedded = json.loads(meta["model_card"])
    with open(str(path)[:-5] + ".json") as f:
        assert json.load(f) == embedded
    card = model_card.load_card(path)          # validates against the plugin's schema
    assert card["task"] == "segmentation" and card["input"]["tile_size"] == [64, 64]
    assert [b["name"] for b in card["input"]["bands"]] == ["B02", "B03", "B04", "B8A", "B11", "B12"]
    assert card["input"]["scale"] == [1e-4] * 6 and card["output"]["kind"] == "logits"
    assert [c["name"] for c in card["output"]["classes"]] == ["not water", "water"]
    assert 0.05 < card["input"]["mean"][0] < 0.3 and all(s > 0 for s in card["input"]["std"])
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert sess.get_inputs()[0].name == "image" and sess.get_outputs()[0].name == "logits"
    model = tiny_flood_model["model"]
    x = np.random.default_rng(3).standard_normal((3, 6, 64, 64)).astype(np.float32)   # batch 3: dynamic
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    got = sess.run(["logits"], {"image": x})[0]
    assert got.shape == (3, 2, 64, 64) and np.max(np.abs(got - ref)) < 1e-4


def test_external_data_export(tmp_path):
    cfg = prithvi.ViTConfig(img_size=32, embed_dim=32, depth=1, num_heads=2)
    model = prithvi.PrithviSegmenter(cfg, 2).eval()
    lay = seg_data.layout("sen1floods11")
    card = seg_train.segmentation_card("ext-test", bands=[{"name": n} for n in lay.band_names], scale=1e-4,
                                       mean=[0.1] * 6, std=[0.05] * 6, class_names=["a", "b"], tile=32)
    out = tmp_path / "ext.onnx"
    seg_train.export_onnx(model, out, card, external_data=True)
    assert (tmp_path / "ext.onnx.data").stat().st_size > 10_000
    assert model_card.load_card(out)["id"] == "ext-test"


def test_multitemporal_export(tmp_path):
    """T = 3 frames: ONNX input (N, C, T, H, W), card layout NCTHW, valid for the plugin."""
    cfg = prithvi.ViTConfig(img_size=32, embed_dim=32, depth=1, num_heads=2, num_frames=3)
    model = prithvi.PrithviSegmenter(cfg, 2).eval()
    card = seg_train.segmentation_card("t3-test", bands=[{"name": n} for n in prithvi.PRITHVI_BANDS], scale=1e-4,
                                       mean=[0.1] * 6, std=[0.05] * 6, class_names=["a", "b"], tile=32, frames=3)
    out = tmp_path / "t3.onnx"
    assert seg_train.export_onnx(model, out, card) <= 1e-4
    card = model_card.load_card(out)
    assert card["input"]["layout"] == "NCTHW" and card["input"]["frames"] == 3
    import onnxruntime as ort
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert sess.get_inputs()[0].shape[1:] == [6, 3, 32, 32]


def test_cli_train_checkpoint_and_export(tmp_path):
    img = shared("multispectral", "Spain_7370579_S2Hand.tif")
    from spectral_transformers.training.__main__ import main
    onnx_a, ckpt, onnx_b = tmp_path / "a.onnx", tmp_path / "a.pt", tmp_path / "b.onnx"
    assert main(["seg-train", "--layout", "sen1floods11", "--images", str(img), "--tile", "32", "--steps", "2",
                 "--batch", "2", "--out", str(onnx_a), "--checkpoint", str(ckpt)]) == 0
    assert main(["seg-export", "--checkpoint", str(ckpt), "--out", str(onnx_b), "--id", "b-model"]) == 0
    import onnxruntime as ort
    x = np.random.default_rng(0).standard_normal((2, 6, 32, 32)).astype(np.float32)
    ya = ort.InferenceSession(str(onnx_a)).run(None, {"image": x})[0]
    yb = ort.InferenceSession(str(onnx_b)).run(None, {"image": x})[0]
    assert np.allclose(ya, yb, atol=1e-5)
    assert model_card.load_card(onnx_a)["id"] == "a" and model_card.load_card(onnx_b)["id"] == "b-model"


# -- through the plugin -----------------------------------------------------------------------

def _label_accuracy(class_map_path, image_path):
    from osgeo import gdal
    pred = gdal.Open(str(class_map_path)).ReadAsArray()
    lab = gdal.Open(str(image_path).replace("S2Hand", "LabelHand")).ReadAsArray()
    ok = lab >= 0
    return pred, float(np.mean(pred[ok] == lab[ok]))


def test_segment_algorithm_runs_trained_model(tiny_flood_model, processing_provider, tmp_path):
    import processing

    out = tmp_path / "water.tif"
    res = processing.run("spectraltf:segment", {
        "INPUT": [str(tiny_flood_model["image"])], "MODEL": str(tiny_flood_model["onnx"]),
        "BANDS": S1F11_BANDS, "DEVICE": "cpu", "OUTPUT": str(out)})
    assert os.path.exists(res["OUTPUT"])
    pred, acc = _label_accuracy(out, tiny_flood_model["image"])
    assert pred.shape == (512, 512) and set(np.unique(pred)) <= {0, 1}
    print(f"plugin class map accuracy vs hand labels: {acc:.3f}; training-time accuracy "
          f"{tiny_flood_model['report']['train_accuracy']:.3f}")
    assert acc > 0.8
    assert abs(acc - tiny_flood_model["report"]["train_accuracy"]) < 0.05


@pytest.mark.qgis_process
def test_segment_qgis_process_runs_trained_model(tiny_flood_model, tmp_path):
    out = tmp_path / "water_cli.tif"
    rc, parsed, stdout, stderr = qgis_process(
        "run", "spectraltf:segment", "--", f"INPUT={tiny_flood_model['image']}",
        f"MODEL={tiny_flood_model['onnx']}", f"BANDS={S1F11_BANDS}", "DEVICE=cpu", f"OUTPUT={out}")
    assert rc == 0, stderr[-2000:] + stdout[-2000:]
    pred, acc = _label_accuracy(out, tiny_flood_model["image"])
    assert acc > 0.8
