"""The native SpecTf attention kernel (runtime/native): exactness against NumPy, its guards, and the
cloud model's native path against ONNX Runtime's own attention on real EMIT spectra.

The kernel is built by `make setup` (scripts/build_native.sh) on Linux x86-64: there a missing kernel
fails in CI (setup installs the compiler) and skips elsewhere; other platforms skip."""
import ctypes
import json
import platform
import sys

import numpy as np
import pytest

from support import built_model, in_ci, shared

from spectral_transformers.runtime.config import RuntimeConfig
from spectral_transformers.runtime.native import attention as native


def _kernel():
    k = native.kernel()
    if k is None:
        msg = f"native attention kernel: {native.unavailable_reason()}"
        if in_ci() and sys.platform == "linux" and platform.machine().lower() == "x86_64":
            pytest.fail(msg + " (make setup builds it here)", pytrace=False)
        pytest.skip(msg)
    return k


@pytest.fixture(scope="module")
def kernel():
    return _kernel()


def isas(k):
    return sorted({k.isa, 1})  # the AVX2 path runs on AVX-512 machines too


def qkv(n, s, heads, scale=1.0, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((n, s, heads * 8)) * scale).astype(np.float32) for _ in range(3)]


@pytest.mark.parametrize("n, s, heads", [(1, 1, 8), (2, 5, 8), (3, 17, 8), (4, 268, 8), (2, 300, 4), (1, 33, 1),
                                         (1, 425, 8)])
def test_matches_numpy_reference(kernel, n, s, heads):
    """Every S (block remainders of 8 and 16 rows), head count and batch size, both code paths."""
    q, k, v = qkv(n, s, heads)
    ref = native.reference(q, k, v, heads)
    for isa in isas(kernel):
        np.testing.assert_allclose(kernel.run(q, k, v, heads, isa=isa), ref, atol=2e-6, rtol=1e-5)


def test_peaked_and_extreme_scores_stay_exact(kernel):
    """Scores up to ≈ 10⁵ (softmax rows that are one-hot, exponentials far below the float32 range) give
    the reference's result within float32 rounding of the scores, no NaN or inf: the max shift is exact
    and underflow flushes to zero."""
    for scale in (8.0, 100.0):
        q, k, v = qkv(2, 64, 8, scale=scale, seed=3)
        ref = native.reference(q, k, v, 8)
        top = float(np.abs(np.einsum("nshd,nthd->nhst", *(a.reshape(2, 64, 8, 8) for a in (q, k)))).max())
        tol = 8 * np.finfo(np.float32).eps * top * float(np.abs(v).max())  # a score's float32 rounding
        for isa in isas(kernel):
            out = kernel.run(q, k, v, 8, isa=isa)
            assert np.isfinite(out).all()
            np.testing.assert_allclose(out, ref, atol=tol, rtol=0)


