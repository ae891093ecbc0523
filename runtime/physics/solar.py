"""Solar spectrum loading, band resampling and solar geometry (pure numpy, QGIS-free).

Units used throughout: wavelengths in nm, solar irradiance in µW cm⁻² nm⁻¹ at 1 AU, angles in
degrees, Earth–Sun distance in astronomical units (AU), times in UTC.

- :func:`load_irradiance` reads a solar spectrum (``.npy`` 2 columns, or a text table such as the
  Kurucz / TSIS files distributed with isofit, or the shipped ASTM E-490 default) and converts it to
  nm / µW cm⁻² nm⁻¹.
- :func:`resample_gaussian` integrates a spectrum over Gaussian band responses of given FWHM.
- :func:`solar_position` / :func:`earth_sun_distance` implement the NOAA solar-position
  (spreadsheet) equations (geometric, no atmospheric refraction).
"""
import math
import os
import re
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np

from ..io.dates import parse_utc  # noqa: F401 (one time-stamp parser; also solar.parse_utc)
from ..errors import InputError
from .. import PLUGIN_DIR

#: Shipped default spectrum: ASTM E-490-00a (see resources/solar/SOURCE.txt).
DEFAULT_SPECTRUM = os.path.join(PLUGIN_DIR, "resources", "solar", "astm_e490_00a.csv")

#: FWHM → Gaussian sigma: sigma = FWHM / (2 sqrt(2 ln 2)).
FWHM_TO_SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))

# Factors converting a text table's irradiance units to µW cm⁻² nm⁻¹ (1 W m⁻² µm⁻¹ = 1 mW m⁻² nm⁻¹
# = 0.1 µW cm⁻² nm⁻¹; 1 W m⁻² nm⁻¹ = 100 µW cm⁻² nm⁻¹).
_UNIT_PATTERNS = [
    (re.compile(r"(µ|μ|u|micro)[- _]?w(atts?)?[\s_/()]*cm\s*\^?-?2", re.I), 1.0, "µW cm⁻² nm⁻¹"),
    (re.compile(r"mw\s*/?\s*\(?\s*m\s*\^?2?\s*nm", re.I), 0.1, "mW m⁻² nm⁻¹"),
    (re.compile(r"w\s*/\s*m\^?2\s*/\s*(micron|um|µm)", re.I), 0.1, "W m⁻² µm⁻¹"),
    (re.compile(r"w\s*/\s*m\^?2\s*/\s*nm", re.I), 100.0, "W m⁻² nm⁻¹"),
]


