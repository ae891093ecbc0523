"""Segmentation training chips: GeoTIFF image/mask pairs, normalisation and random tile sampling.

Layouts (:data:`LAYOUTS`):

- ``sen1floods11``: ``*_S2Hand.tif`` Sentinel-2 L1C, 13 bands B01…B12 incl. B8A, stored ×10000
  (int16, 0 = nodata); the model bands are the 0-based indices 1, 2, 3, 8, 11, 12 = B02, B03, B04,
  B8A, B11, B12, scaled ×0.0001; labels ``*_LabelHand.tif``: −1 nodata, 0 not water, 1 water.
- ``hls-burn-scars``: ``*_merged.tif`` HLS, 6 bands B02–B07 (Blue, Green, Red, Narrow NIR, SWIR1,
  SWIR2) as reflectance (scale 1); labels ``*.mask.tif``: −1 nodata, 0 not burned, 1 burn scar.
- hyperspectral (:func:`load_hyperspectral_chip`): any band count with wavelength metadata (e.g.
  EnMAP L2A, GDAL scale 0.0001); bands that are nodata everywhere or flagged bad (``bbl`` = 0) are
  dropped; labels are class ids ≥ 0.

Images become float32 reflectance (bands, rows, cols) with NaN at nodata; labels int64 with
:data:`IGNORE` where unlabelled or where the image is nodata.
"""
import glob
import os
from dataclasses import dataclass, field

import numpy as np

from ..runtime.errors import InputError
from ..runtime.io.raster_io import open_raster, read_window, scales_offsets_of, Window
from ..runtime.io.spectral import read_spectral_info

#: Label value ignored by the loss (unlabelled or nodata pixels).
IGNORE = -1


@dataclass(frozen=True)
class ChipLayout:
    """How a dataset stores its chips (``band_indices`` are 0-based into the stored stack)."""

    name: str
    band_indices: tuple
    band_names: tuple
    wavelengths_nm: tuple
    scale: float
    class_names: tuple
    class_colors: tuple
    image_suffix: str
    mask_suffix: str
    label_nodata: int = -1
    aliases: tuple = ()
    description: str = ""


LAYOUTS = {
    "sen1floods11": ChipLayout(
        name="sen1floods11",
        band_indices=(1, 2, 3, 8, 11, 12),
        band_names=("B02", "B03", "B04", "B8A", "B11", "B12"),
        wavelengths_nm=(492.4, 559.8, 664.6, 864.7, 1613.7, 2202.4),
        scale=1e-4,
        class_names=("not water", "water"),
        class_colors=("#00000000", "#1f78b4ff"),
        image_suffix="_S2Hand.tif", mask_suffix="_LabelHand.tif",
        aliases=(("Blue", "B2"), ("Green", "B3"), ("Red", "B4"), ("Narrow NIR", "NIR narrow"),
                 ("SWIR 1", "SWIR1", "B11"), ("SWIR 2", "SWIR2")),
        description="Sen1Floods11 hand-labelled Sentinel-2 L1C chips (Bonafilia et al. 2020)"),
    "hls-burn-scars": ChipLayout(
        name="hls-burn-scars",
        band_indices=(0, 1, 2, 3, 4, 5),
        band_names=("Blue", "Green", "Red", "Narrow NIR", "SWIR 1", "SWIR 2"),
        wavelengths_nm=(482.0, 561.5, 654.5, 865.0, 1608.5, 2200.5),
        scale=1.0,
        class_names=("not burned", "burn scar"),
        class_colors=("#00000000", "#e31a1cff"),
        image_suffix="_merged.tif", mask_suffix=".mask.tif",
        aliases=(("B02",), ("B03",), ("B04",), ("B05", "B8A"), ("B06", "B11"), ("B07", "B12")),
        description="HLS burn scar chips (NASA IMPACT hls_burn_scars)"),
}


