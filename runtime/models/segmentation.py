"""Tiled semantic segmentation of rasters with an ONNX model described by a model card.

:func:`run_segmentation` streams the raster(s) one row of tiles at a time: it reads the window rows
of every input date, normalises them as the card says, runs the model on fixed-size tiles (batches
of ``batch_size``), blends the class probabilities of overlapping tiles with the weights of
:mod:`.tiling`, and writes the rows that no later tile can touch. Only one accumulation strip of
``tile height`` rows × raster width × classes is kept, so memory does not grow with the raster
height.

Preprocessing per model band ``c``: ``x = (v · scale_c + offset_c − mean_c) / std_c`` where ``v``
is the stored value after GDAL scale/offset. Pixels that are nodata (or NaN) in any band of any
date are filled with ``fill_value`` for the model and written as nodata (255 in the class map).
Tiles that contain only nodata are not run.

Outputs: class map (uint8, class values from the card, 255 = nodata, colour table + ``.qml``),
optional per-class probabilities (float32, one band per class, −9999 nodata) and confidence (float32
max probability, −9999 nodata).
"""
import os
import time
from dataclasses import dataclass, field

import numpy as np

from ..physics import band_matching
from . import registry, tile_norm, tiling
from ..pipeline import styles
from ..errors import InputError, ModelError
from .base import OnnxModel
from ..monitor import ensure
from ..io.raster_io import Grid, Window, open_raster, read_block

COORD_KEYS = ("temporal_coords", "location_coords")
CLASS_NODATA = 255
FLOAT_NODATA = -9999.0
TASK = "segmentation"


@dataclass
class SegmentationResult:
    """Summary of a run: output paths, per-class pixel counts, tiles run/skipped, provider."""

    outputs: dict
    model_id: str
    class_counts: dict = field(default_factory=dict)
    valid_pixels: int = 0
    tiles_run: int = 0
    tiles_skipped: int = 0
    provider: str = ""
    band_matches: list = field(default_factory=list)
    seconds: float = 0.0


def _same_grid(a, b):
    if not a.same_size(b):
        return False
    if (a.geotransform is None) != (b.geotransform is None):
        return False
    if a.geotransform is not None and not np.allclose(a.geotransform, b.geotransform, rtol=0, atol=1e-9 * max(
            1.0, max(abs(v) for v in a.geotransform))):
        return False
    return True


def softmax(x, axis=1):
    """Numerically stable softmax along ``axis`` (float32)."""
    x = x.astype(np.float32, copy=False)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def to_probabilities(raw, kind, n_classes):
    """Model output (N, K, H, W) → class probabilities (N, n_classes, H, W) per the card's kind."""
    if kind == "logits":
        return softmax(raw, axis=1)
    if kind == "sigmoid":
        p = 1.0 / (1.0 + np.exp(-raw.astype(np.float32)))
        if raw.shape[1] == 1 and n_classes == 2:
            return np.concatenate([1.0 - p, p], axis=1)
        return p
    return raw.astype(np.float32, copy=False)


def assemble(tiles, layout, stacking):
    """Stack tiles (N, T, C, H, W) into the model's input layout."""
    n, t, c, h, w = tiles.shape
    if layout == "NCTHW":
        return np.ascontiguousarray(tiles.transpose(0, 2, 1, 3, 4))
    if layout == "NTCHW":
        return np.ascontiguousarray(tiles)
    if stacking == "band-major":  # channel index = c * T + t
        return np.ascontiguousarray(tiles.transpose(0, 2, 1, 3, 4)).reshape(n, c * t, h, w)
    return tiles.reshape(n, t * c, h, w)  # date-major: channel index = t * C + c


