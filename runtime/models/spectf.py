"""Streaming SpecTf cloud-mask inference over hyperspectral rasters (QGIS-free).

SpecTf takes every band as a token ``[reflectance, wavelength]``, so bands are matched by
*wavelength*: the input's own band centres (nm) are used after removing the bands inside the model
card's ``drop_ranges_nm`` (inclusive; EMIT keeps 268 of 285 bands), the bands the file flags bad
(``bbl`` = 0) and the bands that are nodata in every sampled pixel (:mod:`.band_validity`, which also
logs the applied value scale and refuses untagged scaled integers). Other sensors (AVIRIS-NG, EnMAP,
PRISMA) run with their own wavelengths and a warning that the model was trained on EMIT.

Pipeline (one pass, memory bounded by the block budget whatever the scene size)::

    read block → (radiance → TOA reflectance via ToaConverter) → keep bands → valid pixels
    → ONNX in batches (cancellable between batches) → write mask / probability / attention

Pixels where any used band is nodata/NaN/Inf are not computed; they are written as nodata (mask 255,
float outputs −9999). Outputs are written to temporary files and renamed only when the whole run
succeeded (:class:`~.pipeline.OutputSet`), so an error or cancellation leaves no output.

Model contract (ONNX): inputs ``spectra`` float32 (N, S) TOA reflectance and ``wavelengths`` float32
(S,) nm; outputs ``probability`` (N,) cloud probability, ``logits`` (N, 2) and ``attention`` (N, S)
(attention each band receives, mean over heads and query positions).

Entry point: :func:`run_spectf` (used by ``spectraltf:cloudmask`` and ``spectraltf:attentionmaps``).
"""
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from ..physics import band_validity
from . import onnx_backend
from ..pipeline import styles
from .base import OnnxModel, dims
from ..config import cpu_cores, ensure_config
from ..errors import InputError, ModelError, render
from ..monitor import ensure
from ..io.raster_io import Grid, open_raster, read_block
from ..pipeline import OutputSet, stream, strips
from ..io.spectral import read_spectral_info, write_spectral_metadata

DEFAULT_MODEL = "spectf-cloud-v0.1.0"
TASK = "spectral-cloud-mask"
INPUT_TYPES = ("auto", "radiance", "reflectance")
#: SpecTf's published band-drop ranges (nm, inclusive), used when a card does not give them.
DEFAULT_DROP_RANGES_NM = ((0.0, 405.0), (1275.0, 1321.0), (2455.0, 9999.0))
DEFAULT_THRESHOLD = 0.5
DEFAULT_BATCH_SIZE = 256
#: Spectra per ONNX call on CPU. SpecTf's (8, S, S) attention is 2.3 MB per spectrum at S = 268:
#: runs of a few spectra keep it in cache, and one single-threaded run per core beats ONNX
#: Runtime's intra-op threading on large batches by ≈ 40 % (bench/spectf_speed.py).
CPU_CHUNK = 4
#: Wavelength mismatch (nm) above which the "trained on EMIT" warning is given.
WAVELENGTH_TOLERANCE_NM = 1.0
#: 99th percentile of sampled input values above which data are taken to be radiance (TOA
#: reflectance rarely exceeds ~1.2 even over bright clouds and snow).
RADIANCE_MIN_P99 = 1.5
#: Above this 99th percentile, data declared as reflectance are certainly not reflectance.
OBVIOUS_RADIANCE_P99 = 2.5

MASK_CLEAR, MASK_CLOUD, MASK_NODATA = 0, 1, 255
#: Classes of the cloud mask: (value, label, RGBA) for its colour table and style.
MASK_CLASSES = [(MASK_CLEAR, "clear", styles.CLEAR_COLOR), (MASK_CLOUD, "cloud", styles.CLOUD_COLOR),
                (MASK_NODATA, "no data", styles.NODATA_COLOR)]