@dataclass
class Chip:
    """One image (bands, rows, cols) float32 reflectance (NaN = nodata) and its labels (rows, cols)."""

    image: np.ndarray
    label: np.ndarray
    path: str = ""
    band_names: tuple = ()
    wavelengths_nm: tuple = ()
    fwhm_nm: tuple = ()
    source_bands: tuple = ()          # 1-based band numbers in the source file
    extra: dict = field(default_factory=dict)


def layout(name):
    """The :class:`ChipLayout` called ``name`` (InputError listing the known ones otherwise)."""
    if name not in LAYOUTS:
        raise InputError(f"unknown chip layout '{name}'; expected one of {', '.join(LAYOUTS)}.", "LAYOUT")
    return LAYOUTS[name]


def mask_path_for(image_path, lay):
    """The label file paired with ``image_path`` in layout ``lay``."""
    image_path = str(image_path)
    if not image_path.endswith(lay.image_suffix):
        raise InputError(f"{image_path} does not end with '{lay.image_suffix}' ({lay.name} layout).", "IMAGES")
    return image_path[: -len(lay.image_suffix)] + lay.mask_suffix


def find_pairs(sources, lay):
    """(image, mask) pairs from files and/or folders (searched recursively for ``*<image_suffix>``)."""
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    images = []
    for src in sources:
        src = str(src)
        if os.path.isdir(src):
            images += sorted(glob.glob(os.path.join(src, "**", "*" + lay.image_suffix), recursive=True))
        elif os.path.isfile(src):
            images.append(src)
        else:
            raise InputError(f"{src} is neither a file nor a folder.", "IMAGES")
    pairs = []
    for img in images:
        mask = mask_path_for(img, lay)
        if not os.path.isfile(mask):
            raise InputError(f"no label file {mask} for {img}.", "IMAGES")
        pairs.append((img, mask))
    if not pairs:
        raise InputError(f"no '*{lay.image_suffix}' chips found in {', '.join(map(str, sources))}.", "IMAGES")
    return pairs


def _read_all(ds, bands):
    win = Window(0, 0, ds.RasterXSize, ds.RasterYSize)
    raw = read_window(ds, win, bands, dtype=np.float32)
    nodata = [ds.GetRasterBand(b).GetNoDataValue() for b in bands]
    return raw, nodata


def _labels(mask_path, shape, label_nodata):
    ds = open_raster(mask_path, "MASKS")
    if (ds.RasterYSize, ds.RasterXSize) != shape:
        raise InputError(f"{mask_path} is {ds.RasterXSize}×{ds.RasterYSize} pixels; expected the image "
                         f"size {shape[1]}×{shape[0]}.", "MASKS")
    lab = ds.GetRasterBand(1).ReadAsArray().astype(np.int64)
    nd = ds.GetRasterBand(1).GetNoDataValue()
    bad = lab == label_nodata
    if nd is not None:
        bad |= lab == int(nd)
    lab[bad] = IGNORE
    return lab


def load_chip(image_path, mask_path, lay):
    """Load one chip of layout ``lay``: model bands ×scale (NaN where the image is nodata)."""
    ds = open_raster(image_path, "IMAGES")
    need = max(lay.band_indices) + 1
    if ds.RasterCount < need:
        raise InputError(f"{image_path} has {ds.RasterCount} bands; the {lay.name} layout needs at least "
                         f"{need} (bands {', '.join(lay.band_names)}).", "IMAGES")
    bands = [i + 1 for i in lay.band_indices]
    raw, nodata = _read_all(ds, bands)
    invalid = ~np.all(np.isfinite(raw), axis=0)
    for i, nd in enumerate(nodata):
        if nd is not None:
            invalid |= raw[i] == nd
    gdal_scale, gdal_offset = scales_offsets_of(ds, bands)
    img = raw * (gdal_scale * lay.scale).astype(np.float32)[:, None, None] + gdal_offset.astype(np.float32)[:, None, None]
    img[:, invalid] = np.nan
    lab = _labels(mask_path, img.shape[1:], lay.label_nodata)
    lab[invalid] = IGNORE
    return Chip(img.astype(np.float32), lab, str(image_path), lay.band_names, lay.wavelengths_nm,
                source_bands=tuple(bands))