def blocks(n, s, heads, isa):
    return n * heads * -(-s // (16 if isa == 2 else 8))


def test_one_pass_blocks_and_their_fallback(kernel):
    """On AVX-512, ordinary rows take the one-pass form (no row max); a block with a row whose sum would
    leave float32's safe range — a peaked row (scores ≈ 2^10 in log2 units), a row of only very negative
    scores (every exponential below 2^-126 without the max shift) or outputs that overflow (huge v) —
    is recomputed with the exact max, so every case still matches the reference. AVX2 always uses the
    exact max."""
    n, s, heads = 2, 40, 8
    q, k, v = qkv(n, s, heads, seed=5)
    base_ref = native.reference(q, k, v, heads)
    for isa in isas(kernel):
        out, exact = kernel.run_counted(q, k, v, heads, isa=isa)
        np.testing.assert_allclose(out, base_ref, atol=2e-6, rtol=1e-5)
        assert exact == (0 if isa == 2 else blocks(n, s, heads, isa))

    peaked, negative, huge = (a.copy() for a in (q, q, v))
    peaked[0, 3, 0:8] = 400.0 * k[0, 7, 0:8] / np.linalg.norm(k[0, 7, 0:8])  # row 3, head 0: one score ≫
    k_pos = k.copy()
    k_pos[1, :, 8] = np.abs(k_pos[1, :, 8]) + 1.0  # head 1 of spectrum 1: channel 0 of every key > 1 ...
    negative[1, 20, 8:16] = 0.0
    negative[1, 20, 8] = -200.0  # ... and row 20's query points away from all of them: scores < -200
    huge[0, :, 16:24] = 1e36  # head 2 of spectrum 0: P·V overflows unless the max is subtracted
    big_scores = q.copy()
    big_scores[0, :, 16:24] *= 6.0  # ... with row sums ≈ 2^40 in the one-pass form
    cases = {"peaked": (peaked, k, v), "only very negative scores": (negative, k_pos, v),
             "outputs that overflow": (big_scores, k, huge)}
    for name, (qc, kc, vc) in cases.items():
        ref = native.reference(qc, kc, vc, heads)
        scale = np.abs(ref).max(axis=1, keepdims=True)  # per spectrum and channel
        for isa in isas(kernel):
            out, exact = kernel.run_counted(qc, kc, vc, heads, isa=isa)
            assert np.isfinite(out).all(), name
            np.testing.assert_allclose(out / scale, ref / scale, atol=2e-6, err_msg=name)
            if isa == 2:
                assert exact >= 1, f"{name}: the block should have taken the exact-max path"
                assert exact < blocks(n, s, heads, isa), f"{name}: only the affected blocks take it"


def test_caller_floating_point_state_is_restored(kernel):
    """The kernel flushes denormals only during its call: NumPy in the same thread still makes them."""
    q, k, v = qkv(1, 20, 8, scale=30.0)
    kernel.run(q, k, v, 8)
    tiny = np.array([1e-38], np.float32) / np.float32(100.0)
    assert tiny[0] != 0.0


def test_zero_spectra_and_bad_shapes(kernel):
    q, k, v = qkv(0, 10, 8)
    assert kernel.run(q, k, v, 8).shape == (0, 10, 64)
    q, k, v = qkv(2, 10, 8)
    with pytest.raises(ValueError, match="share the shape"):
        kernel.run(q, k[:, :5], v, 8)
    with pytest.raises(ValueError, match="share the shape"):
        kernel.run(q, k, v, 4)  # 64 wide is 8 heads of 8, not 4
    with pytest.raises(ValueError, match="out must be"):
        kernel.run(q, k, v, 8, out=np.empty((2, 10, 64), np.float64))
    # non-contiguous and float64 inputs are converted, not misread
    q64 = np.asfortranarray(q.astype(np.float64))
    np.testing.assert_allclose(kernel.run(q64, k, v, 8), native.reference(q, k, v, 8), atol=2e-6, rtol=1e-5)


def test_library_guards(kernel):
    """The C entry point refuses a head width other than 8, a short workspace and an ISA the CPU lacks."""
    lib = kernel._lib
    p = ctypes.POINTER(ctypes.c_float)
    buf = np.zeros(64 * 4, np.float32)
    work = np.zeros(kernel.workspace(4), np.float32)
    ptr = buf.ctypes.data_as(p)
    assert lib.spectf_attention(ptr, ptr, ptr, ptr, 1, 4, 4, 16, work.ctypes.data_as(p), work.size, 1, None) == -1
    assert lib.spectf_attention(ptr, ptr, ptr, ptr, 1, 4, 8, 8, work.ctypes.data_as(p), work.size - 1, 1, None) == -2
    assert lib.spectf_attention(ptr, ptr, ptr, ptr, 1, 4, 8, 8, work.ctypes.data_as(p), work.size, 3, None) == -3
    assert lib.spectf_attention(ptr, ptr, ptr, ptr, 1, 4, 8, 8, work.ctypes.data_as(p), work.size, 1, None) == 0


def test_missing_library_says_why(tmp_path):
    path = str(tmp_path / "lib" / native.LIB_NAME)
    assert native.kernel(path) is None
    assert path in native.unavailable_reason(path) and "missing" in native.unavailable_reason(path)
    bad = tmp_path / "bad.so"
    bad.write_bytes(b"not a shared object")
    assert native.kernel(str(bad)) is None and "does not load" in native.unavailable_reason(str(bad))


# ------------------------------------------------------------------------------------ cloud model
def emit_and_cloudy_spectra(fractions, cloudy_from=None):
    """Real EMIT Libya-4 TOA spectra (268 kept bands), then cloudy mixes of them (of the first
    ``cloudy_from`` only, when given) at the cloud ``fractions``; and the wavelengths."""
    shared("emit", "emit_l1b_rdn_libya4_25x22.img")
    from spectral_transformers.runtime.models.spectf import keep_bands
    from spectral_transformers.training.spectf_samples import cloudy_mixes, libya4_toa

    rho, wl, _ = libya4_toa()
    keep = keep_bands(wl)
    cloudy, _ = cloudy_mixes(rho[:cloudy_from], wl, fractions=fractions)
    return np.concatenate([rho[:, keep], cloudy[:, keep]]).astype(np.float32), wl[keep].astype(np.float32)


@pytest.fixture(scope="module")
def emit_spectra():
    """Real EMIT Libya-4 TOA spectra (268 kept bands) and constructed cloudy mixes, wavelengths."""
    return emit_and_cloudy_spectra((0.003, 0.03, 0.3, 1.0))


def load(config=None, threads=2, path=None):
    """The cloud model (default: the built spectf-cloud-v0.1.0) on the CPU."""
    from spectral_transformers.runtime.models.spectf import SpectfModel

    return SpectfModel(str(path or built_model("spectf-cloud-v0.1.0")), device="cpu", threads=threads, config=config)


def test_cloud_model_native_path_matches_onnx_runtime(kernel, emit_spectra):
    """The cloud mask's default CPU path (pre-attention graph → kernel → post-attention graph) gives ONNX
    Runtime's fused-attention probabilities within 1e-5 (that graph is within 1e-4 of PyTorch:
    test_spectf_training.py), for 268 and 180 bands, batches of 1 to a few hundred, 1 and 2 workers."""
    spectra, wl = emit_spectra
    onnx_only = load(RuntimeConfig(native_attention=False))
    assert onnx_only.native_attention() is None
    assert "switched off" in onnx_only.attention_engine()
    idx = np.sort(np.random.default_rng(0).choice(wl.size, 180, replace=False))
    for threads in (1, 2):
        model = load(threads=threads)
        assert model.native_attention() is not None, model.native_attention_reason
        assert "native kernel" in model.attention_engine()
        for x, w in ((spectra, wl), (spectra[:, idx], wl[idx])):
            ref = onnx_only.predict(x, w)[0]
            for n in (1, 9, len(x)):
                prob, att = model.predict(x[:n], w)
                assert att is None and prob.dtype == np.float32
                np.testing.assert_allclose(prob, ref[:n], atol=1e-5)


def test_attention_maps_still_come_from_the_full_graph(kernel, emit_spectra):
    spectra, wl = emit_spectra
    model = load()
    prob, att = model.predict(spectra[:12], wl, attention=True)
    assert att.shape == (12, wl.size)
    np.testing.assert_allclose(prob, model.predict(spectra[:12], wl)[0], atol=1e-5)


def test_native_path_is_cancellable(kernel, emit_spectra):
    from spectral_transformers.runtime.errors import Cancelled

    class Stop:
        calls = 0

        def check(self):
            Stop.calls += 1
            if Stop.calls > 2:
                raise Cancelled("stopped")

    spectra, wl = emit_spectra
    with pytest.raises(Cancelled):
        load(threads=1).predict(spectra, wl, monitor=Stop())


def test_card_without_split_graphs_uses_onnx_runtime(tmp_path, emit_spectra):
    """A SpecTf model whose card names no pre/post-attention graphs (an older export, a user's model)
    runs ONNX Runtime's attention and says so."""
    import shutil

    from spectral_transformers.runtime.models.spectf import SpectfModel

    src = built_model("spectf-cloud-v0.1.0")
    card = json.loads(src.with_suffix(".json").read_text())
    (tmp_path / "variants").mkdir()
    shutil.copy(src, tmp_path / src.name)
    variant = card["variants"]["probability_only"]
    shutil.copy(src.parent / variant, tmp_path / variant)
    card["variants"] = {"probability_only": variant}
    (tmp_path / src.name).with_suffix(".json").write_text(json.dumps(card))
    model = SpectfModel(str(tmp_path / src.name), device="cpu", threads=1)
    assert model.native_attention() is None
    assert "names no pre/post-attention graphs" in model.attention_engine()
    spectra, wl = emit_spectra
    np.testing.assert_allclose(model.predict(spectra[:20], wl)[0], load().predict(spectra[:20], wl)[0], atol=1e-5)


def test_environment_switch(monkeypatch):
    monkeypatch.setenv("SPECTRALTF_NATIVE_ATTN", "0")
    cfg = RuntimeConfig.from_environment()
    assert cfg.native_attention is False and "native attention off" in cfg.describe()
    monkeypatch.setenv("SPECTRALTF_NATIVE_ATTN", "maybe")  # malformed: the default stays
    assert RuntimeConfig.from_environment().native_attention is True
