"""Tile geometry for patch-based inference: where the model windows go and how their predictions
are blended (pure numpy, no I/O).

Along each axis of length ``L`` a model with a fixed tile edge ``T`` is run on windows starting at
``0, T - O, 2 (T - O), …`` (``O`` = overlap in pixels) and a last window flush with the raster edge
(start ``L - T``), so no window hangs over the edge. When ``L <= T`` a single window at 0 is used
and the input is reflect-padded to ``T`` (:func:`source_index`).

Each window's class probabilities are multiplied by a weight and accumulated; the result is the
weighted mean (sum of weight × probability / sum of weight). The weight of a window along an axis
is 1 in its interior and, on every side that is *not* the raster edge,

* 0 over the outer ``crop`` pixels (border crop: predictions next to a tile edge lack context), then
* a raised-cosine (Hann-like, ``sin²``) ramp over the next ``O - 2·crop`` pixels, sampled at pixel
  centres so it is strictly positive.

Consecutive windows overlap by at least ``O > 2·crop`` pixels, so every pixel of the raster has a
positive total weight, and sides on the raster edge are not tapered (edge pixels are not
down-weighted). The 2-D weight is the outer product of the two axis weights.

A second scheme, ``padded``, reproduces ukis-csmask's tiling exactly (see :class:`TilePlan`) so
its models give the same result as the package itself. A third, ``terratorch``, reproduces
``terratorch.tasks.tiled_inference.tiled_inference`` (see :func:`terratorch_starts` and
:func:`terratorch_ramp`) so models fine-tuned with TerraTorch give TerraTorch's own maps; it blends
the model's raw outputs (logits), as TerraTorch does, not probabilities (:attr:`TilePlan.blend`).
"""
from dataclasses import dataclass

import numpy as np


def overlap_pixels(value, tile):
    """Overlap in pixels from ``value``: a fraction of the tile edge when < 1, else pixels."""
    value = float(value)
    if not np.isfinite(value) or value < 0:
        raise ValueError("overlap must be a finite number >= 0")
    px = int(round(value * tile)) if value < 1 else int(round(value))
    return px


def axis_starts(length, tile, overlap):
    """Window starts (pixels) along an axis of ``length`` for windows of ``tile`` pixels overlapping
    by at least ``overlap`` pixels; the last window ends at ``length``."""
    if tile <= 0 or length <= 0:
        raise ValueError("tile and length must be positive")
    if length <= tile:
        return [0]
    step = tile - overlap
    if step <= 0:
        raise ValueError(f"overlap ({overlap} px) must be smaller than the tile ({tile} px)")
    starts = list(range(0, length - tile, step))
    starts.append(length - tile)
    return starts


def ramp(overlap, crop):
    """Left-side taper of an axis weight: ``crop`` zeros then a sin² ramp (``overlap - 2·crop``
    samples at pixel centres, strictly inside (0, 1))."""
    n = overlap - 2 * crop
    if n < 1 and overlap > 0:
        raise ValueError(f"overlap ({overlap} px) must exceed twice the border crop ({crop} px)")
    j = np.arange(max(n, 0), dtype=np.float64)
    return np.concatenate([np.zeros(crop), np.sin(0.5 * np.pi * (j + 0.5) / max(n, 1)) ** 2])


def axis_weight(start, tile, length, overlap, crop):
    """Weight (``tile`` values) of the window at ``start`` along an axis of ``length`` pixels.
    Sides on the raster edge are not tapered."""
    w = np.ones(tile, dtype=np.float64)
    if overlap <= 0:
        return w
    r = ramp(overlap, crop)
    k = min(len(r), tile)
    if start > 0:
        w[:k] = np.minimum(w[:k], r[:k])
    if start + tile < length:
        w[tile - k:] = np.minimum(w[tile - k:], r[:k][::-1])
    return w


def tukey(m, alpha):
    """Tukey (tapered cosine) window of ``m`` samples, as ``scipy.signal.windows.tukey(m, alpha)``."""
    if m <= 1:
        return np.ones(m)
    if alpha <= 0:
        return np.ones(m)
    n = np.arange(m, dtype=np.float64)
    if alpha >= 1:
        return 0.5 - 0.5 * np.cos(2.0 * np.pi * n / (m - 1))
    width = int(np.floor(alpha * (m - 1) / 2.0))
    w = np.ones(m)
    if width == 0:  # only the end samples taper (to 0); avoids overflow for tiny alpha
        w[0] = w[-1] = 0.0
        return w
    n1, n3 = n[: width + 1], n[m - width - 1:]
    w[: width + 1] = 0.5 * (1 + np.cos(np.pi * (-1 + 2.0 * n1 / alpha / (m - 1))))
    w[m - width - 1:] = 0.5 * (1 + np.cos(np.pi * (-2.0 / alpha + 1 + 2.0 * n3 / alpha / (m - 1))))
    return w


