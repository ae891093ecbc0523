"""ctypes binding of ``spectf_forward.c``: SpecTf's whole forward pass (embedding, LayerNorms, q/k/v
and output projections, attention, feed-forward, max pooling, head) in C, AVX-512, float32.

The weights come from the card's ``variants.native_weights`` file (``.npz``, written by the exporter
from the same ONNX graphs: :func:`write_weights`), named as the graphs' initializers. :func:`load`
checks names and shapes, packs them in the C order and returns a :class:`NativeForward`; the caller
(:class:`~..models.spectf.SpectfModel`) then checks it against the ONNX path once before using it.
The library is the attention kernel's (:mod:`.attention`); ctypes releases the GIL during the call."""
import ctypes
import threading

import numpy as np

from .attention import HEAD_DIM

HEADS = 8
WIDTH = HEADS * HEAD_DIM  # 64
FORMAT = 1
#: (npz name, shape, transposed to (in, out) for C) in the C parameter order (spectf_forward.c, P_*)
PARAMETERS = (
    ("w_refl", (WIDTH,), False), ("norm1.weight", (WIDTH,), False), ("norm1.bias", (WIDTH,), False),
    ("q.weight", (WIDTH, WIDTH), True), ("k.weight", (WIDTH, WIDTH), True), ("v.weight", (WIDTH, WIDTH), True),
    ("q.bias", (WIDTH,), False), ("k.bias", (WIDTH,), False), ("v.bias", (WIDTH,), False),
    ("out_proj.weight", (WIDTH, WIDTH), True), ("out_proj.bias", (WIDTH,), False),
    ("norm2.weight", (WIDTH,), False), ("norm2.bias", (WIDTH,), False),
    ("ff.linear1.weight", (WIDTH, WIDTH), True), ("ff.linear1.bias", (WIDTH,), False),
    ("ff.linear2.weight", (WIDTH, WIDTH), True), ("ff.linear2.bias", (WIDTH,), False),
    ("head.weight", (2, WIDTH), False), ("head.bias", (2,), False),
    ("norm1.epsilon", (), False), ("norm2.epsilon", (), False),
)
#: the wavelength part of the embedding, applied in Python once per band set
WAVE = (("w_wave", (WIDTH,)), ("b_embed", (WIDTH,)))
NAMES = tuple(n for n, _, _ in PARAMETERS) + tuple(n for n, _ in WAVE)


class WeightsError(ValueError):
    """The weights file does not describe the model the C forward pass computes."""


def write_weights(path, arrays):
    """Write ``arrays`` (name → array, the graphs' initializers and LayerNorm epsilons) to ``path``
    (``.npz``), refusing names or shapes the C forward pass does not take."""
    missing = [n for n in NAMES if n not in arrays]
    if missing:
        raise WeightsError(f"no {', '.join(missing)}")
    out = {"format": np.array(FORMAT, np.int32)}
    for name, shape in [(n, s) for n, s, _ in PARAMETERS] + list(WAVE):
        a = np.asarray(arrays[name], np.float32)
        if a.shape != shape:
            raise WeightsError(f"{name} has the shape {a.shape}, not {shape}")
        out[name] = a
    with open(path, "wb") as handle:
        np.savez(handle, **out)