@dataclass
class SolarSpectrum:
    """A solar spectrum: ``wavelength_nm`` (ascending) and ``irradiance`` in µW cm⁻² nm⁻¹ at 1 AU."""

    wavelength_nm: np.ndarray
    irradiance: np.ndarray
    source: str = ""
    units_note: str = ""

    def covers(self, centre_nm, fwhm_nm):
        """Boolean per band: centre within the spectrum, allowing half a FWHM past either end."""
        lo, hi = self.wavelength_nm[0], self.wavelength_nm[-1]
        c, f = np.asarray(centre_nm, float), np.asarray(fwhm_nm, float)
        return (c >= lo - 0.5 * f) & (c <= hi + 0.5 * f)


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------
def _read_table(path, parameter):
    """Numeric 2+ column rows of a text table (comments ``#``/``!``/``;`` and text headers skipped)
    and the comment/header text (for unit detection)."""
    rows, header = [], []
    try:
        with open(path, "r", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                s = line.strip()
                if not s:
                    continue
                if s[0] in "#!;%":
                    header.append(s)
                    continue
                parts = re.split(r"[\s,;]+", s)
                try:
                    values = [float(p) for p in parts if p != ""]
                except ValueError:
                    if not rows:
                        header.append(s)  # column-name line
                        continue
                    raise InputError(f"{path}: unreadable line '{s[:60]}'; expected two numeric columns "
                                     "(wavelength, irradiance).", parameter) from None
                if len(values) < 2:
                    raise InputError(f"{path}: line '{s[:60]}' has fewer than two columns; expected "
                                     "wavelength and irradiance.", parameter)
                rows.append(values[:2])
    except OSError as exc:
        raise InputError(f"cannot read {path} ({exc.strerror or exc}).", parameter) from None
    except UnicodeError:
        raise InputError(f"{path} is not a text table.", parameter) from None
    return np.array(rows, dtype=np.float64).reshape(-1, 2), "\n".join(header)


def _irradiance_factor(header, wavelength_nm, values, source, parameter):
    """(factor to µW cm⁻² nm⁻¹, note): from units named in the header, else from the magnitude of the
    visible peak (µW cm⁻² nm⁻¹ ≈ 150–220; mW m⁻² nm⁻¹ or W m⁻² µm⁻¹ ≈ 1500–2200; W m⁻² nm⁻¹ ≈ 1.5–2.2)."""
    for pattern, factor, name in _UNIT_PATTERNS:
        if header and pattern.search(header):
            return factor, f"units {name} (from the file header)"
    vis = (wavelength_nm >= 400) & (wavelength_nm <= 700)
    peak = float(np.nanmax(values[vis])) if np.any(vis) else float(np.nanmax(values))
    if 50 <= peak <= 500:
        return 1.0, f"units µW cm⁻² nm⁻¹ (inferred: visible peak {peak:.4g})"
    if 500 <= peak <= 5000:
        return 0.1, f"units mW m⁻² nm⁻¹ = W m⁻² µm⁻¹ (inferred: visible peak {peak:.4g})"
    if 0.5 <= peak <= 5:
        return 100.0, f"units W m⁻² nm⁻¹ (inferred: visible peak {peak:.4g})"
    raise InputError(
        f"{source}: cannot tell the irradiance units (visible peak {peak:.4g}); expected a solar spectrum in "
        "µW cm⁻² nm⁻¹ (peak ≈ 200), mW m⁻² nm⁻¹ / W m⁻² µm⁻¹ (≈ 2000) or W m⁻² nm⁻¹ (≈ 2).", parameter)


#: Spectra already read by this process: (path, mtime ns, size) → SolarSpectrum (read-only arrays).
_loaded = {}
_LOADED_MAX = 16


def load_irradiance(path=None, parameter="irradiance"):
    """Load a solar spectrum as :class:`SolarSpectrum` (nm, µW cm⁻² nm⁻¹).

    ``path`` None → the shipped ASTM E-490 spectrum. ``.npy``: array (N, 2) of nm and
    µW cm⁻² nm⁻¹ (SpecTf's ``irr.npy``). Other files: text table of wavelength and irradiance;
    wavelengths below 30 are taken as µm; irradiance units from the header or the magnitude.

    A file is parsed once per process while its modification time and size stay the same (a batch
    worker runs many scenes with the same spectrum); the arrays returned are read-only."""
    if isinstance(path, SolarSpectrum):
        return path
    if path is None or str(path).strip() == "":
        path = DEFAULT_SPECTRUM
    path = str(path)
    if not os.path.isfile(path):
        raise InputError(f"solar spectrum file not found: {path}", parameter)
    try:
        st = os.stat(path)
        key = (os.path.realpath(path), st.st_mtime_ns, st.st_size)
    except OSError:
        key = None
    cached = _loaded.get(key) if key else None
    if cached is not None:
        return SolarSpectrum(cached.wavelength_nm, cached.irradiance, path, cached.units_note)
    spectrum = _read_irradiance(path, parameter)
    for arr in (spectrum.wavelength_nm, spectrum.irradiance):
        arr.setflags(write=False)
    if key:
        if len(_loaded) >= _LOADED_MAX:
            _loaded.clear()
        _loaded[key] = spectrum
    return spectrum


def _read_irradiance(path, parameter):
    header = ""
    if path.lower().endswith(".npy"):
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read {path} as a numpy array ({exc}); expected an (N, 2) array of "
                             "wavelength (nm) and irradiance (µW cm⁻² nm⁻¹).", parameter) from None
        arr = np.asarray(arr, dtype=np.float64) if np.issubdtype(np.asarray(arr).dtype, np.number) else None
        if arr is None or arr.ndim != 2 or 2 not in arr.shape:
            raise InputError(f"{path} is not an (N, 2) array of wavelength (nm) and irradiance.", parameter)
        if arr.shape[1] != 2:
            arr = arr.T
    else:
        arr, header = _read_table(path, parameter)
    arr = arr[np.all(np.isfinite(arr), axis=1)]
    if arr.shape[0] < 10:
        raise InputError(f"{path} holds {arr.shape[0]} usable rows; expected a solar spectrum table "
                         "(wavelength, irradiance) with many rows.", parameter)
    wl, values = arr[:, 0], arr[:, 1]
    order = np.argsort(wl, kind="stable")
    wl, values = wl[order], values[order]
    if np.nanmax(wl) < 30:  # micrometres
        wl = wl * 1e3
    keep = np.concatenate([[True], np.diff(wl) > 0])  # drop duplicate wavelengths
    wl, values = wl[keep], values[keep]
    if np.any(values < 0):
        raise InputError(f"{path} has negative irradiance values; expected a solar spectrum.", parameter)
    factor, note = _irradiance_factor(header, wl, values, path, parameter)
    return SolarSpectrum(wl, values * factor, path, note)


