"""Which bands of an input a model uses, and whether the input's values are physically plausible.

One place for every algorithm that takes spectra (cloud mask, attention maps, segmentation), so a
file from any sensor gives the right answer or a clear refusal — never silent garbage.

**Band choice** (:func:`choose_bands`): a band is dropped when

1. the model does not take it (SpecTf: its centre lies in the card's ``drop_ranges_nm``);
2. the file flags it bad (``bbl`` = 0 in the band metadata or ENVI header, e.g. EnMAP's six bands
   at 1331–1391 nm, EMIT L2A's water-vapour bands);
3. it is nodata in every pixel of a cheap decimated sample (≤ 96 × 96 pixels, see
   :func:`sample_bands`).

The log lists what was dropped and why; when nothing usable remains the error names ``input``.

**Scale** (:func:`value_scale`): stored values × scale + offset, from the file's GDAL scale/offset
(EnMAP's 0.0001) or an explicit ``scale`` (which replaces them); the applied scale is
logged.

**Plausibility**: :func:`check_reflectance` refuses (or diagnoses) reflectance stored as integers
(×10000, ×1000, percent) without a scale tag and proposes the fix; :func:`radiance_ceiling_check`
refuses radiance brighter than 1.5 × a perfect white (Lambertian, albedo 1) reflector lit by the Sun
at zenith 0 at 1 AU, ``L_max = 1.5 · E_sun(λ) / π`` (µW cm⁻² nm⁻¹ sr⁻¹), and names the likely
cause.
"""
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError, ref
from ..monitor import ensure

#: Edge (pixels) of the decimated grid sampled to find empty bands and check value ranges.
SAMPLE_SIDE = 96
#: Radiance above this multiple of a white reflector's radiance (sun at zenith, 1 AU) is refused.
RADIANCE_CEILING = 1.5
#: Fraction of used bands whose 99th percentile must exceed the ceiling for a refusal (a fire or a
#: specular glint may exceed it in a few bands; scaled integers or wrong units exceed it in all).
RADIANCE_CEILING_BANDS = 0.5
#: TOA / surface reflectance rarely exceeds this (bright clouds, fresh snow).
MAX_REFLECTANCE = 1.5
#: Integer scale factors with which reflectance is commonly stored (×10000 EnMAP/Sentinel-2/HLS,
#: ×1000, percent).
REFLECTANCE_INTEGER_SCALES = (10000, 1000, 100)


@dataclass
class BandChoice:
    """Bands a model uses (``indices``, 0-based into the raster's bands) and why the others were dropped.

    ``dropped`` maps a reason to the 0-based band indices dropped for it; ``sample`` holds the sampled
    physical values of the used bands, (used bands, sampled pixels), NaN where invalid."""

    indices: np.ndarray
    wavelength_nm: np.ndarray
    total: int
    dropped: dict = field(default_factory=dict)
    sample: np.ndarray = None

    @property
    def bands(self):
        """1-based band numbers of the used bands."""
        return (self.indices + 1).tolist()

    def describe(self, wavelength_nm=None):
        """One sentence for the log: how many bands are used and what was dropped, why."""
        used = self.wavelength_nm
        text = f"{self.indices.size} of {self.total} used"
        if used is not None and used.size:
            text += f" ({np.min(used):.1f}–{np.max(used):.1f} nm)"
        parts = []
        for reason, idx in self.dropped.items():
            if len(idx):
                where = ""
                if wavelength_nm is not None:
                    wl = np.asarray(wavelength_nm)[np.asarray(idx)]
                    where = f": {_ranges_text(wl)}"
                parts.append(f"{len(idx)} {reason}{where}")
        return text + ("; dropped " + "; ".join(parts) if parts else "; none dropped") + "."


def _ranges_text(wl, gap=30.0):
    """'1331.5–1391.4 nm, 2460.0 nm' for a set of wavelengths (runs split at gaps > ``gap`` nm)."""
    wl = np.sort(np.asarray(wl, dtype=np.float64))
    runs, start = [], 0
    for i in range(1, wl.size + 1):
        if i == wl.size or wl[i] - wl[i - 1] > gap:
            lo, hi = wl[start], wl[i - 1]
            runs.append(f"{lo:.1f} nm" if lo == hi else f"{lo:.1f}–{hi:.1f} nm")
            start = i
    if len(runs) > 6:
        runs = runs[:5] + [f"… ({len(runs) - 5} more ranges)"]
    return ", ".join(runs)