class NativeForward:
    """:meth:`run` computes probabilities (N,) for spectra (N, S) at wavelengths (S,)."""

    def __init__(self, lib, params, w_wave, b_embed):
        self._lib, self._params = lib, params
        self._w_wave, self._b_embed = w_wave, b_embed
        self._wave = {}
        self._local = threading.local()
        self._lock = threading.Lock()

    def wave_embed(self, wavelengths_nm):
        """(S, 64) float32: wavelength · w_wave + b_embed, cached per band set."""
        wl = np.ascontiguousarray(wavelengths_nm, dtype=np.float32)
        key = wl.tobytes()
        with self._lock:
            table = self._wave.get(key)
            if table is None:
                if len(self._wave) > 8:
                    self._wave.clear()
                table = self._wave[key] = np.ascontiguousarray(wl[:, None] * self._w_wave + self._b_embed)
            return table

    def _workspace(self, s):
        """This thread's workspace for S bands (kept: a fresh one per call costs page faults)."""
        size = int(self._lib.spectf_forward_workspace(int(s)))
        work = getattr(self._local, "work", None)
        if work is None or work.size < size:
            work = self._local.work = np.empty(size, np.float32)
        return work

    def run(self, spectra, wavelengths_nm, out=None):
        """Probabilities (N,) float32 (NaN for a spectrum with a NaN or infinite value); ``out``: an
        (N,) float32 C-contiguous array to write them into."""
        spectra = np.ascontiguousarray(spectra, dtype=np.float32)
        if spectra.ndim != 2 or spectra.shape[1] != np.size(wavelengths_nm) or spectra.shape[1] < 1:
            raise ValueError(f"spectra must be (N, S) with S = {np.size(wavelengths_nm)} wavelengths; "
                             f"got {spectra.shape}")
        n, s = spectra.shape
        if out is None:
            out = np.empty(n, np.float32)
        elif out.shape != (n,) or out.dtype != np.float32 or not out.flags.c_contiguous:
            raise ValueError(f"out must be a C-contiguous float32 array of shape ({n},)")
        if n == 0:
            return out
        wave, work = self.wave_embed(wavelengths_nm), self._workspace(s)
        ptr = ctypes.POINTER(ctypes.c_float)
        rc = self._lib.spectf_forward(spectra.ctypes.data_as(ptr), n, s, wave.ctypes.data_as(ptr),
                                      self._params.ctypes.data_as(ptr), self._params.size,
                                      work.ctypes.data_as(ptr), work.size, out.ctypes.data_as(ptr), None)
        if rc != 0:
            raise RuntimeError(f"spectf_forward returned {rc} for spectra {spectra.shape}")
        return out


def _bind(lib):
    c_long, c_float_p = ctypes.c_long, ctypes.POINTER(ctypes.c_float)
    lib.spectf_forward_params.argtypes, lib.spectf_forward_params.restype = [], c_long
    lib.spectf_forward_workspace.argtypes, lib.spectf_forward_workspace.restype = [c_long], c_long
    lib.spectf_forward.argtypes = [c_float_p, c_long, c_long, c_float_p, c_float_p, c_long, c_float_p, c_long,
                                   c_float_p, ctypes.POINTER(c_long)]
    lib.spectf_forward.restype = ctypes.c_int


def load(path, kernel, heads):
    """A :class:`NativeForward` for the weights file at ``path`` on ``kernel``'s library (an
    :class:`~.attention.AttentionKernel` with AVX-512); raises :class:`WeightsError` (a sentence) when
    the file, the model or the CPU do not fit it."""
    if kernel.isa != 2:
        raise WeightsError(f"the forward pass needs AVX-512 (this CPU: {kernel.isa_name})")
    if heads != HEADS:
        raise WeightsError(f"the forward pass computes {HEADS} heads of {HEAD_DIM}, not {heads}")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError) as exc:
        raise WeightsError(f"{path} is not readable ({exc})") from None
    if int(arrays.get("format", -1)) != FORMAT:
        raise WeightsError(f"{path} is not format {FORMAT}")
    blocks = []
    for name, shape, transpose in PARAMETERS:
        a = arrays.get(name)
        if a is None or a.shape != shape or not np.all(np.isfinite(a)):
            raise WeightsError(f"{path}: {name} is missing, not {shape} or not finite")
        blocks.append((a.T if transpose else a).astype(np.float32).reshape(-1))
    wave = []
    for name, shape in WAVE:
        a = arrays.get(name)
        if a is None or a.shape != shape:
            raise WeightsError(f"{path}: {name} is missing or not {shape}")
        wave.append(a.astype(np.float32))
    lib = kernel.library
    _bind(lib)
    params = np.ascontiguousarray(np.concatenate(blocks), dtype=np.float32)
    if params.size != lib.spectf_forward_params():
        raise WeightsError(f"{params.size} parameters; the library expects {lib.spectf_forward_params()}")
    return NativeForward(lib, params, *wave)