def source_index(virtual, length, mode):
    """Map virtual pixel indices (may lie outside ``[0, length)``) to raster indices:
    ``reflect`` (edge pixel not repeated, numpy ``reflect``) or ``symmetric`` (edge repeated, numpy
    ``symmetric``), repeated periodically for any distance."""
    v = np.asarray(virtual, dtype=np.int64)
    if length == 1:
        return np.zeros_like(v)
    if mode == "symmetric":
        m = np.mod(v, 2 * length)
        return np.where(m < length, m, 2 * length - 1 - m)
    m = np.mod(v, 2 * (length - 1))
    return np.where(m < length, m, 2 * (length - 1) - m)


SCHEMES = ("edge", "padded", "terratorch")
#: Smallest window weight in the ``padded`` scheme (Tukey windows are 0 at the tile ends).
MIN_WEIGHT = 1e-6


@dataclass(frozen=True)
class TilePlan:
    """Windows covering a ``height`` × ``width`` raster with ``tile_h`` × ``tile_w`` tiles.

    ``rows``/``cols`` are the window starts in raster pixels. Scheme ``edge`` (default): windows
    inside the raster, the last flush with its edge, sin² ramps with border crop, no taper on
    raster edges, reflect padding only for rasters smaller than a tile. Scheme ``padded``
    (ukis-csmask's ``tile_array``/``untile_array``): the grid starts ``pad`` pixels before the raster
    (``pad`` = overlap), steps ``tile - overlap``, pads by symmetric reflection and weights every
    window with a Tukey window of alpha ``2 · overlap / tile`` on all sides."""

    height: int
    width: int
    tile_h: int
    tile_w: int
    overlap: int
    crop: int
    rows: tuple
    cols: tuple
    scheme: str = "edge"
    alpha: float = 0.0

    @property
    def count(self):
        return len(self.rows) * len(self.cols)

    @property
    def pad_mode(self):
        return "symmetric" if self.scheme == "padded" else "reflect"

    @property
    def blend(self):
        """What is averaged over overlapping windows: ``logits`` (raw model output, TerraTorch) or
        ``probabilities``."""
        return "logits" if self.scheme == "terratorch" else "probabilities"

    @property
    def single(self):
        """True when one window covers the raster and is run as is (TerraTorch skips tiling then)."""
        return self.scheme == "terratorch" and self.height <= self.tile_h and self.width <= self.tile_w

    def _axis(self, start, tile, length):
        if self.scheme == "padded":  # floor: ukis' Tukey window is 0 at tile ends, never let a pixel get 0
            return np.maximum(tukey(tile, self.alpha), MIN_WEIGHT)
        if self.scheme == "terratorch":
            return terratorch_axis_weight(tile, tile - self.overlap, self.crop, self.single)
        return axis_weight(start, tile, length, self.overlap, self.crop)

    def inside(self, start, tile, length):
        """(first, stop) indices within a window whose pixels lie inside the raster."""
        return max(0, -start), min(tile, length - start)

    def weight(self, row, col):
        """2-D blending weight (tile_h, tile_w) of the window at (row, col), float32."""
        if self.scheme == "terratorch" and not self.single:  # TerraTorch adds 1e-6 to the 2-D mask
            w = np.outer(self._axis(row, self.tile_h, self.height),
                         self._axis(col, self.tile_w, self.width)).astype(np.float32)
            d = self.crop
            w[d:self.tile_h - d, d:self.tile_w - d] += np.float32(1e-6)
            return w
        return np.outer(self._axis(row, self.tile_h, self.height),
                        self._axis(col, self.tile_w, self.width)).astype(np.float32)

    def row_index(self, row):
        """Raster row feeding each of the ``tile_h`` rows of the window starting at ``row``."""
        return source_index(np.arange(row, row + self.tile_h), self.height, self.pad_mode)

    def col_index(self, col):
        return source_index(np.arange(col, col + self.tile_w), self.width, self.pad_mode)

    def final_rows(self, index):
        """Raster rows [start, stop) that are complete once tile row ``index`` has been added."""
        start = max(0, self.rows[index])
        stop = min(self.height, max(0, self.rows[index + 1])) if index + 1 < len(self.rows) else self.height
        return start, stop


def padded_starts(length, tile, overlap, step):
    """Window starts of the ``padded`` scheme: ``-overlap + k · step`` while the window still
    touches the raster."""
    starts, s = [], -overlap
    while s < length:
        if s + tile > 0:
            starts.append(s)
        s += step
    return starts


def terratorch_starts(length, crop, stride, delta, single=False):
    """Window starts (raster pixels) of TerraTorch's ``tiled_inference`` along an axis.

    TerraTorch reflect-pads the image by ``delta``, runs windows of ``crop`` at
    ``range(0, L + 2·delta − crop − 1, stride)`` plus one flush with the padded edge, and keeps the
    central ``crop − 2·delta`` pixels of each; in raster coordinates a window starts at
    ``s − delta``. ``single`` (the whole raster fits one window) gives one window at 0: TerraTorch
    then runs the model on the image as is."""
    if single:
        return [0]
    lp = length + 2 * delta
    if lp < crop:  # TerraTorch cannot tile this; one window centred on the padded axis
        return [-delta]
    starts = list(range(0, lp - crop - 1, stride)) + [lp - crop]
    return [s - delta for s in starts]


