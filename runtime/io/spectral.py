"""Spectral band metadata: centre wavelength and FWHM in nanometres, read from and written to rasters.

Sources understood (first one that gives a value for every band wins):

1. GDAL band metadata ``wavelength`` / ``wavelength_units`` / ``fwhm`` / ``bbl`` (default domain),
   as EnMAP-Box and this plugin write them;
2. GDAL band ``IMAGERY`` metadata ``CENTRAL_WAVELENGTH_UM`` / ``FWHM_UM``;
3. ENVI headers (GDAL's ``ENVI`` metadata domain): ``wavelength``, ``fwhm``, ``wavelength units``,
   ``bbl``;
4. band descriptions / ENVI band names such as ``"381.0 nanometers"``,
   ``"band 1 (418.24 Nanometers)"`` or ``"376.44 Nanometers"``.

Units are normalised to nanometres (µm and m are converted); a wavelength list without units whose
values are all below 30 is taken to be in µm.
"""
import re
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

_UNIT_FACTORS = {
    "nm": 1.0, "nanometer": 1.0, "nanometers": 1.0, "nanometre": 1.0, "nanometres": 1.0,
    "um": 1e3, "µm": 1e3, "μm": 1e3, "micrometer": 1e3, "micrometers": 1e3, "micrometre": 1e3,
    "micrometres": 1e3, "micron": 1e3, "microns": 1e3,
    "mm": 1e6, "millimeter": 1e6, "millimeters": 1e6, "m": 1e9, "meter": 1e9, "meters": 1e9,
    "wavenumber": None,
}
_NUMBER_UNIT = re.compile(
    r"(?P<value>[-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)\s*(?P<unit>nanomet(?:er|re)s?|nm|micromet(?:er|re)s?|"
    r"microns?|µm|μm|um)\b", re.IGNORECASE)


@dataclass
class SpectralInfo:
    """Band centre wavelengths and FWHM (nm), bad-band list and where they came from."""

    wavelength_nm: Optional[np.ndarray] = None
    fwhm_nm: Optional[np.ndarray] = None
    bbl: Optional[np.ndarray] = None
    source: str = "none"
    notes: list = field(default_factory=list)

    @property
    def has_wavelengths(self):
        return self.wavelength_nm is not None


def unit_factor(units, values=None):
    """Factor converting ``units`` to nm. Unknown/missing units: guess from ``values`` (< 30 → µm)."""
    if units:
        key = str(units).strip().lower().replace("_", " ")
        if key in _UNIT_FACTORS:
            factor = _UNIT_FACTORS[key]
            if factor is None:
                raise ValueError(f"wavelength units '{units}' (wavenumbers) are not supported")
            return factor
    if values is not None and len(values) and np.nanmax(values) < 30:
        return 1e3
    return 1.0


def parse_envi_list(text):
    """Parse an ENVI ``{a, b, c}`` list into strings."""
    if text is None:
        return []
    text = str(text).strip()
    if text.startswith("{"):
        text = text[1:]
    if text.endswith("}"):
        text = text[:-1]
    return [t.strip() for t in text.split(",") if t.strip() != ""]


def _floats(items):
    try:
        return np.array([float(v) for v in items], dtype=np.float64)
    except (TypeError, ValueError):
        return None


def wavelength_from_text(text):
    """Centre wavelength in nm named in a band description (``'381.0 nanometers'``), else None."""
    if not text:
        return None
    m = _NUMBER_UNIT.search(str(text))
    if not m:
        return None
    return float(m.group("value")) * unit_factor(m.group("unit"))


