"""Match the bands a model expects to the bands of an input raster.

Order of methods (the first that assigns every model band wins; what was matched is reported):

1. explicit 1-based raster band numbers (``bands`` = "2,3,4,8,11,12");
2. band names: raster band descriptions such as ``B02``/``B8A`` (Sentinel-2, HLS S30),
   ``SR_B2``/``B5`` (Landsat, HLS L30) or common names (``blue``, ``swir16``, ``SWIR 1``) are
   translated to STAC ``eo:common_name`` values and compared with the model's band names and
   aliases; sensor-specific numbers are read with a sensor guessed from the file name (Landsat
   product ids ``LC08``/``LT05``…, ``HLS.L30``/``HLS.S30``; Sentinel-2 otherwise);
3. centre wavelengths (raster metadata, see :mod:`.spectral`): the nearest raster band within a
   tolerance (nm) of max(default 50, model band FWHM / 2, raster band FWHM / 2);
4. positional: a model whose bands have neither wavelengths nor known names (e.g. Deepness
   models) takes the first raster bands in order when the raster has exactly that many bands.
"""
import os
import re

import numpy as np

from ..errors import InputError, ref
from ..io.spectral import read_spectral_info

#: Default wavelength tolerance (nm) for matching by centre wavelength.
TOLERANCE_NM = 50.0

#: STAC eo common names with a typical centre wavelength (nm).
COMMON_NAMES = {
    "coastal": 443.0, "blue": 490.0, "green": 560.0, "red": 665.0, "rededge1": 705.0,
    "rededge2": 740.0, "rededge3": 783.0, "nir": 842.0, "nir08": 865.0, "nir09": 945.0,
    "cirrus": 1375.0, "swir16": 1610.0, "swir22": 2190.0, "lwir11": 10900.0, "lwir12": 12000.0,
    "pan": 600.0,
}

#: Per-sensor band names → (common name, centre wavelength nm).
SENSORS = {
    "sentinel-2": {
        "B01": ("coastal", 443.0), "B02": ("blue", 490.0), "B03": ("green", 560.0), "B04": ("red", 665.0),
        "B05": ("rededge1", 705.0), "B06": ("rededge2", 740.0), "B07": ("rededge3", 783.0),
        "B08": ("nir", 842.0), "B8A": ("nir08", 865.0), "B09": ("nir09", 945.0), "B10": ("cirrus", 1375.0),
        "B11": ("swir16", 1610.0), "B12": ("swir22", 2190.0),
    },
    "landsat-8": {  # OLI/TIRS, Landsat 8/9; HLS L30 uses the same numbers
        "B1": ("coastal", 443.0), "B2": ("blue", 482.0), "B3": ("green", 561.0), "B4": ("red", 655.0),
        "B5": ("nir08", 865.0), "B6": ("swir16", 1609.0), "B7": ("swir22", 2201.0), "B8": ("pan", 590.0),
        "B9": ("cirrus", 1373.0), "B10": ("lwir11", 10895.0), "B11": ("lwir12", 12005.0),
    },
    "landsat-5": {  # TM (Landsat 4/5) and ETM+ (Landsat 7)
        "B1": ("blue", 485.0), "B2": ("green", 560.0), "B3": ("red", 660.0), "B4": ("nir08", 835.0),
        "B5": ("swir16", 1650.0), "B7": ("swir22", 2215.0), "B6": ("lwir11", 11450.0), "B8": ("pan", 710.0),
    },
}

#: Names that mean the same common name (lower case, spaces/underscores/dashes removed).
_SYNONYMS = {
    "coastal": "coastal", "coastalaerosol": "coastal", "aerosol": "coastal", "blue": "blue",
    "green": "green", "red": "red", "rededge1": "rededge1", "rededge2": "rededge2", "rededge3": "rededge3",
    "nir": "nir", "nir08": "nir08", "nirnarrow": "nir08", "narrownir": "nir08", "nir09": "nir09",
    "watervapor": "nir09", "watervapour": "nir09", "cirrus": "cirrus", "swir16": "swir16", "swir1": "swir16",
    "swir22": "swir22", "swir2": "swir22", "lwir11": "lwir11", "lwir12": "lwir12", "pan": "pan",
    "panchromatic": "pan",
}
#: Common names a model band may accept as equivalent (broad NIR vs narrow NIR).
_EQUIVALENT = {"nir": ("nir", "nir08"), "nir08": ("nir08", "nir")}


def _key(text):
    return re.sub(r"[\s_\-]", "", str(text).strip().lower())


def guess_sensor(path):
    """Sensor table name guessed from a file name (None when unknown)."""
    name = os.path.basename(str(path)).upper()
    if re.search(r"HLS\.L30|L[CO]0[89]|LANDSAT[-_ ]?[89]", name):
        return "landsat-8"
    if re.search(r"L[TE]0[457]|LANDSAT[-_ ]?[457]", name):
        return "landsat-5"
    if re.search(r"HLS\.S30|S2[ABC]_|MSIL[12]|SENTINEL[-_ ]?2", name):
        return "sentinel-2"
    return None


def common_name(description, sensor=None):
    """STAC common name for a raster band description (``'B02'``, ``'SR_B5'``, ``'SWIR 1'``…)."""
    if not description:
        return None
    k = _key(description)
    if k in _SYNONYMS:
        return _SYNONYMS[k]
    m = re.fullmatch(r"(?:sr|toa)?b(?:and)?0*(\d{1,2}a?)", k)
    if not m:
        return None
    num = m.group(1).upper()
    table = SENSORS[sensor or "sentinel-2"]
    if sensor in (None, "sentinel-2"):
        name = f"B{int(num[:-1]):02d}A" if num.endswith("A") else f"B{int(num):02d}"
        name = "B8A" if name == "B08A" else name
    else:
        name = f"B{int(num)}" if not num.endswith("A") else None
    return table.get(name, (None,))[0] if name else None


