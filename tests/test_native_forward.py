"""SpecTf's whole forward pass in C (runtime/native/spectf_forward.c, runtime/native/forward.py): the
probabilities of the ONNX graphs it replaces and of a float64 NumPy model, its guards, the weights file
the exporter writes, and the cloud model's fallbacks when the file is missing, wrong or the CPU lacks
AVX-512.

Like test_native_attention.py: the library is built by `make setup` on Linux x86-64 (a missing one fails
in CI there and skips elsewhere); the forward pass needs AVX-512 (skipped on other CPUs, where the cloud
model keeps the attention kernel between ONNX graphs: test_native_attention.py)."""
import ctypes
import json
import shutil

import numpy as np
import pytest

from support import built_model, require_torch
from test_native_attention import _kernel, emit_and_cloudy_spectra, load

from spectral_transformers.runtime.config import RuntimeConfig
from spectral_transformers.runtime.native import attention as native

MODEL_ID = "spectf-cloud-v0.1.0"


@pytest.fixture(scope="module")
def kernel():
    k = _kernel()
    if k.isa != 2:
        pytest.skip(f"the native forward pass needs AVX-512 (this CPU: {k.isa_name})")
    return k


@pytest.fixture(scope="module")
def emit_spectra():
    """Real EMIT Libya-4 TOA spectra (268 kept bands), constructed cloudy mixes (thin to thick), wavelengths."""
    return emit_and_cloudy_spectra((0.003, 0.01, 0.03, 0.1, 0.3, 0.6, 1.0), cloudy_from=40)


def weights_path():
    src = built_model(MODEL_ID)
    card = json.loads(src.with_suffix(".json").read_text())
    return src.parent / card["variants"]["native_weights"]


def copy_store(tmp_path, edit=None):
    """The built model with its card and variants in ``tmp_path``; ``edit(arrays)`` changes its weights."""
    src = built_model(MODEL_ID)
    shutil.copy(src, tmp_path / src.name)
    shutil.copy(src.with_suffix(".json"), tmp_path / src.with_suffix(".json").name)
    shutil.copytree(src.parent / "variants", tmp_path / "variants")
    if edit is not None:
        target = tmp_path / "variants" / weights_path().name
        with np.load(target) as data:
            arrays = {k: data[k] for k in data.files}
        edit(arrays)
        with open(target, "wb") as handle:
            np.savez(handle, **arrays)
    return tmp_path / src.name


def float64_reference(weights, spectra, wl):
    """SpecTf's forward pass in NumPy float64 from the weights file (the graph the exporter writes)."""
    from scipy.special import erf

    with np.load(weights) as data:
        w = {k: data[k].astype(np.float64) for k in data.files}

    def norm(x, g, b, eps):
        m = x.mean(-1, keepdims=True)
        return (x - m) / np.sqrt(((x - m) ** 2).mean(-1, keepdims=True) + eps) * g + b

    x = np.asarray(spectra, np.float64)
    e = np.tanh(x[:, :, None] * w["w_refl"] + (np.asarray(wl, np.float64)[:, None] * w["w_wave"] + w["b_embed"]))
    e = norm(e, w["norm1.weight"], w["norm1.bias"], w["norm1.epsilon"])
    q, k, v = (e @ w[f"{p}.weight"].T + w[f"{p}.bias"] for p in "qkv")
    a = native.reference(q, k, v, 8).astype(np.float64)  # float64 inside, rounded once to float32
    y = norm(a @ w["out_proj.weight"].T + w["out_proj.bias"], w["norm2.weight"], w["norm2.bias"], w["norm2.epsilon"])
    h = y @ w["ff.linear1.weight"].T + w["ff.linear1.bias"]
    f = (0.5 * h * (1 + erf(h / np.sqrt(2)))) @ w["ff.linear2.weight"].T + w["ff.linear2.bias"]
    logits = f.max(1) @ w["head.weight"].T + w["head.bias"]
    return 1 / (1 + np.exp(logits[:, 0] - logits[:, 1]))