def load_hyperspectral_chip(image_path, label_path):
    """Load a hyperspectral tile with wavelength metadata (GDAL scale applied) and integer labels.

    Bands flagged bad (``bbl`` 0) or nodata in every pixel are dropped; the kept bands'
    wavelengths/FWHM (nm) and 1-based source numbers are recorded on the chip."""
    ds = open_raster(image_path, "IMAGES")
    info = read_spectral_info(ds)
    if not info.has_wavelengths:
        raise InputError(f"{image_path} has no band wavelengths (metadata 'wavelength' or ENVI header); "
                         "the spectral adapter's model card needs them.", "IMAGES")
    bands = list(range(1, ds.RasterCount + 1))
    raw, nodata = _read_all(ds, bands)
    bad_elem = ~np.isfinite(raw)
    for i, nd in enumerate(nodata):
        if nd is not None:
            bad_elem[i] |= raw[i] == nd
    keep = ~bad_elem.reshape(len(bands), -1).all(axis=1)
    if info.bbl is not None:
        keep &= np.asarray(info.bbl) != 0
    scales, offsets = scales_offsets_of(ds, bands)
    img = raw * scales.astype(np.float32)[:, None, None] + offsets.astype(np.float32)[:, None, None]
    img[bad_elem] = np.nan
    img = img[keep]
    invalid = ~np.all(np.isfinite(img), axis=0)
    lab = _labels(label_path, img.shape[1:], -1)
    lab[invalid] = IGNORE
    wl = tuple(float(w) for w in np.asarray(info.wavelength_nm)[keep])
    fw = tuple(float(w) for w in np.asarray(info.fwhm_nm)[keep]) if info.fwhm_nm is not None else ()
    names = tuple(ds.GetRasterBand(int(b)).GetDescription() or f"band {b}" for b in np.array(bands)[keep])
    return Chip(img.astype(np.float32), lab, str(image_path), names, wl, fw,
                tuple(int(b) for b in np.array(bands)[keep]), {"dropped_bands": int((~keep).sum())})


def band_stats(chips):
    """Per-band mean and std (float64) over all valid pixels of ``chips`` (std ≥ 1e-6)."""
    stack = np.concatenate([c.image.reshape(c.image.shape[0], -1) for c in chips], axis=1)
    mean = np.nanmean(stack, axis=1)
    std = np.nanstd(stack, axis=1)
    return mean, np.maximum(std, 1e-6)


def normalise(image, mean, std):
    """(x − mean) / std per band; NaN (nodata) becomes 0 (= the band mean)."""
    out = (image - np.asarray(mean, np.float32)[:, None, None]) / np.asarray(std, np.float32)[:, None, None]
    return np.nan_to_num(out, nan=0.0).astype(np.float32)


def random_tiles(images, labels, tile, batch, rng, augment=True):
    """A batch of ``batch`` random ``tile`` × ``tile`` crops (with random flips/90° rotations when
    ``augment``) from normalised ``images`` (list of (C, H, W)) and ``labels`` (list of (H, W)).
    Returns (x (batch, C, tile, tile) float32, y (batch, tile, tile) int64)."""
    xs, ys = [], []
    for _ in range(batch):
        k = int(rng.integers(len(images)))
        img, lab = images[k], labels[k]
        _, h, w = img.shape
        if h < tile or w < tile:
            raise InputError(f"chip {h}×{w} pixels is smaller than the tile size {tile}.", "TILE_SIZE")
        r = int(rng.integers(h - tile + 1))
        c = int(rng.integers(w - tile + 1))
        x = img[:, r:r + tile, c:c + tile]
        y = lab[r:r + tile, c:c + tile]
        if augment:
            rot = int(rng.integers(4))
            x, y = np.rot90(x, rot, axes=(1, 2)), np.rot90(y, rot)
            if rng.random() < 0.5:
                x, y = x[:, :, ::-1], y[:, ::-1]
        xs.append(np.ascontiguousarray(x))
        ys.append(np.ascontiguousarray(y))
    return np.stack(xs), np.stack(ys)