FLOAT_NODATA = -9999.0
#: Output keys accepted by :func:`run_spectf`.
OUTPUT_KEYS = ("mask", "probability", "attention", "top_wavelength")


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
               "(float32, dynamic batch, the plugin's inputs), then give OUT.onnx as MODEL.")


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

    def __init__(self, path, card=None, model_id=None, device="auto", threads=None, parameter="MODEL", config=None):
        try:
            super().__init__(path, card, model_id, device, threads, parameter, config)
        except ModelError:
            if _is_bfloat16(path):
                raise ModelError(f"{path} is a bfloat16 ONNX model (such as the upstream SpecTf release), which ONNX "
                                 f"Runtime cannot run on this machine; {IMPORT_HINT.format(path=path)}",
                                 parameter) from None
            raise
        self._probability_session = None
        self._pool, self._pool_workers = None, 0
        self._pool_lock = threading.Lock()
        if not self.card:
            self.card = _card_from_file(self.path, self.session)
            self.id = model_id or self.card.get("id") or self.id
        self._validate()

    @classmethod
    def load(cls, model, device="auto", threads=None, parameter="MODEL", config=None):
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
        name = self.card.get("solar_irradiance_file")
        if not isinstance(name, str) or not name or os.path.isabs(name) or ".." in name.replace("\\", "/").split("/"):
            return None
        path = os.path.join(os.path.dirname(self.path), name)
        return path if os.path.isfile(path) else None

    def probability_session(self):
        """Session for probability-only inference: the card's ``variants.probability_only`` graph when it
        exists beside the model and loads (no attention output; fused attention), else the model."""
        if self._probability_session is None:
            self._probability_session = self.session
            variants = self.card.get("variants")
            rel = variants.get("probability_only") if isinstance(variants, dict) else None
            if isinstance(rel, str) and rel and not os.path.isabs(rel) and ".." not in rel.replace("\\", "/").split("/"):
                path = os.path.join(os.path.dirname(self.path), rel)
                if os.path.isfile(path):
                    try:
                        self._probability_session = onnx_backend.load_session(
                            path, self.session.device, self._threads, self.parameter, config=self._config)
                    except ModelError:
                        pass  # e.g. an ONNX Runtime without the variant's fused contrib op: the full model is exact
        return self._probability_session

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
        session = self.session if attention else self.probability_session()
        n, workers = spectra.shape[0], self._workers()
        if self.session.device != "cpu" or n <= CPU_CHUNK:
            out = self.infer(names, {"spectra": spectra, "wavelengths": wl}, monitor, session=session)
            prob = np.asarray(out[0], dtype=np.float32).reshape(-1)
            return prob, (np.asarray(out[1], dtype=np.float32) if attention else None)

        # CPU: one single-threaded run of CPU_CHUNK spectra at a time on each core (also with one
        # thread, e.g. a batch worker: small runs take ~25 % less CPU than one run of the whole batch)
        single = self._single_threaded(session)
        prob = np.empty(n, np.float32)
        att = np.empty((n, spectra.shape[1]), np.float32) if attention else None
        parts = np.array_split(np.arange(0, n, CPU_CHUNK), min(workers, -(-n // CPU_CHUNK)))

        def work(starts):
            for start in starts:
                if monitor is not None:
                    monitor.check()
                stop = min(n, start + CPU_CHUNK)
                out = single.run(names, {"spectra": spectra[start:stop], "wavelengths": wl})
                prob[start:stop] = np.asarray(out[0], dtype=np.float32).reshape(-1)
                if attention:
                    att[start:stop] = out[1]

        if workers == 1:
            work(parts[0])
            return prob, att
        futures = [self._executor(workers).submit(work, part) for part in parts if len(part)]
        for future in futures:
            future.result()  # re-raises Cancelled or an inference error from a worker
        return prob, att


# ---------------------------------------------------------------------------------------------
# bands and input type
# ---------------------------------------------------------------------------------------------
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


def sample_values(ds, bands, max_side=96):
    """Valid physical values of the 1-based ``bands`` read on a decimated grid (≤ max_side² pixels)
    — a cheap look at the value range before the full pass. Returns a 1-D float array."""
    w, h = ds.RasterXSize, ds.RasterYSize
    bw, bh = min(w, max_side), min(h, max_side)
    out = []
    for b in bands:
        band = ds.GetRasterBand(int(b))
        arr = band.ReadAsArray(0, 0, w, h, buf_xsize=bw, buf_ysize=bh).astype(np.float64)
        nd = band.GetNoDataValue()
        ok = np.isfinite(arr)
        if nd is not None and np.isfinite(nd):
            ok &= arr != nd
        vals = arr[ok] * (band.GetScale() or 1.0) + (band.GetOffset() or 0.0)
        out.append(vals)
    return np.concatenate(out) if out else np.empty(0)


def _metadata_hint(ds):
    """'radiance', 'reflectance' or None from descriptions/units/file name."""
    texts = [ds.GetDescription() or "", ds.GetRasterBand(1).GetUnitType() or ""]
    envi = ds.GetMetadata("ENVI") or {}
    texts += [str(envi.get(k, "")) for k in ("description", "data_units", "radiance_units", "reflectance_scale_factor")]
    texts += [str(v) for v in (ds.GetMetadata() or {}).values()][:50]
    text = " ".join(texts).lower()
    name = os.path.basename(ds.GetDescription() or "").lower()
    if "radiance" in text or "_rdn" in name or "w/m" in text or "watts" in text:
        return "radiance"
    if "reflectance" in text or "_rfl" in name or "toa" in name:
        return "reflectance"
    return None


def decide_input_type(ds, requested, bands, monitor=None, sample=None, explicit_scale=False, tagged_scale=None,
                      parameter="INPUT"):
    """Resolve ``requested`` (auto/radiance/reflectance) for ``ds``; logs the decision.

    Auto: the sampled value range decides (99th percentile > 1.5 → radiance), metadata (e.g. the
    ENVI description "Radiance ...") only when there are no valid values. Reflectance requested for
    data that are obviously radiance raises :class:`InputError`; doubtful cases warn.

    ``sample``: a :class:`.band_validity.Sample` of the used bands (else ``bands`` are sampled).
    Whole numbers that look like reflectance ×10000 (×1000, ×100) without a scale tag or an
    explicit scale are refused unless radiance is requested (the radiance ceiling judges those)."""
    monitor = ensure(monitor)
    requested = (requested or "auto").lower()
    if requested not in INPUT_TYPES:
        raise InputError(f"'{requested}' is not a valid input type; expected one of {', '.join(INPUT_TYPES)}.",
                         "INPUT_TYPE")
    if sample is not None:
        values = sample.physical[np.isfinite(sample.physical)]
    else:
        values = sample_values(ds, bands)
    if tagged_scale is None:
        tagged_scale = any((ds.GetRasterBand(int(b)).GetScale() or 1.0) != 1.0 for b in (bands or [1]))
    if requested != "radiance" and not explicit_scale and not tagged_scale and values.size:
        factor = band_validity.stored_integer_scale(band_validity.Sample(values[None], values[None]))
        if factor is not None:
            raise InputError(band_validity.scaled_integers_message(
                factor, float(np.percentile(values, 99)),
                "radiance" if requested == "auto" else "reflectance (0–~1.2)"), parameter)
    p99 = float(np.percentile(values, 99)) if values.size else None
    hint = _metadata_hint(ds)
    stats = f"99th percentile of sampled values {p99:.3g}" if p99 is not None else "no valid values sampled"
    if requested == "reflectance":
        if p99 is not None and p99 > OBVIOUS_RADIANCE_P99:
            raise InputError(
                f"the input holds values up to {p99:.3g} ({stats}), far above TOA reflectance (0–~1.2): it looks "
                "like radiance. Use INPUT_TYPE=radiance with the OBSERVATION file (or SOLAR_ZENITH) so it is "
                "converted to TOA reflectance, or give a reflectance raster.", parameter)
        if (p99 is not None and p99 > RADIANCE_MIN_P99) or hint == "radiance":
            monitor.warn(f"INPUT_TYPE=reflectance, but the input looks like radiance ({stats}; metadata: "
                         f"{hint or 'no hint'}); results are only meaningful for TOA reflectance.")
        monitor.info(f"Input type: reflectance (as requested; {stats}).")
        return "reflectance"
    if requested == "radiance":
        if p99 is not None and p99 <= RADIANCE_MIN_P99:
            monitor.warn(f"INPUT_TYPE=radiance, but the values look like reflectance ({stats}); check INPUT_TYPE.")
        monitor.info(f"Input type: radiance (as requested; {stats}); converted to TOA reflectance per block.")
        return "radiance"
    if p99 is not None:
        decided = "radiance" if p99 > RADIANCE_MIN_P99 else "reflectance"
        why = f"{stats} {'>' if decided == 'radiance' else '≤'} {RADIANCE_MIN_P99}"
        if hint and hint != decided:
            monitor.warn(f"the metadata suggest {hint} but the values look like {decided} ({stats}); using "
                         f"{decided}. Set INPUT_TYPE to override.")
    else:
        decided, why = hint or "reflectance", f"{stats}; metadata: {hint or 'no hint'}"
    monitor.info(f"Input type (auto): {decided} ({why}).")
    return decided


def _toa_converter(ds, bands, observation, irradiance, solar_zenith, earth_sun_distance, monitor, names, scale=None):
    """A :class:`~.toa.ToaConverter` for the 1-based radiance ``bands`` of ``ds``."""
    from ..physics.toa import ToaConverter

    return ToaConverter.create(ds, observation_ds=observation, irradiance=irradiance, solar_zenith=solar_zenith,
                               earth_sun_distance=earth_sun_distance, monitor=monitor, bands=bands,
                               scale=scale)  # its errors name input, observation, scale: the tasks' arguments


# ---------------------------------------------------------------------------------------------
# the streaming pipeline
# ---------------------------------------------------------------------------------------------
@dataclass
class SpectfResult:
    """What :func:`run_spectf` did: output paths, decisions and counts."""

    outputs: dict
    model_id: str
    input_type: str
    threshold: float
    batch_size: int
    provider: str
    wavelengths_nm: np.ndarray
    band_indices: np.ndarray  # 1-based input bands used, in model order
    valid_pixels: int = 0
    cloud_pixels: int = 0
    warnings: list = field(default_factory=list)
    top_wavelength_range: tuple = None  # (min, max) nm written to the top-wavelength output

    @property
    def cloud_fraction(self):
        return self.cloud_pixels / self.valid_pixels if self.valid_pixels else 0.0


class _WarnTap:
    """Monitor proxy that also keeps the warnings (returned in :class:`SpectfResult`)."""

    def __init__(self, monitor):
        self._m = monitor
        self.warnings = []

    def warn(self, message):
        self.warnings.append(render(message))  # «arg» markers as argument names, like the runtime's errors
        self._m.warn(message)

    def __getattr__(self, name):
        return getattr(self._m, name)


#: Runtime argument names used in error messages: those of :func:`..tasks.cloudmask`, which the
#: parameter table renames (``run_spectf(parameters={"attention": "output"})`` for attentionmaps).
#: COMPATIBILITY SHIM until the SpecTf split lands: this map and the literals still in this module
#: (INPUT_TYPE, MODEL, OBSERVATION, SOLAR_ZENITH, OUTPUT, IRRADIANCE) go then; see tests/test_error_names.py.
DEFAULT_PARAMETER_NAMES = {
    "input": "input", "model": "model", "threshold": "threshold", "batch_size": "batch_size", "device": "device",
    "observation": "observation", "scale": "scale", "mask": "mask", "probability": "probability",
    "attention": "attention", "top_wavelength": "top_wavelength",
}


def _check_outputs(outputs):
    outputs = {k: v for k, v in (outputs or {}).items() if v not in (None, "")}
    unknown = set(outputs) - set(OUTPUT_KEYS)
    if unknown:
        raise ValueError(f"unknown output keys {sorted(unknown)}; expected {OUTPUT_KEYS}")
    if not outputs:
        raise InputError("no output requested; give at least the cloud-mask OUTPUT.", "OUTPUT")
    return outputs


def run_spectf(input_ds, model=DEFAULT_MODEL, outputs=None, input_type="auto", observation=None,
               irradiance=None, solar_zenith=None, earth_sun_distance=None, threshold=None, device="auto",
               batch_size=None, monitor=None, block_bytes=None, parameters=None, config=None, scale=None):
    """Run SpecTf over a raster, streaming blocks; write the requested outputs.

    Parameters
    ----------
    input_ds : GDAL dataset or path. TOA reflectance (unitless) or at-sensor radiance (converted per
        block to TOA reflectance by :class:`~.toa.ToaConverter`).
    model : registry id, .onnx path, registry entry or :class:`SpectfModel`.
    outputs : dict with any of ``mask`` (uint8 0 clear / 1 cloud / 255 nodata), ``probability``
        (float32 cloud probability, nodata −9999), ``attention`` (float32, one band per used
        wavelength, attention each band received, nodata −9999), ``top_wavelength`` (float32 nm
        of the most-attended band, nodata −9999) → destination paths.
    input_type : auto | radiance | reflectance.
    observation, irradiance, solar_zenith (degrees), earth_sun_distance (AU) : passed to the
        ToaConverter for radiance input.
    threshold : cloud when probability ≥ threshold; default the card's, must lie in (0, 1).
    device : auto | cpu | cuda.  batch_size : spectra per ONNX call (default card or 256).
    block_bytes : input block budget in bytes (default: the config's block budget).
    parameters : optional mapping from argument / output keys to the caller's argument names used
        in error messages (:data:`DEFAULT_PARAMETER_NAMES`, e.g. ``{"attention": "output"}``).
    config : :class:`~.config.RuntimeConfig` (threads, device for auto, block budget, compression).
    scale : factor turning stored values into physical ones (e.g. 0.0001 for reflectance ×10000),
        replacing the file's GDAL scale/offset; default the file's. The applied scale is logged.

    Band and pixel policy (:mod:`.band_validity`): bands in the card's drop ranges, flagged bad
    (``bbl`` = 0) or nodata in every sampled pixel are not used; a pixel needs every used band
    (SpecTf sees the whole spectrum), else it is nodata in the outputs. Reflectance stored as
    integers without a scale tag, and radiance brighter than the Sun can make it, are refused
    naming INPUT. A result without valid pixels is a warning (log and output metadata), an error
    when pixels hold data but none in every used band.

    Returns a :class:`SpectfResult`.
    """
    names = dict(DEFAULT_PARAMETER_NAMES)
    names.update(parameters or {})
    tap = _WarnTap(ensure(monitor))
    monitor = tap
    config = ensure_config(config)
    outputs = _check_outputs(outputs)
    outs = OutputSet(config, monitor)
    for key, path in outputs.items():
        outputs[key] = outs.add_output(names[key], path)

    # -- cheap parameter checks first (no file opened yet) ----------------------------------------
    if threshold is not None:
        try:
            threshold = float(threshold)
        except (TypeError, ValueError):
            raise InputError(f"'{threshold}' is not a number; expected a probability between 0 and 1.",
                             names["threshold"]) from None
        if not (0.0 < threshold < 1.0) or not np.isfinite(threshold):
            raise InputError(f"{threshold:g} is outside (0, 1); expected a cloud-probability threshold "
                             "strictly between 0 and 1 (leave empty for the model's own).", names["threshold"])
    if batch_size is not None and (int(batch_size) != batch_size or int(batch_size) < 1):
        raise InputError(f"{batch_size} is not a positive whole number; expected e.g. 256.", names["batch_size"])
    if device not in onnx_backend.DEVICES:
        raise InputError(f"unknown device '{device}'; expected one of {', '.join(onnx_backend.DEVICES)}.",
                         names["device"])

    ds = open_raster(input_ds, names["input"]) if isinstance(input_ds, (str, os.PathLike)) else input_ds
    outs.add_input(names["input"], ds)
    outs.add_input(names["observation"], observation)
    if isinstance(irradiance, (str, os.PathLike)):
        outs.add_input("IRRADIANCE", str(irradiance))
    info = read_spectral_info(ds)
    if not info.has_wavelengths:
        raise InputError(
            "the raster has no band wavelengths; SpecTf matches bands by wavelength. Expected wavelength "
            "metadata (ENVI header 'wavelength', GDAL band 'wavelength' or CENTRAL_WAVELENGTH_UM, or band "
            "names such as '450.2 nm').", names["input"])

    spectf = SpectfModel.load(model, device=device, threads=config.cpu_threads, parameter=names["model"],
                              config=config)
    monitor.info(f"Model: {spectf.id} ({spectf.path}).")
    given = model.strip() if isinstance(model, str) else ""
    if given and not (given.lower().endswith(".onnx") or "/" in given or os.sep in given or os.path.isfile(given)):
        from .registry import duplicate_warning

        duplicate = duplicate_warning(given, config)
        if duplicate:
            monitor.warn(duplicate)
    monitor.info(spectf.session.describe())
    if "attention" in outputs or "top_wavelength" in outputs:
        if not spectf.has_attention:
            raise ModelError(f"{spectf.path} has no 'attention' output; an attention output needs a SpecTf "
                             "export with outputs probability, logits and attention (N,S).", names["model"])

    # -- bands and value scale -----------------------------------------------------------------
    wl = np.asarray(info.wavelength_nm, dtype=np.float64)
    all_bands = list(range(1, ds.RasterCount + 1))
    scales, offsets, scale_source = band_validity.value_scale(ds, all_bands, scale, names["scale"])
    band_validity.log_scale(monitor, scale_source)
    drops = [list(r) for r in spectf.drop_ranges_nm]
    choice = band_validity.choose_bands(ds, info, keep_bands(wl, spectf.drop_ranges_nm), (scales, offsets),
                                        names["input"], monitor, model_reason=f"inside the model's drop ranges {drops} nm")
    band_idx = choice.indices
    used_wl = wl[band_idx]
    monitor.info(f"Wavelengths from {info.source}; a pixel needs every used band (else it is nodata).")
    if spectf.fixed_bands is not None and spectf.fixed_bands != band_idx.size:
        raise InputError(f"the model takes exactly {spectf.fixed_bands} bands but {band_idx.size} remain after "
                         "dropping; use a model with a dynamic band dimension or an EMIT-like input.", names["input"])
    all_ok, any_ok = band_validity.usable_pixels(choice.sample)
    if any_ok and not all_ok:
        monitor.warn(f"none of the {any_ok} sampled pixels with data has every one of the {band_idx.size} used bands; "
                     "the result may have no valid pixel.")
    mismatch = wavelength_mismatch(used_wl, spectf.trained_wavelengths_nm)
    if mismatch:
        trained_on = spectf.card.get("trained_on", "EMIT")
        monitor.warn(f"the model was trained on {trained_on} spectra; {mismatch}. It runs with this sensor's own "
                     "wavelengths, but results are not validated for it.")

    # -- threshold and batch size --------------------------------------------------------------
    if threshold is None:
        threshold = spectf.threshold
        if threshold is None:
            threshold = DEFAULT_THRESHOLD
            monitor.warn(f"the model card gives no threshold; using {DEFAULT_THRESHOLD}.")
        monitor.info(f"Threshold: {threshold:g} (model card); cloud where probability ≥ threshold.")
    else:
        monitor.info(f"Threshold: {threshold:g}; cloud where probability ≥ threshold.")
    batch_size = int(batch_size) if batch_size else spectf.recommended_batch_size

    # -- input type and TOA conversion ---------------------------------------------------------
    kind = decide_input_type(ds, input_type, None, monitor, sample=choice.sample, explicit_scale=scale is not None,
                             tagged_scale=bool(np.any(scales[band_idx] != 1.0) or np.any(offsets[band_idx] != 0.0)),
                             parameter=names["input"])
    converter = None
    if kind == "radiance":
        if irradiance is None and spectf.solar_irradiance_path:
            irradiance = spectf.solar_irradiance_path
            monitor.info(f"Radiance is converted with the model's own solar spectrum ({os.path.basename(irradiance)}), "
                         "as its reference implementation does; set IRRADIANCE to use another.")
        converter = _toa_converter(ds, (band_idx + 1).tolist(), observation, irradiance, solar_zenith,
                                   earth_sun_distance, monitor, names, scale)

    result = SpectfResult(outputs=dict(outputs), model_id=spectf.id, input_type=kind, threshold=threshold,
                          batch_size=batch_size, provider=spectf.session.active_provider,
                          wavelengths_nm=used_wl, band_indices=band_idx + 1)
    _stream(ds, spectf, converter, band_idx, used_wl, outputs, threshold, batch_size, monitor,
            int(block_bytes or config.block_bytes), result, info, names, outs,
            (scales[band_idx], offsets[band_idx]))
    result.warnings = tap.warnings
    return result


def _open_writers(outs, grid, outputs, used_wl, info, band_idx, spectf, threshold, kind, names):
    """Create the requested writers inside the :class:`~.pipeline.OutputSet` ``outs``."""
    writers = {}
    common = {"model": spectf.id, "threshold": f"{threshold:g}", "input_type": kind}
    if "mask" in outputs:
        w = outs.create(names["mask"], grid, 1, np.uint8, MASK_NODATA)
        styles.apply_classes(w.band(1), MASK_CLASSES, category_names=False)
        w.set_band_descriptions(["cloud mask (0 clear, 1 cloud, 255 no data)"])
        w.set_metadata(common)
        writers["mask"] = w
    if "probability" in outputs:
        w = outs.create(names["probability"], grid, 1, np.float32, FLOAT_NODATA)
        w.set_band_descriptions(["cloud probability"])
        w.set_metadata(common)
        writers["probability"] = w
    if "attention" in outputs:
        w = outs.create(names["attention"], grid, used_wl.size, np.float32, FLOAT_NODATA)
        fwhm = info.fwhm_nm[band_idx] if info.fwhm_nm is not None else None
        write_spectral_metadata(w.ds, used_wl, fwhm)
        w.set_metadata(dict(common, content="attention each band token receives (mean over heads and queries)"))
        writers["attention"] = w
    if "top_wavelength" in outputs:
        w = outs.create(names["top_wavelength"], grid, 1, np.float32, FLOAT_NODATA)
        w.set_band_descriptions(["most-attended wavelength (nm)"])
        w.set_metadata(common)
        writers["top_wavelength"] = w
    return writers


def _stream(ds, spectf, converter, band_idx, used_wl, outputs, threshold, batch_size, monitor, budget, result,
            info, names, outs, scales_offsets=None):
    grid = Grid.of(ds)
    bands = (band_idx + 1).tolist()
    want_att = "attention" in outputs or "top_wavelength" in outputs
    # float32 values held per pixel: block of used bands + converted copy + pixel matrix
    # (+ attention matrix and attention block); the budget bounds all of them together.
    per_pixel = band_idx.size * (5 if want_att else 3)
    windows = strips(grid.width, grid.height, per_pixel, budget, align=16)
    wl32 = used_wl.astype(np.float32)
    monitor.info(f"Streaming {len(windows)} block(s) of up to {windows[0].ysize if windows else 0} rows; "
                 f"batch size {batch_size}.")
    some_data = 0
    with outs:
        writers = _open_writers(outs, grid, outputs, used_wl, info, band_idx, spectf, threshold,
                                result.input_type, names)
        observation = converter.observation_ds if converter is not None else None
        for index, window in enumerate(stream(windows, monitor, release=(ds, observation))):
            values, band_valid = read_block(ds, window, bands, scales_offsets, per_band=True)  # used bands only
            some_data += int(np.any(band_valid, axis=0).sum())
            valid = np.all(band_valid, axis=0)
            del band_valid
            values[:, ~valid] = np.nan
            if converter is not None:
                values = converter.convert(window, values)
                valid &= np.all(np.isfinite(values), axis=0)
            pixels = values[:, valid].T  # (n, S) valid spectra only
            del values
            n = pixels.shape[0]
            prob = np.empty(n, np.float32)
            att = np.empty((n, band_idx.size), np.float32) if want_att else None
            for start in range(0, n, batch_size):
                monitor.check()
                stop = min(n, start + batch_size)
                p, a = spectf.predict(pixels[start:stop], wl32, attention=want_att, monitor=monitor)
                prob[start:stop] = p
                if want_att:
                    att[start:stop] = a
                monitor.progress((index + stop / n) / len(windows))  # in step with stream()
            del pixels
            cloud = prob >= threshold
            result.valid_pixels += int(n)
            result.cloud_pixels += int(cloud.sum())
            shape = (window.ysize, window.xsize)
            if "mask" in writers:
                mask = np.full(shape, MASK_NODATA, np.uint8)
                mask[valid] = cloud.astype(np.uint8)
                writers["mask"].write(window, mask)
            if "probability" in writers:
                block = np.full(shape, FLOAT_NODATA, np.float32)
                block[valid] = prob
                writers["probability"].write(window, block)
            if "attention" in writers:
                block = np.full((band_idx.size,) + shape, FLOAT_NODATA, np.float32)
                block[:, valid] = att.T
                writers["attention"].write(window, block)
                del block
            if "top_wavelength" in writers:
                block = np.full(shape, FLOAT_NODATA, np.float32)
                if n:
                    top = wl32[np.argmax(att, axis=1)]
                    block[valid] = top
                    lo, hi = float(top.min()), float(top.max())
                    old = result.top_wavelength_range
                    result.top_wavelength_range = (lo, hi) if old is None else (min(old[0], lo), max(old[1], hi))
                writers["top_wavelength"].write(window, block)
        if result.valid_pixels == 0 and some_data:
            raise InputError(f"no pixel has data in every one of the {band_idx.size} used bands" + (
                " and a valid OBS zenith" if converter is not None and converter.observation_ds is not None else "")
                + f" ({some_data} pixels have data in some): every pixel was lost to the band choice. Check the "
                "bad-band list and nodata values of the input.", names["input"])
        warning = None
        if result.valid_pixels == 0:
            warning = "the result has no valid pixel: every input pixel is nodata"
            monitor.warn(warning + ".")
        for writer in writers.values():
            band_validity.note_valid_pixels(writer, result.valid_pixels, warning)
        _write_styles(outs, outputs, names, result)
    monitor.info(f"Valid pixels: {result.valid_pixels}; cloud: {result.cloud_pixels} "
                 f"({100 * result.cloud_fraction:.1f} %).")


def _key_for(names, name):
    return next((k for k, v in names.items() if v == name), None)


def _write_styles(outs, outputs, names, result=None):
    """QML styles of the outputs, staged with them in ``outs`` (QGIS loads ``out.qml`` for ``out.tif``)."""
    lo, hi = (result.top_wavelength_range if result is not None and result.top_wavelength_range
              else (400.0, 2500.0))
    if hi - lo < 1.0:
        lo, hi = lo - 5.0, hi + 5.0
    spec = {names["mask"]: ("classes", MASK_CLASSES), names["probability"]: ("ramp", 0.0, 1.0, "greys"),
            names["top_wavelength"]: ("ramp", lo, hi, "turbo")}
    if result is not None:
        # uniform attention is 1/S per band: 0 … 2/S spans "less" to "twice as much as uniform"
        spec[names["attention"]] = ("ramp", 0.0, 2.0 / max(1, len(result.wavelengths_nm)), "magma")
    styles.write_styles(outs, {name: s for name, s in spec.items() if _key_for(names, name) in outputs})