def terratorch_ramp(crop, stride, delta):
    """TerraTorch's ``get_blend_mask`` along one axis: ``crop − 2·delta`` values, a cosine ramp
    ``cos(π (i + 1) / (o + 1)) / 2 + 0.5`` (reversed on the leading side) over
    ``o = min(crop // 2, crop − stride) − delta`` pixels at both ends, 1 inside (float32)."""
    n = crop - 2 * delta
    o = min(crop // 2, crop - stride) - delta
    y = np.ones(n, dtype=np.float32)
    if o:
        pos = np.arange(n, dtype=np.float32)[:o]
        r = (np.cos(np.float32(np.pi) * (pos + 1) / (o + 1)) / 2 + 0.5).astype(np.float32)
        y[:o] = r[::-1]
        y[-o:] = r
    return y


def terratorch_axis_weight(tile, stride, delta, single=False):
    """Axis weight of a ``terratorch`` window (``tile`` values): 0 over the ``delta`` border that
    TerraTorch crops away, :func:`terratorch_ramp` inside; all ones for a lone window."""
    if single:
        return np.ones(tile, dtype=np.float32)
    w = np.zeros(tile, dtype=np.float32)
    w[delta:tile - delta] = terratorch_ramp(tile, stride, delta)
    return w


def make_plan(height, width, tile, overlap, crop=0, scheme="edge"):
    """:class:`TilePlan` for a raster; ``tile`` is an int or (height, width); ``overlap`` in pixels
    or as a fraction (< 1) of the tile edge; ``crop`` in pixels (``edge`` scheme only)."""
    tile_h, tile_w = (tile, tile) if np.isscalar(tile) else (int(tile[0]), int(tile[1]))
    if scheme not in SCHEMES:
        raise ValueError(f"unknown tiling scheme '{scheme}'; expected one of {', '.join(SCHEMES)}")
    ov = overlap_pixels(overlap, min(tile_h, tile_w))
    crop = int(crop)
    if crop < 0:
        raise ValueError("crop must be >= 0")
    if ov >= min(tile_h, tile_w):
        raise ValueError(f"overlap ({ov} px) must be smaller than the tile ({min(tile_h, tile_w)} px)")
    if scheme == "terratorch":
        # overlap = crop − stride, crop = TerraTorch's delta (reduced as TerraTorch does when too big)
        if tile_h != tile_w:
            raise ValueError("the terratorch tiling scheme needs square tiles")
        stride = tile_h - ov
        if stride < 1:
            raise ValueError(f"overlap ({ov} px) must be smaller than the tile ({tile_h} px)")
        crop = min(crop, (tile_h - stride) // 2)
        single = height <= tile_h and width <= tile_w
        rows = tuple(terratorch_starts(height, tile_h, stride, crop, single))
        cols = tuple(terratorch_starts(width, tile_w, stride, crop, single))
        return TilePlan(int(height), int(width), tile_h, tile_w, ov, crop, rows, cols, scheme)
    if scheme == "padded":
        if tile_h != tile_w:
            raise ValueError("the padded tiling scheme needs square tiles")
        frac = float(overlap) if float(overlap) < 1 else ov / tile_h
        if frac > 0.5:
            raise ValueError(f"overlap ({ov} px) must be at most half the tile for the padded scheme")
        step = int(tile_h - tile_h * frac)  # as ukis_csmask.utils.tile_array
        pad = int(tile_h * frac)
        rows = tuple(padded_starts(height, tile_h, pad, step))
        cols = tuple(padded_starts(width, tile_w, pad, step))
        return TilePlan(int(height), int(width), tile_h, tile_w, pad, 0, rows, cols, scheme, 2.0 * frac)
    if ov > 0 and ov <= 2 * crop:
        raise ValueError(f"overlap ({ov} px) must exceed twice the border crop ({crop} px)")
    rows = tuple(axis_starts(height, tile_h, ov))
    cols = tuple(axis_starts(width, tile_w, ov))
    return TilePlan(int(height), int(width), tile_h, tile_w, ov, crop, rows, cols, scheme)


def blend(plan, predict):
    """Reference (in-memory) blending: ``predict(row, col)`` returns the (K, tile_h, tile_w)
    probabilities of a window; returns the weighted mean (K, height, width) and the weight sum.
    The streaming implementation in :mod:`.segmentation` computes the same thing strip by strip."""
    acc = wsum = None
    for r in plan.rows:
        r0, r1 = plan.inside(r, plan.tile_h, plan.height)
        for c in plan.cols:
            c0, c1 = plan.inside(c, plan.tile_w, plan.width)
            p = predict(r, c)
            if acc is None:
                acc = np.zeros((p.shape[0], plan.height, plan.width), np.float64)
                wsum = np.zeros((plan.height, plan.width), np.float64)
            w = plan.weight(r, c)[r0:r1, c0:c1]
            acc[:, r + r0:r + r1, c + c0:c + c1] += p[:, r0:r1, c0:c1] * w
            wsum[r + r0:r + r1, c + c0:c + c1] += w
    return acc / np.where(wsum > 0, wsum, 1.0), wsum