# --------------------------------------------------------------------------------------------
# Band resampling
# --------------------------------------------------------------------------------------------
def fwhm_or_spacing(wavelength_nm, fwhm_nm=None, monitor=None):
    """The band FWHM (nm), or the band spacing (:func:`spectral.estimate_fwhm`) when it is unknown
    (logged through ``monitor``)."""
    from ..io.spectral import estimate_fwhm

    if fwhm_nm is not None and np.all(np.isfinite(fwhm_nm)) and np.all(np.asarray(fwhm_nm) > 0):
        return np.asarray(fwhm_nm, dtype=np.float64)
    est = estimate_fwhm(wavelength_nm)
    if monitor is not None:
        monitor.info(f"Band FWHM unknown; using the band spacing as FWHM (median {np.median(est):.3g} nm).")
    return est


def resample_gaussian(wavelength_nm, values, centre_nm, fwhm_nm, width_sigmas=6.0):
    """Average ``values`` (sampled at ascending ``wavelength_nm``) over a Gaussian response per band.

    Each source sample is weighted by the Gaussian at its wavelength times its share of the grid
    (half the distance between its neighbours, the full spacing at the ends), and the weights of each
    band are normalised to sum to 1 over the samples within ``width_sigmas`` sigmas. On an evenly
    spaced grid this equals the discrete normalised Gaussian used by isofit/SpecTf. Returns
    float64 (bands,); NaN where no sample lies within the response."""
    wl = np.asarray(wavelength_nm, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    cell = np.gradient(wl) if wl.size > 1 else np.ones_like(wl)
    out = np.full(np.shape(centre_nm), np.nan, dtype=np.float64)
    for i, (c, f) in enumerate(zip(np.atleast_1d(centre_nm), np.atleast_1d(fwhm_nm))):
        sigma = float(f) * FWHM_TO_SIGMA
        lo, hi = np.searchsorted(wl, [c - width_sigmas * sigma, c + width_sigmas * sigma])
        if hi <= lo:
            continue
        u = (wl[lo:hi] - c) / sigma
        w = np.exp(-0.5 * u * u) * cell[lo:hi]
        total = w.sum()
        if total > 0:
            out[i] = float(np.dot(w, v[lo:hi]) / total)
    return out


def band_irradiance(spectrum, centre_nm, fwhm_nm, parameter="irradiance", monitor=None):
    """Solar irradiance (µW cm⁻² nm⁻¹ at 1 AU) per band; :class:`InputError` when the spectrum does not
    cover a band (centre more than half a FWHM outside it)."""
    centre = np.asarray(centre_nm, dtype=np.float64)
    fwhm = np.asarray(fwhm_nm, dtype=np.float64)
    ok = spectrum.covers(centre, fwhm)
    if not np.all(ok):
        bad = centre[~ok]
        raise InputError(
            f"the solar spectrum {os.path.basename(spectrum.source)} covers "
            f"{spectrum.wavelength_nm[0]:.1f}–{spectrum.wavelength_nm[-1]:.1f} nm but {bad.size} band(s) lie outside "
            f"it ({bad.min():.1f}–{bad.max():.1f} nm); use a spectrum covering the raster's wavelength range.",
            parameter)
    e = resample_gaussian(spectrum.wavelength_nm, spectrum.irradiance, centre, fwhm)
    if np.any(~np.isfinite(e)) or np.any(e <= 0):
        bad = centre[~(np.isfinite(e) & (e > 0))]
        raise InputError(f"the solar spectrum has no usable values near {bad[0]:.1f} nm.", parameter)
    edge = (centre - 1.5 * fwhm < spectrum.wavelength_nm[0]) | (centre + 1.5 * fwhm > spectrum.wavelength_nm[-1])
    if np.any(edge) and monitor is not None:
        monitor.warn(f"{int(edge.sum())} band(s) at the ends of the solar spectrum "
                     f"({spectrum.wavelength_nm[0]:.1f}–{spectrum.wavelength_nm[-1]:.1f} nm) are only partly "
                     "covered; their irradiance uses the covered part of the band response.")
    return e


# --------------------------------------------------------------------------------------------
# Solar geometry (NOAA solar-position spreadsheet equations)
# --------------------------------------------------------------------------------------------
def _julian_day(when):
    """Julian day (float array) of UTC datetimes / numpy datetime64 values."""
    if isinstance(when, datetime):
        if when.tzinfo is not None:
            when = when.astimezone(timezone.utc).replace(tzinfo=None)
        when = np.datetime64(when, "us")
    t = np.asarray(when, dtype="datetime64[us]")
    seconds = (t - np.datetime64("1970-01-01T00:00:00", "us")) / np.timedelta64(1, "s")
    return seconds / 86400.0 + 2440587.5


def _sun_terms(jd):
    jc = (np.asarray(jd, dtype=np.float64) - 2451545.0) / 36525.0
    l0 = np.mod(280.46646 + jc * (36000.76983 + jc * 0.0003032), 360.0)
    m = 357.52911 + jc * (35999.05029 - 0.0001537 * jc)
    e = 0.016708634 - jc * (0.000042037 + 0.0000001267 * jc)
    mr = np.radians(m)
    c = (np.sin(mr) * (1.914602 - jc * (0.004817 + 0.000014 * jc)) + np.sin(2 * mr) * (0.019993 - 0.000101 * jc)
         + np.sin(3 * mr) * 0.000289)
    true_long = l0 + c
    true_anom = m + c
    radius = (1.000001018 * (1 - e * e)) / (1 + e * np.cos(np.radians(true_anom)))
    omega = np.radians(125.04 - 1934.136 * jc)
    app_long = true_long - 0.00569 - 0.00478 * np.sin(omega)
    mean_obliq = 23 + (26 + (21.448 - jc * (46.815 + jc * (0.00059 - jc * 0.001813))) / 60) / 60
    obliq = np.radians(mean_obliq + 0.00256 * np.cos(omega))
    decl = np.arcsin(np.sin(obliq) * np.sin(np.radians(app_long)))
    y = np.tan(obliq / 2) ** 2
    l0r = np.radians(l0)
    eq_time = 4 * np.degrees(y * np.sin(2 * l0r) - 2 * e * np.sin(mr) + 4 * e * y * np.sin(mr) * np.cos(2 * l0r)
                             - 0.5 * y * y * np.sin(4 * l0r) - 1.25 * e * e * np.sin(2 * mr))
    return radius, decl, eq_time


def earth_sun_distance(when):
    """Earth–Sun distance (AU) at UTC ``when`` (datetime or datetime64, scalar or array): NOAA
    sun radius vector."""
    radius, _, _ = _sun_terms(_julian_day(when))
    return radius


def solar_position(when, lat_deg, lon_deg):
    """Solar (zenith, azimuth) in degrees for UTC ``when`` at latitude/longitude (degrees, east
    positive); arrays broadcast. Geometric position (no refraction); azimuth clockwise from north."""
    jd = _julian_day(when)
    _, decl, eq_time = _sun_terms(jd)
    minutes = np.mod(jd - 0.5, 1.0) * 1440.0  # minutes past 00:00 UTC
    tst = np.mod(minutes + eq_time + 4.0 * np.asarray(lon_deg, dtype=np.float64), 1440.0)
    ha = np.where(tst / 4 < 0, tst / 4 + 180, tst / 4 - 180)
    lat = np.radians(np.asarray(lat_deg, dtype=np.float64))
    cos_zen = np.sin(lat) * np.sin(decl) + np.cos(lat) * np.cos(decl) * np.cos(np.radians(ha))
    zen = np.arccos(np.clip(cos_zen, -1.0, 1.0))
    denom = np.cos(lat) * np.sin(zen)
    with np.errstate(invalid="ignore", divide="ignore"):
        arg = np.clip((np.sin(lat) * np.cos(zen) - np.sin(decl)) / denom, -1.0, 1.0)
    a = np.degrees(np.arccos(arg))
    az = np.where(ha > 0, np.mod(a + 180, 360), np.mod(540 - a, 360))
    return np.degrees(zen), az
