"""SpectralEarth-style spectral adapter + ViT on the real EnMAP L2A tile: train a few steps, export
ONNX with a card listing the tile's wavelengths, and run it through ``spectraltf:segment``."""
import numpy as np
import pytest

from support import require_torch, shared

torch = require_torch()
pytest.importorskip("onnx")

from spectral_transformers.runtime.models import model_card  # noqa: E402
from spectral_transformers.runtime.io.raster_io import open_raster  # noqa: E402
from spectral_transformers.runtime.io.spectral import read_spectral_info  # noqa: E402
from spectral_transformers.training import seg_data, seg_train  # noqa: E402
from spectral_transformers.training.spectral_adapter import (  # noqa: E402
    HyperspectralSegmenter, SpectralAdapter, tiny_hyperspectral_config)

torch.set_num_threads(1)


def test_adapter_maps_any_band_count_to_fixed_channels():
    adapter = SpectralAdapter(out_channels=24).eval()
    for bands in (75, 218, 285, 425):
        y = adapter(torch.randn(2, bands, 5, 3))
        assert y.shape == (2, 24, 5, 3)
    with pytest.raises(ValueError, match="at least"):
        adapter(torch.randn(1, 10, 4, 4))
    with pytest.raises(ValueError, match="at least"):
        HyperspectralSegmenter(tiny_hyperspectral_config(), 3, in_bands=6)


def test_adapter_is_per_pixel():
    """Each output pixel depends on that pixel's spectrum only (1-D convolutions along bands)."""
    adapter = SpectralAdapter(out_channels=16).eval()
    x = torch.randn(1, 100, 4, 4)
    y = adapter(x)
    x2 = x.clone()
    x2[0, :, 1, 2] += 1.0
    y2 = adapter(x2)
    changed = (y2 - y).abs().sum(1)[0] > 0
    assert changed[1, 2] and changed.sum() == 1


@pytest.fixture(scope="module")
def enmap_model(tmp_path_factory):
    img = shared("enmap", "enmap_l2a_potsdam_tile.tif")
    lab = shared("enmap", "enmap_l2a_potsdam_tile_labels.tif")
    model, card, report = seg_train.train_hyperspectral(
        str(img), str(lab), "enmap-adapter-test", tile=32, patch=8, steps=30, batch=2, lr=2e-3, seed=0)
    out = tmp_path_factory.mktemp("enmap") / "enmap-adapter-test.onnx"
    diff = seg_train.export_onnx(model, out, card)
    return {"model": model, "card": card, "report": report, "onnx": out, "diff": diff, "image": img, "labels": lab}


def test_enmap_chip_bands_and_wavelengths(enmap_model):
    chip = seg_data.load_hyperspectral_chip(str(enmap_model["image"]), str(enmap_model["labels"]))
    info = read_spectral_info(open_raster(str(enmap_model["image"])))
    # the 6 bands that are nodata everywhere (and flagged bad) are dropped; 218 remain
    assert chip.image.shape == (218, 32, 32) and chip.extra["dropped_bands"] == 6
    kept = np.array(chip.source_bands) - 1
    assert np.allclose(chip.wavelengths_nm, info.wavelength_nm[kept])
    assert np.isfinite(chip.image).all() and 0.0 <= np.nanmedian(chip.image) < 1.0   # GDAL scale 0.0001 applied
    card = model_card.load_card(enmap_model["onnx"])
    wl = [b["wavelength_nm"] for b in card["input"]["bands"]]
    assert np.allclose(wl, info.wavelength_nm[kept])
    assert len(card["output"]["classes"]) == 6 and card["input"]["tile_size"] == [32, 32]


def test_enmap_training_and_export(enmap_model):
    r = enmap_model["report"]
    print("EnMAP adapter training:", {k: v for k, v in r.items() if k != "source_bands"})
    assert r["loss_last"] < r["loss_first"]
    assert enmap_model["diff"] <= 1e-4
    import onnxruntime as ort
    sess = ort.InferenceSession(str(enmap_model["onnx"]), providers=["CPUExecutionProvider"])
    assert sess.get_inputs()[0].shape[1:] == [218, 32, 32]
    x = np.random.default_rng(0).standard_normal((3, 218, 32, 32)).astype(np.float32)
    with torch.no_grad():
        ref = enmap_model["model"](torch.from_numpy(x)).numpy()
    assert np.max(np.abs(sess.run(["logits"], {"image": x})[0] - ref)) < 1e-4


def test_enmap_model_through_segment(enmap_model, processing_provider, tmp_path):
    """The plugin (band matching by wavelength, GDAL scale, card mean/std) gives the same classes as
    the PyTorch model on the same tile."""
    import processing
    from osgeo import gdal

    out = tmp_path / "enmap_classes.tif"
    processing.run("spectraltf:segment", {"INPUT": [str(enmap_model["image"])], "MODEL": str(enmap_model["onnx"]),
                                          "DEVICE": "cpu", "OUTPUT": str(out)})
    pred = gdal.Open(str(out)).ReadAsArray()
    chip = seg_data.load_hyperspectral_chip(str(enmap_model["image"]), str(enmap_model["labels"]))
    inp = enmap_model["card"]["input"]
    ref = seg_train.predict(enmap_model["model"], seg_data.normalise(chip.image, inp["mean"], inp["std"]), 32)
    assert pred.shape == (32, 32)
    agree = np.mean(pred == ref)
    print(f"plugin vs PyTorch class agreement: {agree:.4f}")
    assert agree >= 0.99