class ModelRunner(OnnxModel):
    """A segmentation model (on the shared :class:`~.model.OnnxModel`) checked against its card;
    :meth:`probabilities` runs a batch of tiles."""

    TASKS = (TASK,)

    def __init__(self, entry, device="auto", threads=None, config=None):
        super().__init__(entry.path, entry.card, entry.id, device, threads, "model", config)
        self.entry = entry
        card = entry.card
        self.inp, self.out = card["input"], card["output"]
        inputs = list(self.inputs.values())
        outputs = list(self.outputs.values())
        self.input_name = self.inp["tensor"] or inputs[0].name
        self.output_name = self.out["tensor"] or outputs[0].name
        by_name = {i.name: i for i in inputs}
        #: extra inputs named by the card (``temporal_coords``/``location_coords``) → tensor name
        self.coord_inputs = {k: self.inp[k]["tensor"] for k in COORD_KEYS if self.inp.get(k)}
        if len(inputs) != 1 + len(self.coord_inputs):
            extra = (" besides the card's " + ", ".join(self.coord_inputs.values())) if self.coord_inputs else ""
            raise ModelError(f"segmentation models must have one input tensor{extra}; this one has {len(inputs)} "
                             f"({', '.join(by_name)}).", "model")
        for key, name in self.coord_inputs.items():
            if name not in by_name:
                raise ModelError(f"the card names {key} tensor '{name}' but the model has "
                                 f"{', '.join(by_name)}.", "model")
        self.coords = {}
        if self.input_name not in by_name:
            raise ModelError(f"the card names input tensor '{self.input_name}' but the model has "
                             f"{', '.join(by_name)}.", "model")
        if self.output_name not in {o.name for o in outputs}:
            raise ModelError(f"the card names output tensor '{self.output_name}' but the model has "
                             f"{', '.join(o.name for o in outputs)}.", "model")
        c, t = len(self.inp["bands"]), self.inp["frames"]
        th, tw = self.inp["tile_size"]
        layout = self.inp["layout"]
        expected = {"NCHW": [None, c * t, th, tw], "NCTHW": [None, c, t, th, tw], "NTCHW": [None, t, c, th, tw]}[layout]
        shape = list(by_name[self.input_name].shape)
        if len(shape) != len(expected):
            raise ModelError(f"input '{self.input_name}' has rank {len(shape)} {shape}, but the card's layout {layout} "
                             f"needs rank {len(expected)} {expected[1:]}; this is not a {TASK} model for this card.",
                             "model")
        for dim, want in zip(shape[1:], expected[1:]):
            if isinstance(dim, int) and dim > 0 and dim != want:
                raise ModelError(f"input '{self.input_name}' has shape {shape} but the card describes "
                                 f"{expected[1:]} ({layout}, {c} bands, {t} frame(s), tile {th}x{tw}).", "model")
        oshape = list(next(o for o in outputs if o.name == self.output_name).shape)
        if len(oshape) != 4:
            raise ModelError(f"output '{self.output_name}' has rank {len(oshape)} {oshape}; a {TASK} model must "
                             "output (N, classes, H, W).", "model")
        self.n_classes = len(self.out["classes"])
        self.layout, self.stacking = layout, self.inp["stacking"]

    def set_coords(self, coords):
        """Per-raster extra inputs: ``{"temporal_coords": (T, 2), "location_coords": (2,)}`` float32,
        repeated over each batch."""
        missing = [k for k in self.coord_inputs if k not in coords]
        if missing:
            raise ModelError(f"the model needs {', '.join(missing)}, which were not computed.", "model")
        self.coords = {k: np.asarray(coords[k], np.float32) for k in self.coord_inputs}

    def probabilities(self, tiles, monitor=None):
        """tiles (N, T, C, H, W) float32 → probabilities (N, classes, H, W) float32. A ``monitor``
        reporting cancellation stops the inference itself (ONNX Runtime run termination)."""
        return to_probabilities(self.raw(tiles, monitor), self.out["kind"], self.n_classes)

    def raw(self, tiles, monitor=None):
        """tiles (N, T, C, H, W) float32 → the model's output (N, K, H, W) as it is (e.g. logits)."""
        x = assemble(tiles, self.layout, self.stacking)
        feed = {self.input_name: x}
        for key, name in self.coord_inputs.items():
            v = self.coords.get(key)
            if v is None:
                raise ModelError(f"the model needs {key}; none were set.", "model")
            feed[name] = np.ascontiguousarray(np.broadcast_to(v[None], (x.shape[0],) + v.shape))
        raw = np.asarray(self.infer([self.output_name], feed, monitor)[0])
        k = raw.shape[1] if raw.ndim == 4 else None
        ok_k = k == self.n_classes or (self.out["kind"] == "sigmoid" and k == 1 and self.n_classes == 2)
        if raw.ndim != 4 or not ok_k or raw.shape[0] != x.shape[0] or raw.shape[2:] != x.shape[-2:]:
            raise ModelError(f"the model output has shape {tuple(raw.shape)}; expected ({x.shape[0]}, "
                             f"{self.n_classes}, {x.shape[-2]}, {x.shape[-1]}) for the card's "
                             f"{self.n_classes} classes.", "model")
        return raw.astype(np.float32, copy=False)


