"""ctypes binding of ``spectf_attention.c``: self-attention with 8-wide heads, float32, on CPU.

``softmax(q_h k_hᵀ) v_h`` per head ``h`` for q, k, v (N, S, heads·8) with the 1/√8 scale already in
q — the computation of SpecTf's ``com.microsoft::MultiHeadAttention`` node (``scale = 1``), ≈ 3× faster
than ONNX Runtime's CPU kernel on one core (``bench/spectf_speed.py``). The library is looked up in
``lib/<platform>/`` beside this file (``scripts/build_native.sh``); where it is missing, does not load
or the CPU has neither AVX-512 (F, DQ) nor AVX2 + FMA, :func:`kernel` returns None with the reason in
:func:`unavailable_reason` and callers keep ONNX Runtime's attention. ctypes releases the GIL during
the call, so threads run it in parallel."""
import ctypes
import os
import platform
import sys
import threading

import numpy as np

HEAD_DIM = 8
LIB_NAME = "libspectf_attention.so"
ISA_NAMES = {2: "AVX-512", 1: "AVX2+FMA"}

_lock = threading.Lock()
_state = {}


def platform_tag():
    """Folder name of this platform's build, e.g. ``linux-x86_64``."""
    return f"{sys.platform}-{platform.machine().lower()}"


def library_path(tag=None):
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib", tag or platform_tag(), LIB_NAME)


class AttentionKernel:
    """The loaded library. ``isa``: 2 (AVX-512 F + DQ) or 1 (AVX2 + FMA); :meth:`run` computes one batch."""

    def __init__(self, lib, isa):
        self._lib, self.isa = lib, isa
        self.isa_name = ISA_NAMES[isa]

    @property
    def library(self):
        """The loaded ctypes library (it also holds the forward pass: :mod:`.forward`)."""
        return self._lib

    def workspace(self, s):
        """Scratch floats one call needs for S tokens (q transposed, one block's scores, slack)."""
        return int(self._lib.spectf_attention_workspace(int(s)))

    def run(self, q, k, v, heads, out=None, isa=None):
        """Attention output (N, S, heads·8) float32 for q, k, v (N, S, heads·8) float32."""
        return self.run_counted(q, k, v, heads, out, isa)[0]

    def run_counted(self, q, k, v, heads, out=None, isa=None):
        """(output, row blocks computed with an exact row max): on AVX-512 only very peaked rows take
        that path (the one-pass form covers the rest); on AVX2 every block does."""
        q, k, v = (np.ascontiguousarray(a, dtype=np.float32) for a in (q, k, v))
        if q.ndim != 3 or q.shape != k.shape or q.shape != v.shape or q.shape[2] != heads * HEAD_DIM:
            raise ValueError(f"q, k, v must share the shape (N, S, {heads}·{HEAD_DIM}); got "
                             f"{q.shape}, {k.shape}, {v.shape}")
        n, s, _ = q.shape
        if out is None:
            out = np.empty_like(q)
        elif out.shape != q.shape or out.dtype != np.float32 or not out.flags.c_contiguous:
            raise ValueError(f"out must be a C-contiguous float32 array of shape {q.shape}")
        if n == 0:
            return out, 0
        work = np.empty(self.workspace(s), np.float32)
        ptr = ctypes.POINTER(ctypes.c_float)
        exact = ctypes.c_long(0)
        rc = self._lib.spectf_attention(q.ctypes.data_as(ptr), k.ctypes.data_as(ptr), v.ctypes.data_as(ptr),
                                        out.ctypes.data_as(ptr), n, s, int(heads), HEAD_DIM,
                                        work.ctypes.data_as(ptr), work.size, int(isa or self.isa),
                                        ctypes.byref(exact))
        if rc != 0:
            raise RuntimeError(f"spectf_attention returned {rc} for shape {q.shape}, {heads} heads")
        return out, exact.value


def _load(path):
    if not os.path.isfile(path):
        return None, (f"no native attention kernel for {platform_tag()} ({path} is missing; "
                      f"scripts/build_native.sh builds it on Linux x86-64)")
    try:
        lib = ctypes.CDLL(path)
    except OSError as exc:
        return None, f"the native attention kernel {path} does not load: {exc}"
    c_long, c_float_p = ctypes.c_long, ctypes.POINTER(ctypes.c_float)
    lib.spectf_attention_workspace.argtypes, lib.spectf_attention_workspace.restype = [c_long], c_long
    lib.spectf_attention_isa.argtypes, lib.spectf_attention_isa.restype = [], ctypes.c_int
    lib.spectf_attention.argtypes = ([c_float_p] * 4 + [c_long] * 4 + [c_float_p, c_long, ctypes.c_int,
                                                                   ctypes.POINTER(c_long)])
    lib.spectf_attention.restype = ctypes.c_int
    isa = int(lib.spectf_attention_isa())
    if isa not in ISA_NAMES:
        return None, "this CPU has neither AVX-512 (F, DQ) nor AVX2 + FMA, which the native attention kernel needs"
    return AttentionKernel(lib, isa), None


def kernel(path=None):
    """The :class:`AttentionKernel` (loaded once per path), or None where it is not available."""
    path = path or library_path()
    with _lock:
        if path not in _state:
            _state[path] = _load(path)
        return _state[path][0]


def unavailable_reason(path=None):
    """Why :func:`kernel` returns None (a sentence), or None when the kernel is available."""
    path = path or library_path()
    kernel(path)
    return _state[path][1]


def reference(q, k, v, heads):
    """The same attention in NumPy (float64 inside), for tests."""
    n, s, d = q.shape

    def split(a):
        return np.asarray(a, np.float64).reshape(n, s, heads, d // heads).transpose(0, 2, 1, 3)

    scores = split(q) @ split(k).transpose(0, 1, 3, 2)
    p = np.exp(scores - scores.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    return (p @ split(v)).transpose(0, 2, 1, 3).reshape(n, s, d).astype(np.float32)
