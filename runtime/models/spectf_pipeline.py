"""SpecTf cloud masks over hyperspectral rasters: the task pipeline (QGIS-free).

Bands: the model's drop ranges (:func:`.spectf.keep_bands`), the bands the file flags bad
(``bbl`` = 0) and the bands that are nodata in every sampled pixel (:mod:`..physics.band_validity`,
which also logs the applied value scale and refuses untagged scaled integers). Input type:
:func:`..physics.input_type.decide_input_type`. Radiance is converted per block to TOA
reflectance (:class:`..physics.toa.ToaConverter`, with the model's own solar spectrum).

Pipeline (one pass, memory bounded by the block budget whatever the scene size), on
:func:`..pipeline.overlapped` so reading/converting block k+1 and writing block k−1 overlap the
inference of block k::

    read block → (radiance → TOA reflectance) → keep bands → valid pixels
    → ONNX in batches (cancellable between batches) → write mask / probability / attention

Pixels where any used band is nodata/NaN/Inf never reach the model; they are written as nodata
(mask 255, float outputs −9999). Outputs are written to temporary files and renamed only when the
whole run succeeded (:class:`..pipeline.OutputSet`), so an error or cancellation leaves no output.

Entry point: :func:`run_spectf` (used by ``spectraltf:cloudmask`` and ``spectraltf:attentionmaps``).
"""
import os
from dataclasses import dataclass, field

import numpy as np

from ..physics import band_validity
from . import onnx_backend
from ..pipeline import styles
from ..config import ensure_config
from ..errors import InputError, ModelError, ref, render
from ..monitor import ensure
from ..io.raster_io import Grid, open_raster, read_block
from ..pipeline import IN_FLIGHT_BLOCKS, OutputSet, overlapped, strips
from ..physics.input_type import decide_input_type
from ..io.spectral import read_spectral_info, write_spectral_metadata
from .spectf import DEFAULT_MODEL, DEFAULT_THRESHOLD, SpectfModel, keep_bands, wavelength_mismatch

MASK_CLEAR, MASK_CLOUD, MASK_NODATA = 0, 1, 255
#: Classes of the cloud mask: (value, label, RGBA) for its colour table and style.
MASK_CLASSES = [(MASK_CLEAR, "clear", styles.CLEAR_COLOR), (MASK_CLOUD, "cloud", styles.CLOUD_COLOR),
                (MASK_NODATA, "no data", styles.NODATA_COLOR)]
FLOAT_NODATA = -9999.0
#: Output keys accepted by :func:`run_spectf`.
OUTPUT_KEYS = ("mask", "probability", "attention", "top_wavelength")


def _toa_converter(ds, bands, observation, irradiance, solar_zenith, earth_sun_distance, monitor, names, scale=None):
    """A :class:`~.toa.ToaConverter` for the 1-based radiance ``bands`` of ``ds``."""
    from ..physics.toa import ToaConverter

    return ToaConverter.create(ds, observation_ds=observation, irradiance=irradiance, solar_zenith=solar_zenith,
                               earth_sun_distance=earth_sun_distance, monitor=monitor, bands=bands,
                               scale=scale)  # its errors name input, observation, scale: the tasks' arguments


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
        # «arg» markers as the caller's monitor renders them (Processing names under Task.run)
        self.warnings.append(render(message, getattr(self._m, "names", None)))
        self._m.warn(message)

    def __getattr__(self, name):
        return getattr(self._m, name)


#: Which runtime argument of the calling task holds each role, for errors and markers: by default
#: those of :func:`..tasks.cloudmask`; :func:`..tasks.attentionmaps` passes
#: ``parameters={"attention": "output"}``. Runtime argument names only: the parameter table renames
#: them to Processing names (see :mod:`..errors`).
DEFAULT_PARAMETER_NAMES = {
    "input": "input", "model": "model", "threshold": "threshold", "batch_size": "batch_size", "device": "device",
    "observation": "observation", "irradiance": "irradiance", "scale": "scale", "input_type": "input_type",
    "mask": "mask", "probability": "probability", "attention": "attention", "top_wavelength": "top_wavelength",
}


def _check_outputs(outputs, names):
    outputs = {k: v for k, v in (outputs or {}).items() if v not in (None, "")}
    unknown = set(outputs) - set(OUTPUT_KEYS)
    if unknown:
        raise ValueError(f"unknown output keys {sorted(unknown)}; expected {OUTPUT_KEYS}")
    if not outputs:
        raise InputError(f"no output requested; give at least the cloud-mask {ref(names['mask'])}.", names["mask"])
    return outputs