def open_inputs(inputs, card, bands=None, monitor=None):
    """Open the input rasters (one per model frame), check their grids and match bands.
    Returns (datasets, band lists, match descriptions)."""
    monitor = ensure(monitor)
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    inputs = [str(p) for p in (inputs or []) if str(p).strip()]
    frames = card["input"]["frames"]
    if not inputs:
        raise InputError("no raster given; expected " + ("one raster." if frames == 1 else
                                                         f"{frames} rasters in date order."), "input")
    if len(inputs) != frames:
        what = ("a single-date model: give one raster" if frames == 1 else
                f"a multi-temporal model with {frames} dates: give {frames} rasters on the same grid, in date order")
        raise InputError(f"{len(inputs)} raster(s) given, but '{card['id']}' is {what}.", "input")
    datasets = [open_raster(p, "input") for p in inputs]
    grid0 = Grid.of(datasets[0])
    for p, ds in zip(inputs[1:], datasets[1:]):
        g = Grid.of(ds)
        if not _same_grid(grid0, g):
            raise InputError(f"{os.path.basename(p)} ({g.width}x{g.height}, geotransform {g.geotransform}) is not on the "
                             f"grid of {os.path.basename(inputs[0])} ({grid0.width}x{grid0.height}, geotransform "
                             f"{grid0.geotransform}); resample all dates to one grid first.", "input")
    explicit = band_matching.parse_band_list(bands)
    band_lists, matches = [], []
    for i, (p, ds) in enumerate(zip(inputs, datasets)):
        picked, how = band_matching.match_bands(ds, card["input"]["bands"], explicit, p)
        band_lists.append(picked)
        label = f"date {i + 1} " if frames > 1 else ""
        matches.append(f"{label}{os.path.basename(p)}: bands {how}")
        monitor.info(f"Band matching {matches[-1]}")
    return datasets, band_lists, matches