def _model_band_names(band, equivalents=True):
    """Common names (and lower-case keys) a model band answers to; ``equivalents`` adds broad/narrow
    NIR equivalence (used only when no exact name matches)."""
    names = set()
    for text in [band["name"]] + list(band.get("aliases", [])):
        k = _key(text)
        names.add(_SYNONYMS.get(k, k))
        c = common_name(text)  # sensor-style names such as B8A, B11
        if c:
            names.add(c)
    if not equivalents:
        return names
    out = set()
    for n in names:
        out.update(_EQUIVALENT.get(n, (n,)))
    return out


def parse_band_list(text, parameter="bands"):
    """Parse ``"2,3,4"`` (or spaces/semicolons) into 1-based ints; ``None`` for empty text."""
    if text is None or str(text).strip() == "":
        return None
    parts = [p for p in re.split(r"[,\s;]+", str(text).strip()) if p]
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise InputError(f"'{text}' is not a list of band numbers; expected e.g. '2,3,4,8,11,12'.", parameter) from None
    return values


def match_bands(ds, model_bands, explicit=None, path="", parameter="input", bands_parameter="bands",
                tolerance_nm=TOLERANCE_NM):
    """1-based raster band numbers feeding each model band, and a description of how they matched.

    ``model_bands`` are the card's ``input.bands`` (dicts with ``name`` and optional
    ``wavelength_nm``/``fwhm_nm``/``aliases``). Raises InputError when the raster cannot provide them."""
    n_model, n_raster = len(model_bands), ds.RasterCount
    wanted = ", ".join(b["name"] + (f" ({b['wavelength_nm']:.0f} nm)" if b.get("wavelength_nm") else "")
                       for b in model_bands)
    if explicit is not None:
        if len(explicit) != n_model:
            raise InputError(f"{len(explicit)} band numbers given but the model needs {n_model} ({wanted}).",
                             bands_parameter)
        bad = [b for b in explicit if not 1 <= b <= n_raster]
        if bad:
            raise InputError(f"band number(s) {bad} out of range; the raster has bands 1-{n_raster}.", bands_parameter)
        return list(explicit), "explicit " + ", ".join(f"{m['name']}=band {b}" for m, b in zip(model_bands, explicit))
    if n_raster < n_model:
        raise InputError(f"the model needs {n_model} bands ({wanted}) but {os.path.basename(str(path)) or 'the raster'} "
                         f"has {n_raster}; give a raster with these bands (or set {ref(bands_parameter)}).", parameter)

    # 2. names
    sensor = guess_sensor(path)
    descs = [ds.GetRasterBand(i + 1).GetDescription() for i in range(n_raster)]
    commons = [common_name(d, sensor) for d in descs]
    picked = []
    for mb in model_bands:
        hit = []
        for names in (_model_band_names(mb, False), _model_band_names(mb, True)):
            hit = [i for i, c in enumerate(commons) if c in names and i + 1 not in picked]
            hit = hit or [i for i, d in enumerate(descs) if d and _key(d) in names and i + 1 not in picked]
            if hit:
                break
        if not hit:
            break
        picked.append(hit[0] + 1)
    if len(picked) == n_model:
        how = "by band name " + ", ".join(f"{m['name']}='{descs[b - 1]}' (band {b})" for m, b in zip(model_bands, picked))
        return picked, how

    # 3. wavelengths
    info = read_spectral_info(ds)
    if info.has_wavelengths and all(b.get("wavelength_nm") for b in model_bands):
        wl = np.asarray(info.wavelength_nm, dtype=np.float64)
        fw = np.asarray(info.fwhm_nm, dtype=np.float64) if info.fwhm_nm is not None else np.zeros_like(wl)
        picked, parts = [], []
        for mb in model_bands:
            d = np.abs(wl - mb["wavelength_nm"])
            tol = np.maximum(max(tolerance_nm, mb.get("fwhm_nm", 0.0) / 2.0), fw / 2.0)
            ok = np.where(d <= tol)[0]
            ok = [i for i in ok[np.argsort(d[ok])] if i + 1 not in picked]
            if not ok:
                raise InputError(
                    f"no band of {os.path.basename(str(path)) or 'the raster'} is within {tolerance_nm:.0f} nm of the "
                    f"model band {mb['name']} ({mb['wavelength_nm']:.0f} nm); raster bands are at "
                    f"{', '.join(f'{w:.0f}' for w in wl)} nm. Set {ref(bands_parameter)} to choose bands explicitly.",
                    bands_parameter)
            picked.append(int(ok[0]) + 1)
            parts.append(f"{mb['name']} {mb['wavelength_nm']:.0f} nm=band {ok[0] + 1} ({wl[ok[0]]:.0f} nm)")
        return picked, "by wavelength " + ", ".join(parts)

    # 4. positional
    if not any(b.get("wavelength_nm") for b in model_bands) and not any(c in _SYNONYMS.values() for mb in model_bands
                                                                          for c in _model_band_names(mb)):
        if n_raster == n_model:
            return list(range(1, n_model + 1)), "in raster order (the model names no bands)"
    raise InputError(
        f"cannot tell which bands of {os.path.basename(str(path)) or 'the raster'} the model needs ({wanted}): the "
        f"raster has no matching band names or wavelength metadata. Set {ref(bands_parameter)} to the raster band numbers in "
        "model order, e.g. '" + ",".join(str(i + 1) for i in range(n_model)) + "'.", bands_parameter)