def read_spectral_info(ds):
    """Read band wavelengths/FWHM (nm) and bad-band list from a GDAL dataset."""
    n = ds.RasterCount
    bands = [ds.GetRasterBand(i + 1) for i in range(n)]

    envi = ds.GetMetadata("ENVI") or {}

    def envi_list(key, factor):
        values = _floats(parse_envi_list(envi.get(key))) if key in envi else None
        return values * factor if values is not None and len(values) == n else None

    # 1. per-band default-domain metadata (EnMAP-Box convention; GDAL's ENVI driver also sets it)
    wl = [b.GetMetadataItem("wavelength") for b in bands]
    if all(v not in (None, "") for v in wl):
        values = _floats(wl)
        if values is not None:
            units = bands[0].GetMetadataItem("wavelength_units") or ds.GetMetadataItem("wavelength_units") \
                or envi.get("wavelength_units")
            f = unit_factor(units, values)
            fw = _floats([b.GetMetadataItem("fwhm") for b in bands]) if all(
                b.GetMetadataItem("fwhm") not in (None, "") for b in bands) else None
            fw = fw * f if fw is not None else envi_list("fwhm", f)
            bbl = _floats([b.GetMetadataItem("bbl") for b in bands]) if all(
                b.GetMetadataItem("bbl") not in (None, "") for b in bands) else envi_list("bbl", 1.0)
            source = "ENVI header" if "wavelength" in envi else "band metadata"
            return SpectralInfo(values * f, fw, bbl, source)

    # 2. IMAGERY domain (GDAL >= 3.10 convention)
    cw = [b.GetMetadataItem("CENTRAL_WAVELENGTH_UM", "IMAGERY") for b in bands]
    if all(v not in (None, "") for v in cw):
        values = _floats(cw)
        if values is not None:
            fw = [b.GetMetadataItem("FWHM_UM", "IMAGERY") for b in bands]
            fw = _floats(fw) if all(v not in (None, "") for v in fw) else None
            return SpectralInfo(values * 1e3, fw * 1e3 if fw is not None else None, None, "IMAGERY metadata")

    # 3. ENVI header
    if "wavelength" in envi:
        values = _floats(parse_envi_list(envi["wavelength"]))
        if values is not None and len(values) == n:
            f = unit_factor(envi.get("wavelength_units"), values)
            fw = _floats(parse_envi_list(envi.get("fwhm"))) if "fwhm" in envi else None
            if fw is not None and len(fw) != n:
                fw = None
            bbl = _floats(parse_envi_list(envi.get("bbl"))) if "bbl" in envi else None
            if bbl is not None and len(bbl) != n:
                bbl = None
            return SpectralInfo(values * f, fw * f if fw is not None else None, bbl, "ENVI header")

    # 4. band names / descriptions
    names = parse_envi_list(envi.get("band_names")) if "band_names" in envi else []
    texts = names if len(names) == n else [b.GetDescription() for b in bands]
    values = [wavelength_from_text(t) for t in texts]
    if n and all(v is not None for v in values):
        return SpectralInfo(np.array(values, dtype=np.float64), None, None, "band names")
    return SpectralInfo()


def estimate_fwhm(wavelength_nm):
    """FWHM estimate (nm) from band spacing, for sensors whose metadata lacks FWHM."""
    wl = np.asarray(wavelength_nm, dtype=np.float64)
    if wl.size < 2:
        return np.full(wl.shape, 10.0)
    spacing = np.abs(np.gradient(wl))
    return np.where(spacing > 0, spacing, np.median(spacing))


def write_spectral_metadata(ds, wavelength_nm, fwhm_nm=None, bbl=None):
    """Write wavelengths/FWHM (nm) so that EnMAP-Box, GDAL and this plugin read them back.

    Writes per-band ``wavelength``, ``wavelength_units=Nanometers``, ``fwhm``, ``bbl`` in the
    default domain and ``CENTRAL_WAVELENGTH_UM`` / ``FWHM_UM`` in the IMAGERY domain."""
    for i, w in enumerate(np.asarray(wavelength_nm, dtype=np.float64)):
        band = ds.GetRasterBand(i + 1)
        band.SetMetadataItem("wavelength", f"{w:.6g}")
        band.SetMetadataItem("wavelength_units", "Nanometers")
        band.SetMetadataItem("CENTRAL_WAVELENGTH_UM", f"{w / 1e3:.8g}", "IMAGERY")
        if fwhm_nm is not None:
            band.SetMetadataItem("fwhm", f"{float(fwhm_nm[i]):.6g}")
            band.SetMetadataItem("FWHM_UM", f"{float(fwhm_nm[i]) / 1e3:.8g}", "IMAGERY")
        if bbl is not None:
            band.SetMetadataItem("bbl", str(int(bbl[i])))
        if not band.GetDescription():
            band.SetDescription(f"{w:.2f} nm")
