"""CUDA parity: SpecTf probabilities on CUDA within 1e-4 of CPU, segmentation classes equal.

Skipped where ONNX Runtime has no usable CUDA provider (CI, these machines); ``bench/gpu_check.sh``
runs them on a machine with an NVIDIA GPU. ``SPECTRALTF_PARITY_DEVICE=cpu`` compares the CPU
against itself through the same code (how the script's CPU mode checks this file's logic).

Spectra: the real Libya-4 EMIT TOA spectra and their mixtures with a constructed cloud spectrum
when ../shared/data is present (as in test_cloudmask.py), else smooth constructed spectra (parity
compares two devices on one input, so any realistic input serves).
"""
import os

import numpy as np
import pytest

from support import MODELS, SHARED_DATA

from spectral_transformers.runtime.models import onnx_backend

DEVICE = os.environ.get("SPECTRALTF_PARITY_DEVICE", "cuda")
SPECTF = MODELS / "spectf-cloud-v0.1.0.onnx"


def _cuda_usable():
    if DEVICE == "cpu":
        return True, ""
    if "CUDAExecutionProvider" not in onnx_backend.available_providers():
        return False, "ONNX Runtime has no CUDAExecutionProvider (install onnxruntime-gpu on a GPU machine)"
    return True, ""


usable, why = _cuda_usable()
pytestmark = pytest.mark.skipif(not usable, reason=why)