def test_cloud_model_runs_the_forward_pass_and_matches_onnx_runtime(kernel, emit_spectra):
    """The default CPU path with AVX-512 is the C forward pass; it gives ONNX Runtime's fused-graph
    probabilities within 1e-5 for 268 and 180 bands, batches of 1 to a few hundred, 1 and 2 workers."""
    spectra, wl = emit_spectra
    onnx_only = load(RuntimeConfig(native_attention=False))
    assert onnx_only.native_forward() is None and "switched off" in onnx_only.native_forward_reason
    idx = np.sort(np.random.default_rng(0).choice(wl.size, 180, replace=False))
    for threads in (1, 2):
        model = load(threads=threads)
        assert model.native_forward() is not None, model.native_forward_reason
        assert "whole forward pass native" in model.attention_engine()
        for x, w in ((spectra, wl), (spectra[:, idx], wl[idx])):
            ref = onnx_only.predict(x, w)[0]
            for n in (1, 33, len(x)):
                prob, att = model.predict(x[:n], w)
                assert att is None and prob.dtype == np.float32 and prob.shape == (n,)
                np.testing.assert_allclose(prob, ref[:n], atol=1e-5)


def test_forward_pass_matches_a_float64_model(kernel, emit_spectra):
    """Against SpecTf in float64 the C pass is within 2e-5 (at least as close as ONNX Runtime's graph),
    on real spectra, cloudy mixes, and random smooth spectra whose probabilities spread over (0, 1)."""
    from spectral_transformers.runtime.models.spectf import check_spectra

    spectra, wl = emit_spectra
    x = np.concatenate([spectra, check_spectra(wl.size, n=64, seed=3)])
    ref = float64_reference(weights_path(), x, wl)
    assert np.sum((ref > 0.01) & (ref < 0.99)) >= 20  # not only saturated probabilities
    native = load().predict(x, wl)[0]
    onnx = load(RuntimeConfig(native_attention=False)).predict(x, wl)[0]
    assert np.max(np.abs(native - ref)) < 2e-5
    assert np.max(np.abs(native - ref)) <= np.max(np.abs(onnx - ref)) + 5e-6


def test_non_finite_spectrum_gives_nan_only_there(kernel, emit_spectra):
    spectra, wl = emit_spectra
    x = spectra[:6].copy()
    x[2, 10], x[4, 0] = np.nan, np.inf
    forward = load().native_forward()
    prob = forward.run(x, wl)
    assert np.isnan(prob[[2, 4]]).all()
    keep = [0, 1, 3, 5]
    np.testing.assert_array_equal(prob[keep], forward.run(spectra[keep], wl))


def test_forward_guards(kernel, emit_spectra):
    spectra, wl = emit_spectra
    forward = load().native_forward()
    assert forward.run(spectra[:0], wl).shape == (0,)
    with pytest.raises(ValueError, match="spectra must be"):
        forward.run(spectra[:, :10], wl)
    with pytest.raises(ValueError, match="out must be"):
        forward.run(spectra[:3], wl, out=np.empty(4, np.float32))
    lib, ptr = kernel.library, ctypes.POINTER(ctypes.c_float)
    x, s = np.ascontiguousarray(spectra[:2]), wl.size
    wave, out = forward.wave_embed(wl), np.empty(2, np.float32)
    work = np.empty(lib.spectf_forward_workspace(s), np.float32)
    params = forward._params

    def call(n=2, s_=s, params_len=params.size, work_len=work.size):
        return lib.spectf_forward(x.ctypes.data_as(ptr), n, s_, wave.ctypes.data_as(ptr), params.ctypes.data_as(ptr),
                                  params_len, work.ctypes.data_as(ptr), work_len, out.ctypes.data_as(ptr), None)

    assert call() == 0
    assert call(s_=0) == -1 and call(n=-1) == -1
    assert call(work_len=work.size - 1) == -2
    assert call(params_len=params.size - 1) == -4


def test_caller_floating_point_state_is_restored(kernel, emit_spectra):
    spectra, wl = emit_spectra
    forward = load().native_forward()
    before = np.finfo(np.float32).tiny / np.float32(4)  # a denormal: flushed to zero only under FTZ
    forward.run(spectra[:4], wl)
    assert np.float32(np.finfo(np.float32).tiny) / np.float32(4) == before != 0