# ---------------------------------------------------------------------------------------------
# scale
# ---------------------------------------------------------------------------------------------
def value_scale(ds, bands, scale=None, parameter="scale"):
    """``(scales, offsets, source)`` turning stored values of the 1-based ``bands`` into physical ones.

    An explicit ``scale`` (a positive number) replaces the file's GDAL scale/offset; otherwise the
    file's own (1 and 0 where unset). ``source`` says which, for the log."""
    n = len(bands)
    if scale is not None:
        try:
            value = float(scale)
        except (TypeError, ValueError):
            raise InputError(f"'{scale}' is not a number; expected the factor that turns stored values into "
                             "physical ones, e.g. 0.0001 for reflectance ×10000.", parameter) from None
        if not np.isfinite(value) or value <= 0:
            raise InputError(f"{value:g} is not a positive factor; expected e.g. 0.0001 for reflectance ×10000 "
                             "(leave empty to use the file's own scale/offset).", parameter)
        return np.full(n, value), np.zeros(n), f"{ref(parameter)}={value:g} (given; replaces the file's scale/offset)"
    scales = np.array([ds.GetRasterBand(int(b)).GetScale() or 1.0 for b in bands], dtype=np.float64)
    offsets = np.array([ds.GetRasterBand(int(b)).GetOffset() or 0.0 for b in bands], dtype=np.float64)
    if np.all(scales == 1.0) and np.all(offsets == 0.0):
        return scales, offsets, "none (stored values used as they are)"
    s, o = np.unique(scales), np.unique(offsets)
    text = (f"× {s[0]:g}" if s.size == 1 else f"× {s.min():g}…{s.max():g} (per band)")
    if np.any(offsets != 0.0):
        text += f" + {o[0]:g}" if o.size == 1 else f" + {o.min():g}…{o.max():g} (per band)"
    return scales, offsets, f"{text} (the file's GDAL scale/offset)"


def log_scale(monitor, source):
    ensure(monitor).info(f"Value scale: {source}.")


# ---------------------------------------------------------------------------------------------
# sampling
# ---------------------------------------------------------------------------------------------
@dataclass
class Sample:
    """Values of some bands on a decimated grid: ``stored`` (bands, pixels) as stored, ``physical``
    after scale/offset, NaN where nodata/NaN/Inf."""

    stored: np.ndarray
    physical: np.ndarray

    @property
    def valid(self):
        return np.isfinite(self.physical)


def sample_bands(ds, bands, scales=None, offsets=None, max_side=SAMPLE_SIDE):
    """Read the 1-based ``bands`` on a decimated grid of at most ``max_side``² pixels (nearest
    neighbour, one GDAL call) — a cheap look at every band before the full pass."""
    w, h = ds.RasterXSize, ds.RasterYSize
    bw, bh = min(w, max_side), min(h, max_side)
    bands = [int(b) for b in bands]
    try:
        arr = ds.ReadAsArray(0, 0, w, h, buf_xsize=bw, buf_ysize=bh, band_list=bands)
    except TypeError:  # datasets without band_list support (some wrappers): band by band
        arr = np.stack([ds.GetRasterBand(b).ReadAsArray(0, 0, w, h, buf_xsize=bw, buf_ysize=bh) for b in bands])
    arr = np.asarray(arr, dtype=np.float64).reshape(len(bands), -1)
    stored = arr.copy()
    ok = np.isfinite(arr)
    for i, b in enumerate(bands):
        nd = ds.GetRasterBand(b).GetNoDataValue()
        if nd is not None and np.isfinite(nd):
            ok[i] &= arr[i] != nd
    stored[~ok] = np.nan
    if scales is None:
        scales = np.ones(len(bands))
    if offsets is None:
        offsets = np.zeros(len(bands))
    physical = stored * np.asarray(scales, dtype=np.float64)[:, None] + np.asarray(offsets, dtype=np.float64)[:, None]
    return Sample(stored, physical)


# ---------------------------------------------------------------------------------------------
# band choice
# ---------------------------------------------------------------------------------------------
MODEL_DROP = "outside what the model takes"
BAD_BAND = "flagged bad in the file (bbl = 0)"
EMPTY_BAND = "nodata in every sampled pixel"


