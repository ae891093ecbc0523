"""The SpecTf cloud model (QGIS-free): :class:`SpectfModel` on the shared :class:`~.base.OnnxModel`,
its card (threshold, band-drop ranges, training wavelengths, solar spectrum, pruned variant) and
the band choice that follows from it.

SpecTf takes every band as a token ``[reflectance, wavelength]``, so bands are matched by
*wavelength*: the input's own band centres (nm) are used after removing the bands inside the model
card's ``drop_ranges_nm`` (inclusive; EMIT keeps 268 of 285 bands, :func:`keep_bands`). Other
sensors (AVIRIS-NG, EnMAP, PRISMA) run with their own wavelengths (:func:`wavelength_mismatch`
says how far they are from the training wavelengths).

Model contract (ONNX): inputs ``spectra`` float32 (N, S) TOA reflectance and ``wavelengths`` float32
(S,) nm; outputs ``probability`` (N,) cloud probability, ``logits`` (N, 2) and ``attention`` (N, S)
(attention each band receives, mean over heads and query positions).

The task around it — bands, input type, TOA conversion, streaming, outputs — is
:mod:`.spectf_pipeline` (:func:`~.spectf_pipeline.run_spectf`); deciding whether a raster holds
radiance or reflectance is :mod:`..physics.input_type`.
"""
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import onnx_backend
from .base import OnnxModel, dims
from ..config import cpu_cores
from ..errors import ModelError

DEFAULT_MODEL = "spectf-cloud-v0.1.0"
TASK = "spectral-cloud-mask"
#: SpecTf's published band-drop ranges (nm, inclusive), used when a card does not give them.
DEFAULT_DROP_RANGES_NM = ((0.0, 405.0), (1275.0, 1321.0), (2455.0, 9999.0))
DEFAULT_THRESHOLD = 0.5
DEFAULT_BATCH_SIZE = 256
#: Spectra per ONNX call on CPU. SpecTf's (8, S, S) attention is 2.3 MB per spectrum at S = 268:
#: runs of a few spectra keep it in cache, and one single-threaded run per core beats ONNX
#: Runtime's intra-op threading on large batches by ≈ 40 % (bench/spectf_speed.py).
CPU_CHUNK = 4
#: Spectra per chunk on the native-attention path (ONNX Runtime before and after the kernel): two
#: short ONNX runs and one kernel call per chunk; 8 keeps a chunk's q, k, v (0.5 MiB each) in L2.
NATIVE_CHUNK = 8
#: Spectra per call of the native forward pass (:mod:`..native.forward`): one spectrum's tensors at a
#: time stay in L2 whatever the chunk; 32 (≈ 10 ms on one core) is the granularity of cancelling.
FORWARD_CHUNK = 32
#: Largest |Δp| accepted between the native forward pass and the ONNX graphs in the check at load.
FORWARD_CHECK_ATOL = 1e-4
#: Wavelength mismatch (nm) above which the "trained on EMIT" warning is given.
WAVELENGTH_TOLERANCE_NM = 1.0

# ---------------------------------------------------------------------------------------------
# model resolution and validation
# ---------------------------------------------------------------------------------------------
def _card_from_file(path, session=None):
    """Model card of ``path`` (sidecar or embedded, via :func:`~.model_card.load_card`), else {}."""
    from .model_card import load_card

    try:
        return dict(load_card(path))
    except ModelError:
        pass
    try:  # a card the registry's schema rejects: its SpecTf keys are still checked by SpectfModel
        card = load_card(path, validate=False)
        return dict(card) if isinstance(card, dict) else {}
    except ModelError:
        return {}


IMPORT_HINT = ("convert it once with: python -m spectral_transformers.training import-onnx {path} OUT.onnx "
               "(float32, dynamic batch, the plugin's inputs), then give OUT.onnx as «model».")


def _is_bfloat16(path):
    """Whether the ONNX file at ``path`` holds bfloat16 tensors (onnx package if present, else a byte
    scan of the graph's declared tensor types)."""
    try:
        import onnx

        model = onnx.load(str(path), load_external_data=False)
        bf16 = onnx.TensorProto.BFLOAT16
        return any(t.data_type == bf16 for t in model.graph.initializer) or any(
            vi.type.tensor_type.elem_type == bf16 for vi in list(model.graph.input) + list(model.graph.output))
    except ImportError:
        pass
    except Exception:  # noqa: BLE001 - not a readable ONNX file: not bf16 as far as we can tell
        return False
    try:
        with open(path, "rb") as handle:
            head = handle.read(1 << 20)
    except OSError:
        return False
    return b"\x08\x10\x12" in head  # elem_type: BFLOAT16 (16) in a TypeProto.Tensor


