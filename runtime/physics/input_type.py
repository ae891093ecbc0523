"""Radiance or reflectance? What a raster holds, decided before any long work (QGIS-free).

:func:`decide_input_type` resolves INPUT_TYPE (auto / radiance / reflectance) from the sampled value
range (99th percentile above :data:`RADIANCE_MIN_P99` → radiance) and, only when no valid value
is sampled, from the scene metadata (ENVI description, units, file name: :func:`metadata_hint`).
Reflectance requested for obvious radiance and scaled integers without a scale tag are refused
naming the parameter; doubtful cases warn.
"""
import os

import numpy as np

from . import band_validity
from ..errors import InputError, ref
from ..monitor import ensure

INPUT_TYPES = ("auto", "radiance", "reflectance")
#: 99th percentile of sampled input values above which data are taken to be radiance (TOA
#: reflectance rarely exceeds ~1.2 even over bright clouds and snow).
RADIANCE_MIN_P99 = 1.5
#: Above this 99th percentile, data declared as reflectance are certainly not reflectance.
OBVIOUS_RADIANCE_P99 = 2.5


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


def metadata_hint(ds):
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
                      parameter="input", input_type_parameter="input_type"):
    """Resolve ``requested`` (auto/radiance/reflectance) for ``ds``; logs the decision.

    Auto: the sampled value range decides (99th percentile > 1.5 → radiance), metadata (e.g. the
    ENVI description "Radiance ...") only when there are no valid values. Reflectance requested for
    data that are obviously radiance raises :class:`InputError`; doubtful cases warn. Errors name
    ``parameter`` (the raster) or ``input_type_parameter`` (runtime argument names, see :mod:`..errors`).

    ``sample``: a :class:`.band_validity.Sample` of the used bands (else ``bands`` are sampled).
    Whole numbers that look like reflectance ×10000 (×1000, ×100) without a scale tag or an
    explicit scale are refused unless radiance is requested (the radiance ceiling judges those)."""
    monitor = ensure(monitor)
    requested = (requested or "auto").lower()
    if requested not in INPUT_TYPES:
        raise InputError(f"'{requested}' is not a valid input type; expected one of {', '.join(INPUT_TYPES)}.",
                         input_type_parameter)
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
    hint = metadata_hint(ds)
    it, obs, sza = ref(input_type_parameter), ref("observation"), ref("solar_zenith")
    stats = f"99th percentile of sampled values {p99:.3g}" if p99 is not None else "no valid values sampled"
    if requested == "reflectance":
        if p99 is not None and p99 > OBVIOUS_RADIANCE_P99:
            raise InputError(
                f"the input holds values up to {p99:.3g} ({stats}), far above TOA reflectance (0–~1.2): it looks "
                f"like radiance. Use {it}=radiance with the {obs} file (or {sza}) so it is "
                "converted to TOA reflectance, or give a reflectance raster.", parameter)
        if (p99 is not None and p99 > RADIANCE_MIN_P99) or hint == "radiance":
            monitor.warn(f"{it}=reflectance, but the input looks like radiance ({stats}; metadata: "
                         f"{hint or 'no hint'}); results are only meaningful for TOA reflectance.")
        monitor.info(f"Input type: reflectance (as requested; {stats}).")
        return "reflectance"
    if requested == "radiance":
        if p99 is not None and p99 <= RADIANCE_MIN_P99:
            monitor.warn(f"{it}=radiance, but the values look like reflectance ({stats}); check {it}.")
        monitor.info(f"Input type: radiance (as requested; {stats}); converted to TOA reflectance per block.")
        return "radiance"
    if p99 is not None:
        decided = "radiance" if p99 > RADIANCE_MIN_P99 else "reflectance"
        why = f"{stats} {'>' if decided == 'radiance' else '≤'} {RADIANCE_MIN_P99}"
        if hint and hint != decided:
            monitor.warn(f"the metadata suggest {hint} but the values look like {decided} ({stats}); using "
                         f"{decided}. Set {it} to override.")
    else:
        decided, why = hint or "reflectance", f"{stats}; metadata: {hint or 'no hint'}"
    monitor.info(f"Input type (auto): {decided} ({why}).")
    return decided