def choose_bands(ds, info, model_keep, scales_offsets=None, parameter="input", monitor=None,
                 model_reason=MODEL_DROP, max_side=SAMPLE_SIDE):
    """Decide the bands a model uses: ``model_keep`` (bool per raster band: what the model takes),
    then the file's ``bbl`` and a sample of every remaining band. Logs the choice; raises
    :class:`InputError` naming ``parameter`` when no usable band remains.

    ``scales_offsets``: ``(scales, offsets)`` for all raster bands (default the file's)."""
    monitor = ensure(monitor)
    n = ds.RasterCount
    keep = np.asarray(model_keep, dtype=bool).copy()
    dropped = {model_reason: np.nonzero(~keep)[0].tolist()}
    bbl = getattr(info, "bbl", None)
    if bbl is not None and len(bbl) == n:
        bad = keep & (np.asarray(bbl, dtype=np.float64) == 0)
        dropped[BAD_BAND] = np.nonzero(bad)[0].tolist()
        keep &= ~bad
    candidates = np.nonzero(keep)[0]
    if scales_offsets is None:
        scales, offsets = value_scale(ds, (candidates + 1).tolist())[:2]
    else:
        scales, offsets = (np.asarray(scales_offsets[0])[candidates], np.asarray(scales_offsets[1])[candidates])
    sample = sample_bands(ds, (candidates + 1).tolist(), scales, offsets, max_side) if candidates.size else None
    if sample is not None:
        empty = ~np.any(sample.valid, axis=1)
        dropped[EMPTY_BAND] = candidates[empty].tolist()
        used = candidates[~empty]
        sample = Sample(sample.stored[~empty], sample.physical[~empty])
    else:
        used = candidates
    wl_all = info.wavelength_nm if getattr(info, "wavelength_nm", None) is not None else None
    choice = BandChoice(np.asarray(used, dtype=np.int64), wl_all[used] if wl_all is not None else None, n,
                        {k: v for k, v in dropped.items() if v}, sample)
    if used.size == 0:
        raise InputError(f"no usable band: {choice.describe(wl_all)[len('0 of '):]} Expected at least one band the "
                         "model takes that is not flagged bad and holds data.", parameter)
    monitor.info(f"Bands: {choice.describe(wl_all)}")
    return choice


def usable_pixels(sample):
    """Sampled pixels valid in every used band, and in at least one."""
    valid = sample.valid
    return int(np.all(valid, axis=0).sum()), int(np.any(valid, axis=0).sum())


# ---------------------------------------------------------------------------------------------
# plausibility
# ---------------------------------------------------------------------------------------------
def _integer_valued(values):
    v = values[np.isfinite(values)]
    return v.size > 0 and bool(np.all(v == np.round(v)))


def stored_integer_scale(sample):
    """The integer factor (10000, 1000, 100) with which the sampled values look like stored reflectance,
    or None. Judged on *physical* values (after the file's scale): whole numbers whose 99th percentile
    divided by the factor is a plausible reflectance (0.01–1.5), largest factor that fits first."""
    values = sample.physical[np.isfinite(sample.physical)]
    if values.size == 0 or not _integer_valued(values):
        return None
    p99 = float(np.percentile(values, 99))
    if p99 <= MAX_REFLECTANCE:
        return None
    for factor in REFLECTANCE_INTEGER_SCALES:
        if 0.05 <= p99 / factor <= MAX_REFLECTANCE:
            return factor
    return None


def scaled_integers_message(factor, p99, what):
    return (f"the input holds whole numbers up to {p99:.6g} (99th percentile of a sample) and no scale tag: it "
            f"looks like reflectance stored as integers ×{factor}, not {what}. Set «scale»={1 / factor:g} (or tag the "
            f"file: gdal_edit.py -scale {1 / factor:g} FILE, or gdal_translate -a_scale {1 / factor:g}) and "
            "«input_type»=reflectance; if it really is radiance, give its scale to physical units with «scale».")


def white_reflector_radiance(irradiance, earth_sun_distance=1.0):
    """Radiance of a perfect white Lambertian reflector lit at zenith 0: ``E_sun / (π d²)`` (units of
    ``irradiance`` per sr)."""
    return np.asarray(irradiance, dtype=np.float64) / (np.pi * float(earth_sun_distance) ** 2)