def _spectra(wl, n=2048, seed=0):
    """(n, S) TOA reflectance: real Libya-4 spectra and cloud mixtures, or constructed ones."""
    rng = np.random.default_rng(seed)
    rdn = SHARED_DATA / "emit" / "emit_l1b_rdn_libya4_25x22.img"
    try:
        from osgeo import gdal  # noqa: F401

        have_gdal = True
    except ImportError:
        have_gdal = False
    if rdn.exists() and have_gdal:
        from test_cloudmask import cloud_toa, libya_toa

        from spectral_transformers.runtime.models.spectf import keep_bands

        cube, valid, all_wl, _ = libya_toa()
        keep = keep_bands(all_wl)
        clear = cube[:, valid][keep].T  # (266, S)
        cloud = cloud_toa(all_wl, np.nanmean(cube[:, valid], axis=1))[keep]
        f = rng.uniform(0, 1, (n, 1)).astype(np.float32) ** 2
        f[: n // 3] = 0.0
        picks = clear[rng.integers(0, clear.shape[0], n)]
        return ((1 - f) * picks + f * cloud[None]).astype(np.float32)
    x = np.linspace(0, 1, wl.size)[None]
    base = rng.uniform(0.05, 0.6, (n, 1)) + rng.uniform(-0.2, 0.2, (n, 1)) * x
    bumps = sum(rng.uniform(-0.05, 0.05, (n, 1)) * np.sin((k + 1) * np.pi * x + rng.uniform(0, 6, (n, 1)))
                for k in range(4))
    return np.clip(base + bumps, 0.01, 1.2).astype(np.float32)


@pytest.fixture(scope="module")
def spectf_models():
    from spectral_transformers.runtime.models.spectf import SpectfModel

    if not SPECTF.exists():
        pytest.skip(f"{SPECTF} is not built (make setup builds it from ../shared/data/spectf)")
    cpu = SpectfModel(str(SPECTF), device="cpu")
    other = SpectfModel(str(SPECTF), device=DEVICE)
    assert other.session.device == DEVICE, other.session.describe()
    return cpu, other


def test_spectf_probability_and_attention_match_cpu(spectf_models):
    cpu, other = spectf_models
    wl = cpu.trained_wavelengths_nm.astype(np.float32)
    spectra = _spectra(wl)
    p_cpu, a_cpu = cpu.predict(spectra[:512], wl, attention=True)
    p_dev, a_dev = other.predict(spectra[:512], wl, attention=True)
    assert np.max(np.abs(p_dev - p_cpu)) <= 1e-4
    assert np.max(np.abs(a_dev - a_cpu)) <= 1e-4
    # probability only (the pruned variant where present), large batch as the pipeline sends on CUDA
    p_cpu, _ = cpu.predict(spectra, wl)
    p_dev, _ = other.predict(spectra, wl)
    diff = float(np.max(np.abs(p_dev - p_cpu)))
    assert diff <= 1e-4, diff
    assert np.array_equal(p_dev >= cpu.threshold, p_cpu >= cpu.threshold) or diff <= 1e-4
    assert 0.05 < float(np.mean(p_cpu >= cpu.threshold)) < 0.95 or not (SHARED_DATA / "emit").exists()


def test_spectf_pipeline_outputs_match_cpu(tmp_path):
    """run_spectf on a raster: probability ≤ 1e-4 and identical masks away from the threshold."""
    pytest.importorskip("osgeo")
    from test_cloudmask import EMIT, EMIT_OBS, read

    from spectral_transformers.runtime.models import spectf_pipeline

    if not SPECTF.exists() or not (SHARED_DATA / EMIT[0] / EMIT[1]).exists():
        pytest.skip("needs the built SpecTf model and the EMIT clip in ../shared/data")
    out = {}
    for device in ("cpu", DEVICE):
        folder = tmp_path / device
        folder.mkdir(exist_ok=True)
        paths = {"mask": str(folder / "m.tif"), "probability": str(folder / "p.tif")}
        spectf_pipeline.run_spectf(str(SHARED_DATA / EMIT[0] / EMIT[1]), str(SPECTF), paths,
                          observation=str(SHARED_DATA / EMIT_OBS[0] / EMIT_OBS[1]), device=device)
        out[device] = read(paths["probability"])[0], read(paths["mask"])[0]
    (p0, m0), (p1, m1) = out["cpu"], out[DEVICE]
    assert np.array_equal(p0 == -9999, p1 == -9999)
    assert np.max(np.abs(p0 - p1)) <= 1e-4
    assert np.array_equal(m0, m1)


def _unet_like(path, in_ch=6, classes=4, seed=0):
    """A small encoder-decoder (conv, relu, strided conv, resize, concat, conv) segmentation model."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)

    def w(name, shape):
        return numpy_helper.from_array(rng.normal(0, 0.5, shape).astype(np.float32), name)

    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("Resize", ["r2", "", "scales"], ["up"], mode="nearest"),
        helper.make_node("Concat", ["r1", "up"], ["cat"], axis=1),
        helper.make_node("Conv", ["cat", "w3", "b3"], ["logits"], pads=[1, 1, 1, 1]),
    ]
    inits = [w("w1", (8, in_ch, 3, 3)), w("b1", (8,)), w("w2", (8, 8, 3, 3)), w("b2", (8,)),
             w("w3", (classes, 16, 3, 3)), w("b3", (classes,)),
             numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")]
    graph = helper.make_graph(nodes, "unet_like",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", in_ch, "H", "W"])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", classes, "H", "W"])],
                              inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return str(path)


def test_segmentation_classes_match_cpu(tmp_path):
    """Session level (no GDAL needed): argmax classes equal on 256 px tiles, logits close."""
    pytest.importorskip("onnx")
    path = _unet_like(tmp_path / "unet.onnx")
    x = np.random.default_rng(1).uniform(0, 1, (4, 6, 256, 256)).astype(np.float32)
    cpu = onnx_backend.load_session(path, "cpu")
    dev = onnx_backend.load_session(path, DEVICE)
    assert dev.device == DEVICE
    l_cpu = cpu.run(["logits"], {"x": x})[0]
    l_dev = dev.run(["logits"], {"x": x})[0]
    top2 = np.sort(l_cpu, axis=1)
    decided = (top2[:, -1] - top2[:, -2]) > 1e-3  # ties within float noise may flip
    assert np.array_equal(l_cpu.argmax(1)[decided], l_dev.argmax(1)[decided])
    assert np.max(np.abs(l_cpu - l_dev)) <= 1e-3 * max(1.0, float(np.max(np.abs(l_cpu))))


def test_segmentation_pipeline_classes_match_cpu(tmp_path):
    """run_segmentation of a raster through the tile loop: class rasters identical."""
    pytest.importorskip("osgeo")
    pytest.importorskip("onnx")
    from seg_models import conv_model, read, seg_card, write_raster

    from spectral_transformers.runtime.models.segmentation import run_segmentation

    card = seg_card(bands=("blue", "green", "red"), classes=3, tile=64, overlap=16)
    model = conv_model(tmp_path / "conv.onnx", in_ch=3, classes=3, card=card)
    img = np.random.default_rng(2).uniform(0, 1, (3, 300, 220)).astype(np.float32)
    src = write_raster(tmp_path / "in.tif", img, names=["blue", "green", "red"])
    classes = {}
    for device in ("cpu", DEVICE):
        out = str(tmp_path / f"cls_{device}.tif")
        run_segmentation([src], model, {"classes": out}, device=device)
        classes[device] = read(out)
    assert classes["cpu"].shape == (300, 220) and len(np.unique(classes["cpu"])) > 1
    assert np.array_equal(classes["cpu"], classes[DEVICE])
