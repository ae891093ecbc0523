"""Per-tile input normalisation asked for by a model card (``input.normalization``), applied by the
tile loop of :mod:`.segmentation` to each model window after ``scale``/``offset``/``mean``/``std``.

``tile-minmax`` (SpectralGPT): each band of each window (and date) becomes
``(x − min) / (max − min + ε)``, with min and max taken over the window's *valid* pixels only
(nodata and NaN excluded; reflect-padded pixels of a raster smaller than a tile are copies of valid
pixels and so change nothing); invalid pixels get ``fill_value``. A window on a single tile-sized
chip is therefore scaled exactly as the upstream code scales the whole chip; on a larger scene each
window is scaled on its own and overlapping windows are blended as usual (see models/README.md).
"""
import numpy as np

MODES = ("none", "tile-minmax")


def tile_minmax(tiles, valid, eps=1e-9, fill=0.0):
    """tiles (N, T, C, H, W) float32, valid (N, H, W) bool → normalised copy (float32)."""
    v = valid[:, None, None]
    lo = np.where(v, tiles, np.inf).min(axis=(-2, -1), keepdims=True)
    hi = np.where(v, tiles, -np.inf).max(axis=(-2, -1), keepdims=True)
    empty = ~np.isfinite(lo)                      # a window without valid pixels (never run)
    lo, hi = np.where(empty, 0, lo), np.where(empty, 1, hi)
    out = (tiles - lo) / ((hi - lo) + np.float32(eps))
    return np.where(v, out, np.float32(fill)).astype(np.float32, copy=False)


def apply(mode, tiles, valid, eps=1e-9, fill=0.0):
    """Normalise ``tiles`` per window as ``mode`` says (``none``: unchanged)."""
    if mode in (None, "none"):
        return tiles
    if mode == "tile-minmax":
        return tile_minmax(tiles, valid, eps, fill)
    raise ValueError(f"unknown normalisation mode {mode!r}; expected one of {', '.join(MODES)}")