class SpectfModel(OnnxModel):
    """A loaded, validated SpecTf ONNX model with its card (on the shared :class:`~.model.OnnxModel`).

    Attributes: ``session`` (:class:`~.onnx_backend.Session`), ``card`` (dict), ``id``, ``path``,
    ``threshold`` (card value or 0.5), ``drop_ranges_nm``, ``trained_wavelengths_nm`` (or None),
    ``recommended_batch_size``, ``fixed_bands`` (S when the ONNX input has a fixed band count)."""

    TASKS = (TASK,)

    def __init__(self, path, card=None, model_id=None, device="auto", threads=None, parameter="model", config=None):
        try:
            super().__init__(path, card, model_id, device, threads, parameter, config)
        except ModelError:
            if _is_bfloat16(path):
                raise ModelError(f"{path} is a bfloat16 ONNX model (such as the upstream SpecTf release), which ONNX "
                                 f"Runtime cannot run on this machine; {IMPORT_HINT.format(path=path)}",
                                 parameter) from None
            raise
        self._probability_session = None
        self._native, self._native_reason = None, None
        self._forward, self._forward_reason = None, None
        self._pool, self._pool_workers = None, 0
        self._pool_lock = threading.Lock()
        if not self.card:
            self.card = _card_from_file(self.path, self.session)
            self.id = model_id or self.card.get("id") or self.id
        self._validate()

    @classmethod
    def load(cls, model, device="auto", threads=None, parameter="model", config=None):
        """From a registry id, a path, a registry entry (``.path``/``.card``/``.id``) or a SpectfModel."""
        if isinstance(model, cls):
            return model
        if hasattr(model, "path") and hasattr(model, "card"):
            return cls(model.path, model.card, getattr(model, "id", None), device, threads, parameter, config)
        # a bare .onnx file (no card, or one the registry's schema rejects) is judged by _validate
        path, card, model_id = cls.resolve(DEFAULT_MODEL if model in (None, "") else model, parameter, config,
                                           cardless=True)
        return cls(path, card, model_id, device, threads, parameter, config)

    def _validate(self):
        s = self.session
        expected = ("expected inputs spectra (N,S) float32 TOA reflectance and wavelengths (S) nm, "
                    "outputs probability (N) [, logits (N,2), attention (N,S)]")
        self.check_task("a SpecTf cloud model", expected)
        ins = s.inputs
        if "spectra" not in ins and len(ins) == 1 and len(dims(next(iter(ins.values())))) == 3 \
                and dims(next(iter(ins.values())))[2] == 2:
            name, arg = next(iter(ins.items()))
            raise ModelError(f"{self.path} takes upstream SpecTf's tokens ({name} {dims(arg)} = [reflectance, "
                             f"normalised wavelength]) instead of the plugin's spectra (N,S) and wavelengths (S); "
                             f"{IMPORT_HINT.format(path=self.path)}", self.parameter)
        self.check_io({"spectra": 2, "wavelengths": 1}, {"probability": None}, "a SpecTf cloud model", expected)
        ins, outs = s.inputs, s.outputs
        band_dim = dims(ins["spectra"])[1]
        self.fixed_bands = band_dim if isinstance(band_dim, int) and band_dim > 0 else None
        self.has_attention = "attention" in outs

    @property
    def threshold(self):
        t = self.card.get("threshold")
        return float(t) if isinstance(t, (int, float)) and 0 < t < 1 else None

    @property
    def drop_ranges_nm(self):
        ranges = self.card.get("drop_ranges_nm")
        if isinstance(ranges, (list, tuple)) and all(isinstance(r, (list, tuple)) and len(r) == 2 for r in ranges):
            return tuple((float(lo), float(hi)) for lo, hi in ranges)
        return DEFAULT_DROP_RANGES_NM

    @property
    def trained_wavelengths_nm(self):
        wl = self.card.get("wavelengths_nm")
        return np.asarray(wl, dtype=np.float64) if isinstance(wl, (list, tuple)) and wl else None

    @property
    def solar_irradiance_path(self):
        """The model's own solar spectrum (card ``solar_irradiance_file``, beside the model), if present."""
        return self._beside(self.card.get("solar_irradiance_file"))

    def _beside(self, rel):
        """The existing file at card path ``rel`` relative to the model (no absolute paths, no ``..``), or None."""
        if not isinstance(rel, str) or not rel or os.path.isabs(rel) or ".." in rel.replace("\\", "/").split("/"):
            return None
        path = os.path.join(os.path.dirname(self.path), rel)
        return path if os.path.isfile(path) else None

    def _variant_path(self, key):
        variants = self.card.get("variants")
        return self._beside(variants.get(key)) if isinstance(variants, dict) else None

    def probability_session(self):
        """Session for probability-only inference: the card's ``variants.probability_only`` graph when it
        exists beside the model and loads (no attention output; fused attention), else the model."""
        if self._probability_session is None:
            self._probability_session = self.session
            path = self._variant_path("probability_only")
            if path:
                try:
                    self._probability_session = onnx_backend.load_session(
                        path, self.session.device, self._threads, self.parameter, config=self._config)
                except ModelError:
                    pass  # e.g. an ONNX Runtime without the variant's fused contrib op: the full model is exact
        return self._probability_session

    def native_attention(self):
        """``(pre, post, heads, kernel)`` when the cloud mask's attention can run in the native kernel
        (:mod:`..native.attention`): CPU device, ``native_attention`` on in the config, the card's
        ``variants.pre_attention``/``post_attention`` graphs (cut at the fused attention node) and
        ``attention_heads`` present and loadable, the kernel built for this platform and CPU. Else
        None, with the reason in :attr:`native_attention_reason`."""
        if self._native is None and self._native_reason is None:
            self._native, self._native_reason = self._load_native()
        return self._native

    @property
    def native_attention_reason(self):
        self.native_attention()
        return self._native_reason

    def native_forward(self):
        """The :class:`~..native.forward.NativeForward` (the whole forward pass in C) where
        :meth:`native_attention` is available, the card names ``variants.native_weights``, the CPU has
        AVX-512 and the pass agrees with the ONNX graphs on constructed spectra (within
        :data:`FORWARD_CHECK_ATOL`); else None, with the reason in :attr:`native_forward_reason`."""
        if self._forward is None and self._forward_reason is None:
            self._forward, self._forward_reason = self._load_forward()
        return self._forward

    @property
    def native_forward_reason(self):
        self.native_forward()
        return self._forward_reason

    def attention_engine(self):
        """For the log: which code computes the cloud mask's attention, and why."""
        native = self.native_attention()
        if native is None:
            return f"SpecTf attention: ONNX Runtime ({self._native_reason})"
        if self.native_forward() is not None:
            return f"SpecTf attention: native kernel ({native[3].isa_name}), the whole forward pass native"
        return (f"SpecTf attention: native kernel ({native[3].isa_name}), projections in ONNX Runtime "
                f"(native forward pass: {self._forward_reason})")

    def _load_native(self):
        if self.session.device != "cpu":
            return None, f"device {self.session.device}"
        if self._config is not None and not self._config.native_attention:
            return None, "native attention switched off (SPECTRALTF_NATIVE_ATTN=0)"
        heads = self.card.get("attention_heads")
        pre, post = self._variant_path("pre_attention"), self._variant_path("post_attention")
        if not (isinstance(heads, int) and heads > 0 and pre and post):
            return None, "the model card names no pre/post-attention graphs"
        from ..native import attention as native

        kernel = native.kernel()
        if kernel is None:
            return None, native.unavailable_reason()
        try:
            pre_s = onnx_backend.load_session(pre, "cpu", 1, self.parameter, config=self._config)
            post_s = onnx_backend.load_session(post, "cpu", 1, self.parameter, config=self._config)
        except ModelError as exc:
            return None, f"its pre/post-attention graphs do not load ({exc})"
        qkv = [pre_s.outputs.get(n) for n in ("q", "k", "v")]
        if not all(qkv) or set(pre_s.inputs) != {"spectra", "wavelengths"} \
                or set(post_s.inputs) != {"attention_output"} or "probability" not in post_s.outputs:
            return None, "its pre/post-attention graphs do not have the expected inputs and outputs"
        # the width of q, k, v (static in our exports; else the post-attention input's)
        widths = [dims(a)[-1] for a in qkv + [post_s.inputs["attention_output"]] if dims(a)]
        width = next((w for w in widths if isinstance(w, int) and w > 0), None)
        if width != heads * native.HEAD_DIM or any(isinstance(w, int) and w > 0 and w != width for w in widths):
            return None, f"its attention is not {heads} heads of {native.HEAD_DIM} (q width {width})"
        return (pre_s, post_s, heads, kernel), None

    def _load_forward(self):
        native = self.native_attention()
        if native is None:
            return None, self._native_reason
        path = self._variant_path("native_weights")
        if not path:
            return None, "the model card names no native weights"
        from ..native import forward as native_forward

        heads, kernel = native[2], native[3]
        try:
            forward = native_forward.load(path, kernel, heads)
        except native_forward.WeightsError as exc:
            return None, str(exc)
        # the same probabilities as the ONNX graphs it replaces, on spectra it has not seen
        wl = self.trained_wavelengths_nm
        wl = (np.linspace(410.0, 2450.0, 268) if wl is None else np.asarray(wl)).astype(np.float32)
        spectra = check_spectra(wl.size)
        expected = self._predict_split(spectra, wl, native, 1, None)
        got = forward.run(spectra, wl)
        error = float(np.max(np.abs(got - expected)))
        if not error <= FORWARD_CHECK_ATOL:
            return None, (f"it disagrees with the ONNX graphs (max |Δp| {error:.1e} > {FORWARD_CHECK_ATOL:g} on "
                          f"constructed spectra)")
        return forward, None

    def _workers(self):
        """CPU worker threads for data-parallel inference (1 on CUDA)."""
        if self.session.device != "cpu":
            return 1
        threads = int(self._threads or onnx_backend.default_threads(self._config))
        return max(1, min(threads, cpu_cores()))  # never more workers than cores

    def _single_threaded(self, session):
        """The same graph with one intra-op thread, for one-run-per-core data parallelism."""
        return onnx_backend.load_session(session.path, "cpu", 1, self.parameter)

    def _executor(self, workers):
        with self._pool_lock:
            if self._pool is None or self._pool_workers != workers:
                self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="spectraltf-spectf")
                self._pool_workers = workers
            return self._pool

    @property
    def recommended_batch_size(self):
        b = self.card.get("recommended_batch_size")
        return int(b) if isinstance(b, int) and b > 0 else DEFAULT_BATCH_SIZE

    def predict(self, spectra, wavelengths_nm, attention=False, monitor=None):
        """Run one batch: ``spectra`` (N, S) reflectance, ``wavelengths_nm`` (S,). Returns
        ``(probability (N,), attention (N, S) or None)`` float32. A ``monitor`` that reports
        cancellation stops the inference itself (ONNX Runtime run termination)."""
        names = ["probability", "attention"] if attention else ["probability"]
        spectra = np.ascontiguousarray(spectra, dtype=np.float32)
        wl = np.ascontiguousarray(wavelengths_nm, dtype=np.float32)
        n, workers = spectra.shape[0], self._workers()
        native = None if attention else self.native_attention()
        if native is not None:
            forward = self.native_forward()
            if forward is not None:
                return self._predict_forward(spectra, wl, forward, workers, monitor), None
            return self._predict_split(spectra, wl, native, workers, monitor), None
        session = self.session if attention else self.probability_session()
        if self.session.device != "cpu" or n <= CPU_CHUNK:
            out = self.infer(names, {"spectra": spectra, "wavelengths": wl}, monitor, session=session)
            prob = np.asarray(out[0], dtype=np.float32).reshape(-1)
            return prob, (np.asarray(out[1], dtype=np.float32) if attention else None)

        # CPU: one single-threaded run of CPU_CHUNK spectra at a time on each core (also with one
        # thread, e.g. a batch worker: small runs take ~25 % less CPU than one run of the whole batch)
        single = self._single_threaded(session)
        prob = np.empty(n, np.float32)
        att = np.empty((n, spectra.shape[1]), np.float32) if attention else None

        def step(start, stop):
            out = single.run(names, {"spectra": spectra[start:stop], "wavelengths": wl})
            prob[start:stop] = np.asarray(out[0], dtype=np.float32).reshape(-1)
            if attention:
                att[start:stop] = out[1]

        self._run_chunks(n, CPU_CHUNK, workers, step, monitor)
        return prob, att

    def _predict_forward(self, spectra, wl, forward, workers, monitor):
        """Probabilities (N,) through the native forward pass (embedding to head in C), FORWARD_CHUNK
        spectra per call, one run of chunks per worker thread."""
        prob = np.empty(spectra.shape[0], np.float32)

        def step(start, stop):
            forward.run(spectra[start:stop], wl, out=prob[start:stop])

        self._run_chunks(spectra.shape[0], FORWARD_CHUNK, workers, step, monitor)
        return prob

    def _predict_split(self, spectra, wl, native, workers, monitor):
        """Probabilities (N,) through ONNX Runtime (embedding, q/k/v projections) → native attention →
        ONNX Runtime (output projection, feed-forward, pooling, head), NATIVE_CHUNK spectra at a time."""
        pre, post, heads, kernel = native
        prob = np.empty(spectra.shape[0], np.float32)

        def step(start, stop):
            q, k, v = (a.reshape(stop - start, wl.size, -1)  # (N·S, 64) in our exports: views
                       for a in pre.run(["q", "k", "v"], {"spectra": spectra[start:stop], "wavelengths": wl}))
            out = post.run(["probability"], {"attention_output": kernel.run(q, k, v, heads)})[0]
            prob[start:stop] = np.asarray(out, dtype=np.float32).reshape(-1)

        self._run_chunks(spectra.shape[0], NATIVE_CHUNK, workers, step, monitor)
        return prob

    def _run_chunks(self, n, chunk, workers, step, monitor):
        """``step(start, stop)`` on the ``chunk``-sized slices of ``range(n)``: consecutive runs of them,
        one per worker thread (in this thread when there is one); the monitor is checked before each."""
        if n == 0:
            return
        parts = np.array_split(np.arange(0, n, chunk), min(workers, -(-n // chunk)))

        def work(starts):
            for start in starts:
                if monitor is not None:
                    monitor.check()
                step(start, min(n, start + chunk))

        if len(parts) == 1:
            work(parts[0])
            return
        futures = [self._executor(workers).submit(work, part) for part in parts if len(part)]
        for future in futures:
            future.result()  # re-raises Cancelled or an inference error from a worker


def check_spectra(bands, n=32, seed=16):
    """(n, bands) float32 smooth random reflectance spectra (random walks scaled into [0, 1]): for SpecTf
    v0.1.0 their cloud probabilities spread from 0 to 1, so a wrong weight shows in them."""
    rng = np.random.default_rng(seed)
    walk = np.cumsum(rng.standard_normal((n, bands)), axis=1)
    span = np.ptp(walk, axis=1, keepdims=True)
    walk = (walk - walk.min(axis=1, keepdims=True)) / np.where(span > 0, span, 1.0)
    return (walk * rng.uniform(0.05, 1.0, (n, 1))).astype(np.float32)


def keep_bands(wavelength_nm, drop_ranges_nm=DEFAULT_DROP_RANGES_NM):
    """Boolean mask of bands whose centre (nm) lies outside every inclusive drop range."""
    wl = np.asarray(wavelength_nm, dtype=np.float64)
    keep = np.ones(wl.shape, dtype=bool)
    for lo, hi in drop_ranges_nm:
        keep &= ~((wl >= lo) & (wl <= hi))
    return keep


def wavelength_mismatch(used_nm, trained_nm, tolerance=WAVELENGTH_TOLERANCE_NM):
    """Why ``used_nm`` differ from the training wavelengths (a sentence), or None when they match."""
    if trained_nm is None:
        return None
    # SpecTf's tokens carry their own wavelength and it has no positional encoding: band order does not
    # matter (a descending cube gives identical results), so centres are compared as sets
    used_nm = np.sort(np.asarray(used_nm, dtype=np.float64))
    trained_nm = np.sort(np.asarray(trained_nm, dtype=np.float64))
    if used_nm.size != trained_nm.size:
        return f"{used_nm.size} bands are used but the model was trained on {trained_nm.size}"
    diff = float(np.max(np.abs(used_nm - trained_nm)))
    if diff > tolerance:
        return f"band centres differ from the training wavelengths by up to {diff:.1f} nm"
    return None