def run_segmentation(inputs, model, outputs, bands=None, overlap=None, crop=None, batch_size=4,
                     device="auto", threads=None, monitor=None, extra_dirs=None, dates=None, config=None):
    """Segment ``inputs`` (one raster path, or one per model date, in date order) with ``model``.

    ``outputs``: dict with ``classes`` (required path), optional ``probabilities`` and
    ``confidence`` paths. ``bands``: optional "2,3,4" list of 1-based band numbers per model band.
    ``overlap``: tile overlap in pixels (>= 1) or as a fraction of the tile (< 1); default from the
    card. ``crop``: border crop in pixels (default from the card). ``batch_size``: tiles per model
    call. ``device``: auto/cpu/cuda. ``dates``: comma-separated acquisition dates (one per input
    raster) for models with ``temporal_coords`` (default: from raster metadata or file names).
    Returns :class:`SegmentationResult`."""
    from ..config import ensure_config
    from ..pipeline import OutputSet, stream

    t_start = time.perf_counter()
    monitor = ensure(monitor)
    config = ensure_config(config)
    if not outputs or not outputs.get("classes"):
        raise InputError("no output path given for the class map.", "classes")
    outs = OutputSet(config, monitor)
    outs.add_input("input", [str(p) for p in ([inputs] if isinstance(inputs, (str, os.PathLike)) else inputs or [])
                             if str(p).strip()])
    for key in ("classes", "probabilities", "confidence"):
        if outputs.get(key):
            outs.add_output(key, outputs[key])
    entry = registry.resolve(model, "model", extra_dirs, task=ModelRunner.TASKS, config=config)
    card = entry.card
    inp, classes = card["input"], card["output"]["classes"]
    monitor.info(f"Model {entry.id} ({entry.origin}): {entry.path}")
    datasets, band_lists, matches = open_inputs(inputs, card, bands, monitor)
    from ..physics.band_validity import check_model_input  # ×10000 integers against a [0, 1] model: refused

    # a per-tile min–max model scales every window into [0, 1] itself: no training mean/std to compare with
    checked = [] if inp.get("normalization", "none") != "none" else datasets
    for p, ds, bl in zip(inputs if not isinstance(inputs, (str, os.PathLike)) else [inputs], checked, band_lists):
        check_model_input(ds, bl, inp["scale"], inp["offset"], inp["mean"], inp["std"], "input",
                          os.path.basename(str(p)))
    for ds in datasets:
        outs.add_input("input", ds)
    grid = Grid.of(datasets[0])
    height, width = grid.height, grid.width

    if batch_size is None:
        batch_size = 4
    if int(batch_size) < 1:
        raise InputError(f"batch size must be at least 1 (got {batch_size}).", "batch_size")
    batch_size = int(batch_size)
    ov = card["tiling"]["overlap"] if overlap is None else overlap
    cr = card["tiling"]["crop"] if crop is None else crop
    th, tw = inp["tile_size"]
    try:
        plan = tiling.make_plan(height, width, (th, tw), ov, cr, card["tiling"]["scheme"])
    except ValueError as exc:
        raise InputError(f"{exc} (tile {th}x{tw} px from the model card).", "overlap") from None
    monitor.info(f"Tiling ({plan.scheme}): {len(plan.rows)} x {len(plan.cols)} tiles of {th}x{tw} px, overlap "
                 f"{plan.overlap} px, border crop {plan.crop} px" + (
                     " (raster smaller than a tile: reflect padding)" if height < th or width < tw else ""))

    runner = ModelRunner(entry, device, threads or config.cpu_threads, config)
    monitor.info(runner.session.describe())
    if runner.coord_inputs:
        from . import model_coords

        paths = [inputs] if isinstance(inputs, (str, os.PathLike)) else [str(p) for p in inputs if str(p).strip()]
        runner.set_coords(model_coords.model_coords(card, datasets, paths, dates, monitor))
    blend_logits = plan.blend == "logits"

    nb, nf, k = len(inp["bands"]), inp["frames"], len(classes)
    scale = np.asarray(inp["scale"], np.float32)[:, None, None]
    offset = np.asarray(inp["offset"], np.float32)[:, None, None]
    mean = np.asarray(inp["mean"], np.float32)[:, None, None]
    std = np.asarray(inp["std"], np.float32)[:, None, None]
    values = np.array([c["value"] for c in classes], dtype=np.uint8)
    fill = np.float32(inp["fill_value"])
    per_tile = inp.get("normalization", "none")
    if per_tile != "none":
        monitor.info(f"Input normalisation per {th}x{tw} tile: {per_tile} (each band of each window scaled by its "
                     "own valid pixels, as the model card asks)")

    result = SegmentationResult(dict(outputs), entry.id, provider=runner.provider, band_matches=matches)
    counts = np.zeros(k, dtype=np.int64)
    acc = np.zeros((k, th, width), dtype=np.float32)  # accumulation strip, origin row `origin`
    wsum = np.zeros((th, width), dtype=np.float32)
    origin = 0
    meta = {"model_id": entry.id, "model_version": card.get("version", ""), "model_source": card.get("source", ""),
            "classes": ", ".join(f"{c['value']}={c['name']}" for c in classes)}

    with outs:
        w_cls = outs.create("classes", grid, 1, np.uint8, CLASS_NODATA)
        w_cls.set_band_descriptions(["class"])
        class_styles = styles.class_entries(classes, CLASS_NODATA)
        styles.apply_classes(w_cls.band(1), class_styles)
        w_cls.set_metadata(meta)
        w_prob = w_conf = None
        if outputs.get("probabilities"):
            w_prob = outs.create("probabilities", grid, k, np.float32, FLOAT_NODATA)
            w_prob.set_band_descriptions([c["name"] for c in classes])
            w_prob.set_metadata(meta)
        if outputs.get("confidence"):
            w_conf = outs.create("confidence", grid, 1, np.float32, FLOAT_NODATA)
            w_conf.set_band_descriptions(["confidence (max class probability)"])
            w_conf.set_metadata(meta)

        for ri, y0 in stream(enumerate(plan.rows), monitor):
            ridx = plan.row_index(y0)
            r0, r1 = plan.inside(y0, th, height)
            lo, hi = min(int(ridx.min()), y0 + r0), max(int(ridx.max()) + 1, y0 + r1)
            win = Window(0, lo, width, hi - lo)
            block = np.empty((nf, nb, hi - lo, width), dtype=np.float32)
            valid_block = np.ones((hi - lo, width), dtype=bool)
            for f, (ds, bl) in enumerate(zip(datasets, band_lists)):
                v, ok = read_block(ds, win, bl)
                valid_block &= ok
                block[f] = (v * scale + offset - mean) / std
            block[:, :, ~valid_block] = fill
            rows_x = block[:, :, ridx - lo]          # (F, C, tile_h, width): the tile rows incl. padding
            rows_valid = valid_block[y0 + r0 - lo:y0 + r1 - lo]  # raster rows inside the windows
            rows_ok = valid_block[ridx - lo] if per_tile != "none" else None  # validity incl. padding rows
            del block

            pending = []
            for x0 in plan.cols:
                c0, c1 = plan.inside(x0, tw, width)
                if not rows_valid[:, x0 + c0:x0 + c1].any():
                    result.tiles_skipped += 1
                    continue
                pending.append(x0)
            for b0 in range(0, len(pending), batch_size):
                monitor.check()
                cols = pending[b0:b0 + batch_size]
                tiles = np.stack([rows_x[..., plan.col_index(x0)] for x0 in cols])
                if rows_ok is not None:
                    tiles = tile_norm.apply(per_tile, tiles, np.stack([rows_ok[:, plan.col_index(x0)] for x0 in cols]),
                                            inp.get("minmax_epsilon", 1e-9), fill)
                probs = runner.raw(tiles, monitor) if blend_logits else runner.probabilities(tiles, monitor)
                for p, x0 in zip(probs, cols):
                    c0, c1 = plan.inside(x0, tw, width)
                    w = plan.weight(y0, x0)[r0:r1, c0:c1]
                    a0, a1 = y0 + r0 - origin, y0 + r1 - origin
                    acc[:, a0:a1, x0 + c0:x0 + c1] += p[:, r0:r1, c0:c1] * w
                    wsum[a0:a1, x0 + c0:x0 + c1] += w
                result.tiles_run += len(cols)

            start, stop = plan.final_rows(ri)
            n = stop - start
            if n > 0:
                ws = wsum[:n]
                ok = rows_valid[start - (y0 + r0):stop - (y0 + r0)] & (ws > 0)
                prob = acc[:, :n] / np.where(ws > 0, ws, 1.0)
                if blend_logits:  # TerraTorch averages logits; probabilities follow from the average
                    prob = to_probabilities(prob[None], card["output"]["kind"], k)[0]
                idx = np.argmax(prob, axis=0)
                cls = np.where(ok, values[idx], CLASS_NODATA).astype(np.uint8)
                counts += np.bincount(idx[ok], minlength=k)[:k]
                out_win = Window(0, start, width, n)
                w_cls.write(out_win, cls)
                if w_prob is not None:
                    w_prob.write(out_win, np.where(ok[None], prob, FLOAT_NODATA))
                if w_conf is not None:
                    w_conf.write(out_win, np.where(ok, prob.max(axis=0), FLOAT_NODATA))
                # shift the accumulation strip to the next tile row
                acc[:, : th - n] = acc[:, n:].copy()
                wsum[: th - n] = wsum[n:].copy()
                acc[:, th - n:] = 0.0
                wsum[th - n:] = 0.0
                origin = stop
        from ..physics.band_validity import note_valid_pixels  # a result without valid pixels: log and metadata

        valid = int(counts.sum())
        warning = None if valid else "the result has no valid pixel: every input pixel is nodata in some band"
        if warning:
            monitor.warn(warning + ".")
        for writer in (w_cls, w_prob, w_conf):
            if writer is not None:
                note_valid_pixels(writer, valid, warning)
        styles.write_styles(outs, {"classes": ("classes", class_styles),
                                   "confidence": ("ramp", 0.0, 1.0, "viridis")})

    result.class_counts = {c["name"]: int(n) for c, n in zip(classes, counts)}
    result.valid_pixels = int(counts.sum())
    result.seconds = time.perf_counter() - t_start
    total = max(1, result.valid_pixels)
    monitor.info("Classes: " + ", ".join(f"{name} {100.0 * n / total:.1f} %" for name, n in
                                         result.class_counts.items()) + f" of {result.valid_pixels} valid pixels")
    monitor.info(f"{result.tiles_run} tiles run, {result.tiles_skipped} nodata tiles skipped, "
                 f"{result.seconds:.1f} s")
    return result