def test_weights_file_checks(kernel, tmp_path):
    from spectral_transformers.runtime.native import forward

    with np.load(weights_path()) as data:
        good = {k: data[k] for k in data.files}

    def file_with(**changes):
        arrays = dict(good, **changes)
        arrays = {k: v for k, v in arrays.items() if v is not None}
        path = tmp_path / f"w{len(list(tmp_path.iterdir()))}.npz"
        with open(path, "wb") as handle:
            np.savez(handle, **arrays)
        return path

    assert forward.load(file_with(), kernel, 8) is not None
    for changes, message in (({"q.weight": None}, "q.weight is missing"),
                             ({"q.weight": np.zeros((64, 32), np.float32)}, "q.weight is missing, not"),
                             ({"ff.linear1.bias": np.full(64, np.nan, np.float32)}, "not finite"),
                             ({"format": np.array(2)}, "not format 1"),
                             ({"w_wave": None}, "w_wave is missing")):
        with pytest.raises(forward.WeightsError, match=message):
            forward.load(file_with(**changes), kernel, 8)
    with pytest.raises(forward.WeightsError, match="8 heads of 8, not 4"):
        forward.load(file_with(), kernel, 4)
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"not an npz")
    with pytest.raises(forward.WeightsError, match="not readable"):
        forward.load(broken, kernel, 8)
    with pytest.raises(forward.WeightsError, match="no q.bias"):
        forward.write_weights(tmp_path / "x.npz", {k: v for k, v in good.items() if k != "q.bias"})


def test_wrong_weights_are_caught_at_load_and_the_graphs_used(kernel, tmp_path, emit_spectra):
    """Weights that do not reproduce the ONNX graphs (here one matrix entry with its sign flipped) fail
    the check at load: the model says why and runs the attention kernel between the graphs."""
    def flip(arrays):
        arrays["ff.linear2.weight"][3, 7] *= -1

    model = load(path=copy_store(tmp_path, flip))
    assert model.native_forward() is None
    assert "disagrees with the ONNX graphs" in model.native_forward_reason
    assert "projections in ONNX Runtime (native forward pass: it disagrees" in model.attention_engine()
    spectra, wl = emit_spectra
    np.testing.assert_allclose(model.predict(spectra, wl)[0],
                               load(RuntimeConfig(native_attention=False)).predict(spectra, wl)[0], atol=1e-5)


def test_card_without_native_weights_runs_the_kernel_between_graphs(kernel, tmp_path, emit_spectra):
    path = copy_store(tmp_path)
    card = json.loads(path.with_suffix(".json").read_text())
    del card["variants"]["native_weights"]
    path.with_suffix(".json").write_text(json.dumps(card))
    model = load(path=path)
    assert model.native_forward() is None and model.native_attention() is not None
    assert model.native_forward_reason == "the model card names no native weights"
    spectra, wl = emit_spectra
    np.testing.assert_allclose(model.predict(spectra[:50], wl)[0], load().predict(spectra[:50], wl)[0], atol=1e-5)


def test_exporter_refuses_graphs_the_forward_pass_does_not_compute(tmp_path):
    require_torch()  # training/ (the exporter) imports torch
    onnx = pytest.importorskip("onnx")
    from spectral_transformers.training.spectf_export import write_native_weights

    src = built_model(MODEL_ID)
    card = json.loads(src.with_suffix(".json").read_text())
    pre, post = (onnx.load(str(src.parent / card["variants"][k])) for k in ("pre_attention", "post_attention"))
    write_native_weights(pre, post, tmp_path / "ok.npz")
    with np.load(tmp_path / "ok.npz") as written, np.load(weights_path()) as built:
        assert sorted(written.files) == sorted(built.files)
    with pytest.raises(ValueError, match="pre-attention graph computes"):
        write_native_weights(post, post, tmp_path / "bad.npz")
    assert not (tmp_path / "bad.npz").exists()