def radiance_ceiling_check(radiance_sample, irradiance, wavelength_nm, parameter="input", factor=1.0,
                           earth_sun_distance=1.0, integer_hint=False):
    """Refuse radiance (µW cm⁻² nm⁻¹ sr⁻¹ after ``factor``) brighter than the Sun can make it.

    ``radiance_sample``: (bands, pixels) physical values (NaN = invalid). Raises :class:`InputError`
    when the 99th percentile exceeds :data:`RADIANCE_CEILING` × the white-reflector radiance in more
    than :data:`RADIANCE_CEILING_BANDS` of the bands; returns the median ratio p99 / white otherwise."""
    rad = np.asarray(radiance_sample, dtype=np.float64) * float(factor)
    white = white_reflector_radiance(irradiance, min(float(earth_sun_distance), 1.0))
    with np.errstate(all="ignore"):
        p99 = np.array([np.nanpercentile(r, 99) if np.any(np.isfinite(r)) else np.nan for r in rad])
        ratio = p99 / white
    ok = np.isfinite(ratio)
    if not np.any(ok):
        return None
    over = ratio[ok] > RADIANCE_CEILING
    median = float(np.median(ratio[ok]))
    if over.mean() > RADIANCE_CEILING_BANDS:
        i = int(np.nanargmax(np.where(ok, ratio, -np.inf)))
        causes = []
        if integer_hint or median > 50:
            causes.append("scaled integers (e.g. reflectance ×10000 or DN) without a scale tag: set «scale», or tag "
                          "the file with gdal_edit.py -scale")
        if 5 < median < 50:
            causes.append("radiance in W m⁻² sr⁻¹ µm⁻¹ (10× µW cm⁻² sr⁻¹ nm⁻¹): set «radiance_units»")
        causes.append("wrong «radiance_units»")
        raise InputError(
            f"the radiance is brighter than the Sun can make it: in {int(over.sum())} of {int(ok.sum())} bands the "
            f"99th percentile exceeds {RADIANCE_CEILING:g}× the radiance of a perfect white reflector at solar zenith "
            f"0 (median ratio {median:.3g}; at {wavelength_nm[i]:.0f} nm {p99[i]:.4g} vs {white[i]:.3g} µW cm⁻² nm⁻¹ "
            f"sr⁻¹). Likely cause: {'; or '.join(causes)}.", parameter)
    return median


def note_valid_pixels(writer, count, warning=None):
    """Record the valid-pixel count (and a warning) in an output's dataset metadata, keeping the rest."""
    metadata = dict(writer.ds.GetMetadata() or {})
    metadata["valid_pixels"] = str(int(count))
    if warning:
        metadata["warning"] = warning
    writer.set_metadata(metadata)


#: Median |z| (over bands and sampled pixels) of normalised model inputs above which the input cannot
#: be what the model was trained on (a ×10000 scale puts reflectance thousands of σ away).
MAX_MEDIAN_Z = 25.0


def check_model_input(ds, bands, scale, offset, mean, std, parameter="input", name=""):
    """Refuse a segmentation input whose values, after the file's scale and the card's ``scale``/
    ``offset``, lie far outside the model's training distribution (``mean``/``std`` per model band):
    median |(v·scale + offset − mean)/std| > :data:`MAX_MEDIAN_Z`. Proposes a scale when the values
    look like reflectance stored as integers. Returns the median |z| (None without valid samples)."""
    sample = sample_bands(ds, bands, *value_scale(ds, bands)[:2])
    col = lambda v: np.asarray(v, dtype=np.float64).reshape(-1)[:, None]  # noqa: E731
    x = sample.physical * col(scale) + col(offset)
    z = np.abs((x - col(mean)) / col(std))
    z = z[np.isfinite(z)]
    if z.size == 0:
        return None
    median = float(np.median(z))
    if median <= MAX_MEDIAN_Z:
        return median
    values = x[np.isfinite(x)]
    p99 = float(np.percentile(values, 99))
    hint = ""
    factor = stored_integer_scale(Sample(values[None], values[None]))
    if factor is not None and float(np.max(np.abs(mean))) < MAX_REFLECTANCE:
        hint = (f" They look like reflectance stored as integers ×{factor} without a scale tag: tag the file with "
                f"gdal_edit.py -scale {1 / factor:g} FILE (or gdal_translate -a_scale {1 / factor:g}); the raster's "
                "scale is honoured.")
    raise InputError(f"{name + ': ' if name else ''}after the model card's scale/offset the values (99th percentile "
                     f"{p99:.4g}) lie a median {median:.0f} standard deviations from the model's training mean, so the "
                     f"model would return garbage.{hint or ' Check the input bands, their scale and units.'}",
                     parameter)