def run_spectf(input_ds, model=DEFAULT_MODEL, outputs=None, input_type="auto", observation=None,
               irradiance=None, solar_zenith=None, earth_sun_distance=None, threshold=None, device="auto",
               batch_size=None, monitor=None, block_bytes=None, parameters=None, config=None, scale=None,
               overlap=True):
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
    overlap : read/convert the next block and write the previous one in threads while a block runs
        through the model (default); False runs the stages one after the other (same results).

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
    outputs = _check_outputs(outputs, names)
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
        outs.add_input(names["irradiance"], str(irradiance))
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
    else:
        monitor.info(spectf.attention_engine())

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
                             parameter=names["input"], input_type_parameter=names["input_type"])
    converter = None
    if kind == "radiance":
        if irradiance is None and spectf.solar_irradiance_path:
            irradiance = spectf.solar_irradiance_path
            monitor.info(f"Radiance is converted with the model's own solar spectrum ({os.path.basename(irradiance)}), "
                         f"as its reference implementation does; set {ref(names['irradiance'])} to use another.")
        converter = _toa_converter(ds, (band_idx + 1).tolist(), observation, irradiance, solar_zenith,
                                   earth_sun_distance, monitor, names, scale)

    result = SpectfResult(outputs=dict(outputs), model_id=spectf.id, input_type=kind, threshold=threshold,
                          batch_size=batch_size, provider=spectf.session.active_provider,
                          wavelengths_nm=used_wl, band_indices=band_idx + 1)
    _stream(ds, spectf, converter, band_idx, used_wl, outputs, threshold, batch_size, monitor,
            int(block_bytes or config.block_bytes), result, info, names, outs,
            (scales[band_idx], offsets[band_idx]), overlap)
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
            info, names, outs, scales_offsets=None, overlap=True):
    """Read → (TOA) → valid spectra → SpecTf → write, block by block on :func:`~.pipeline.overlapped`:
    block k+1 is read and converted and block k−1 written while block k runs through the model."""
    grid = Grid.of(ds)
    bands = (band_idx + 1).tolist()
    want_att = "attention" in outputs or "top_wavelength" in outputs
    # float32 values held per pixel: block of used bands + converted copy + pixel matrix
    # (+ attention matrix and attention block); the budget bounds all of them together, for all
    # the blocks in flight (one being read, one computed, one written).
    per_pixel = band_idx.size * (5 if want_att else 3)
    in_flight = IN_FLIGHT_BLOCKS if overlap else 1
    windows = strips(grid.width, grid.height, per_pixel, budget // in_flight, align=16)
    wl32 = used_wl.astype(np.float32)
    monitor.info(f"Streaming {len(windows)} block(s) of up to {windows[0].ysize if windows else 0} rows; "
                 f"batch size {batch_size}" + ("; reading and writing overlap inference." if overlap else "."))
    some_data = [0]

    def read(window):
        """Valid spectra of ``window`` as a C-ordered (n, S) float32 matrix (reader thread)."""
        values, band_valid = read_block(ds, window, bands, scales_offsets, per_band=True)  # used bands only
        some = int(np.any(band_valid, axis=0).sum())
        valid = np.all(band_valid, axis=0)
        del band_valid
        values[:, ~valid] = np.nan
        if converter is not None:
            values = converter.convert(window, values)
            valid &= np.all(np.isfinite(values), axis=0)
        pixels = np.ascontiguousarray(values[:, valid].T)  # (n, S): only valid spectra reach the model
        return pixels, valid, some

    def compute(window, data, advance):
        pixels, valid, some = data
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
            advance(stop / n)
        cloud = prob >= threshold
        some_data[0] += some
        result.valid_pixels += int(n)
        result.cloud_pixels += int(cloud.sum())
        return valid, cloud, prob, att

    def write(window, computed):
        valid, cloud, prob, att = computed
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
            if prob.size:
                top = wl32[np.argmax(att, axis=1)]
                block[valid] = top
                lo, hi = float(top.min()), float(top.max())
                old = result.top_wavelength_range
                result.top_wavelength_range = (lo, hi) if old is None else (min(old[0], lo), max(old[1], hi))
            writers["top_wavelength"].write(window, block)

    with outs:
        writers = _open_writers(outs, grid, outputs, used_wl, info, band_idx, spectf, threshold,
                                result.input_type, names)
        observation = converter.observation_ds if converter is not None else None
        overlapped(windows, read, compute, write, monitor, release=(ds, observation), overlap=overlap)
        some_data = some_data[0]
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
