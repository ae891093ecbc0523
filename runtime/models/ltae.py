"""Temporal attention maps from an L-TAE ONNX model, streamed block by block (QGIS-free).

Input: an ordered list of rasters, one per acquisition date, each with the model's C channels
(card ``bands``), or one multiband stack of T × C bands in date-major order (band = date·C +
channel). All rasters must share one grid. Dates come from the ``dates_text`` argument or each raster's
metadata / file name (:mod:`.dates`) and become positions in days per the card's ``dates_policy``.

Outputs (GeoTIFF, same grid): ``attention`` T bands float32 (attention on each date, mean over
heads; band descriptions are the dates; nodata −9999), optional per-head ``heads`` (heads × T bands,
head-major), optional ``classes`` (uint8 class values with a colour table; nodata 255). A pixel is
nodata when any date is nodata there. Outputs are written to temporary files and renamed only when
complete (cancellation or an error leaves none).
"""
import os

import numpy as np

from ..io import dates as dates_mod
from . import model_card, onnx_backend
from ..io import raster_io
from ..pipeline import styles
from ..errors import InputError, ModelError
from .base import OnnxModel, static_dim
from ..monitor import ensure

TASK = "temporal-attention"
ATTENTION_NODATA = -9999.0
CLASS_NODATA = 255


class TemporalModel(OnnxModel):
    """An L-TAE ONNX model and its card (inputs ``series`` (N, T, C), ``doy`` (T,); outputs
    ``logits`` (N, K), ``attention`` (N, heads, T)), on the shared :class:`~.model.OnnxModel`."""

    TASKS = (TASK,)

    def __init__(self, path, card, device="auto", threads=None, parameter="model", config=None):
        super().__init__(path, card, None, device, threads, parameter, config)
        check_attention_model(self.session, ("series", "doy"), parameter)
        card = self.card
        self.channels = int(card.get("channels") or len(card.get("bands") or []) or
                            static_dim(self.inputs["series"].shape, 2) or 0)
        if self.channels <= 0:
            raise ModelError("the model card gives no channel count ('channels' or 'bands').", "model")
        self.bands = list(card.get("bands") or [f"C{i + 1}" for i in range(self.channels)])
        policy = card.get("dates_policy") or {}
        if isinstance(policy, str):
            policy = {"kind": policy}
        self.policy = policy.get("kind", "day_of_year")
        self.reference = policy.get("reference_date")
        if self.policy not in ("day_of_year", "days_since_first", "days_since_reference"):
            raise ModelError(f"unknown dates_policy '{self.policy}' in the model card.", "model")
        self.classes = list(card.get("classes") or [])
        self.heads = int(card.get("heads") or 0) or None

    @classmethod
    def load(cls, path, device="auto", threads=None, card=None, parameter="model", config=None):
        card = card if card is not None else model_card.load_card(path, parameter)
        if card.get("task") != TASK:
            raise ModelError(f"model '{card.get('id')}' has task '{card.get('task')}'; temporal attention needs "
                             f"a '{TASK}' (L-TAE) model.", parameter)
        return cls(path, card, device, threads, parameter, config)

    def positions(self, dates):
        return dates_mod.positions(dates, self.policy, self.reference)

    def run(self, series, doy, batch_size=4096, monitor=None):
        """(N, T, C) float32 + (T,) positions → (logits (N, K), attention (N, H, T))."""
        logits, attention = self.run_batches(["logits", "attention"], {"series": series}, {"doy": doy},
                                             batch_size, monitor)
        return logits, attention


def check_attention_model(session, inputs, parameter="model"):
    """Raise :class:`ModelError` unless ``session`` has an ``attention`` output and the ``inputs``."""
    outs, ins = set(session.outputs), set(session.inputs)
    if "attention" not in outs:
        raise ModelError(f"{os.path.basename(session.path)} has no 'attention' output (outputs: "
                         f"{', '.join(sorted(outs)) or 'none'}); attention maps need a SpecTf cloud model or an "
                         "L-TAE temporal-attention model exported with its attention weights.", parameter)
    missing = [n for n in inputs if n not in ins]
    if missing:
        raise ModelError(f"{os.path.basename(session.path)} lacks the input(s) {', '.join(missing)} "
                         f"(inputs: {', '.join(sorted(ins))}).", parameter)


class TemporalStack:
    """Ordered per-date rasters (or one date-major stack) read as pixel time series."""

    def __init__(self, paths, channels, parameter="input"):
        paths = [str(p) for p in (paths or [])]
        if not paths:
            raise InputError("no rasters given; expected one raster per date, or one multiband stack.", parameter)
        self.paths, self.channels, self.parameter = paths, int(channels), parameter
        self.datasets = [raster_io.open_raster(p, parameter) for p in paths]
        first = self.datasets[0]
        self.grid = raster_io.Grid.of(first)
        self.stacked = len(paths) == 1
        if self.stacked:
            n = first.RasterCount
            if n % self.channels:
                raise InputError(f"the stack {os.path.basename(paths[0])} has {n} bands, not a multiple of the "
                                 f"model's {self.channels} channel(s) per date; expected dates × channels bands "
                                 "in date-major order.", parameter)
            self.count = n // self.channels
        else:
            self.count = len(paths)
            for i, ds in enumerate(self.datasets):
                name = os.path.basename(paths[i])
                if ds.RasterCount != self.channels:
                    raise InputError(f"raster {i + 1} ({name}) has {ds.RasterCount} bands; the model expects "
                                     f"{self.channels} channel(s) per date.", parameter)
                grid = raster_io.Grid.of(ds)
                if not grid.same_size(self.grid):
                    raise InputError(f"raster {i + 1} ({name}) is {grid.width}×{grid.height} px but raster 1 is "
                                     f"{self.grid.width}×{self.grid.height} px; all rasters must share one grid "
                                     "(resample them first).", parameter)
                if not _same_georef(grid, self.grid):
                    raise InputError(f"raster {i + 1} ({name}) has a different georeferencing (origin, pixel "
                                     "size or CRS) from raster 1; all rasters must share one grid.", parameter)

    def dataset_of_date(self, i):
        return self.datasets[0] if self.stacked else self.datasets[i]

    def read(self, window):
        """Pixel series (rows·cols, T, C) float32 and validity (rows, cols) for ``window``."""
        t, c = self.count, self.channels
        cube = np.empty((t, c, window.ysize, window.xsize), np.float32)
        valid = np.ones((window.ysize, window.xsize), bool)
        if self.stacked:
            values, valid = raster_io.read_block(self.datasets[0], window)
            cube[:] = values.reshape(t, c, window.ysize, window.xsize)
        else:
            for i, ds in enumerate(self.datasets):
                values, ok = raster_io.read_block(ds, window)
                cube[i] = values
                valid &= ok
        series = cube.reshape(t, c, -1).transpose(2, 0, 1)
        return np.ascontiguousarray(series), valid


def _same_georef(a, b, tol=1e-6):
    if (a.geotransform is None) != (b.geotransform is None):
        return False
    if a.geotransform is not None:
        scale = max(abs(a.geotransform[1]), abs(a.geotransform[5]), 1e-12)
        if any(abs(x - y) > tol * max(1.0, scale) for x, y in zip(a.geotransform, b.geotransform)):
            return False
    if a.projection and b.projection and a.projection != b.projection:
        from osgeo import osr

        sa, sb = osr.SpatialReference(), osr.SpatialReference()
        sa.ImportFromWkt(a.projection)
        sb.ImportFromWkt(b.projection)
        return bool(sa.IsSame(sb))
    return True


def temporal_attention(paths, model, output, dates_text=None, output_heads=None, output_classes=None,
                       device="auto", threads=None, batch_size=4096, monitor=None, card=None,
                       block_budget=None, config=None):
    """Write temporal attention maps (see module docstring). ``model`` is an ONNX path or a
    :class:`TemporalModel`. Returns a dict with the dates, their source, the output paths and
    the number of valid pixels."""
    from ..config import ensure_config
    from ..pipeline import OutputSet, stream, strips

    monitor = ensure(monitor)
    config = ensure_config(config)
    outs = OutputSet(config, monitor)
    outs.add_input("input", [str(p) for p in (paths or [])])
    output = outs.add_output("output", output)
    if output_heads:
        output_heads = outs.add_output("heads", output_heads)
    if output_classes:
        output_classes = outs.add_output("classes", output_classes)
    tm = model if isinstance(model, TemporalModel) else TemporalModel.load(
        model, device, threads or config.cpu_threads, card, config=config)
    if output_classes and not tm.classes:
        raise InputError("the model card lists no classes, so no class map can be written; leave "
                         "«classes» empty.", "classes")
    if batch_size is None or int(batch_size) < 1:
        raise InputError(f"batch size must be a positive integer, not {batch_size}.", "batch_size")
    stack = TemporalStack(paths, tm.channels)
    dates, source = dates_mod.resolve_dates(stack.count, dates_text, stack.datasets if not stack.stacked else [],
                                            stack.paths if not stack.stacked else [], "dates_text")
    doy = tm.positions(dates)
    t = stack.count
    iso = [d.isoformat() for d in dates]
    monitor.info(f"{t} dates ({source}): {iso[0]} … {iso[-1]}; positions {tm.policy}; model {tm.card.get('id')} "
                 f"({tm.session.describe()})")
    grid = stack.grid
    budget = block_budget or config.block_bytes
    heads = tm.heads or 1
    per_pixel = t * tm.channels + t * (1 + heads)
    windows = strips(grid.width, grid.height, per_pixel, budget)
    common_md = {"MODEL": tm.card.get("id", ""), "DATES": ",".join(iso), "DATES_SOURCE": source,
                 "DATES_POLICY": tm.policy}
    n_valid, amax = 0, 0.0
    with outs:
        w_att = outs.create("output", grid, t, np.float32, ATTENTION_NODATA,
                            tile=raster_io.tile_size_for(grid.width, t, 4, budget))
        w_att.set_band_descriptions(iso)
        for i, d in enumerate(iso):
            w_att.band(i + 1).SetMetadataItem("ACQUISITION_DATE", d)
        w_att.set_metadata(dict(common_md, CONTENT="attention on each date, mean over heads"))
        w_heads = w_cls = None
        if output_heads:
            w_heads = outs.create("heads", grid, heads * t, np.float32, ATTENTION_NODATA,
                                  tile=raster_io.tile_size_for(grid.width, heads * t, 4, budget))
            w_heads.set_band_descriptions([f"head {h + 1} {d}" for h in range(heads) for d in iso])
            w_heads.set_metadata(dict(common_md, CONTENT="attention per head (head-major: band = head*T + date)",
                                      HEADS=heads))
        if output_classes:
            w_cls = outs.create("classes", grid, 1, np.uint8, CLASS_NODATA,
                                tile=raster_io.tile_size_for(grid.width, 1, 1, budget))
            w_cls.set_metadata(dict(common_md, CONTENT="class value (model card 'classes')"))
        class_values = np.array([int(c.get("value", i)) for i, c in enumerate(tm.classes)] or [0], np.int64)
        for win in stream(windows, monitor, release=stack.datasets):
            series, valid = stack.read(win)
            flat = valid.reshape(-1)
            n_pix = win.xsize * win.ysize
            att_block = np.full((t, n_pix), ATTENTION_NODATA, np.float32)
            heads_block = np.full((heads * t, n_pix), ATTENTION_NODATA, np.float32) if w_heads else None
            cls_block = np.full(n_pix, CLASS_NODATA, np.uint8)
            if flat.any():
                logits, attention = tm.run(series[flat], doy, int(batch_size), monitor)
                if attention.shape[1] != heads:
                    if w_heads is not None:
                        raise ModelError(f"the model returns {attention.shape[1]} heads but its card says {heads}.",
                                         "model")
                mean = attention.mean(axis=1)
                att_block[:, flat] = mean.T
                amax = max(amax, float(mean.max()))
                if heads_block is not None:
                    heads_block[:, flat] = attention.reshape(len(attention), -1).T
                cls_block[flat] = class_values[logits.argmax(1)].astype(np.uint8)
                n_valid += int(flat.sum())
            shape = (win.ysize, win.xsize)
            w_att.write(win, att_block.reshape((t,) + shape))
            if w_heads is not None:
                w_heads.write(win, heads_block.reshape((heads * t,) + shape))
            if w_cls is not None:
                w_cls.write(win, cls_block.reshape(shape))
        spec = {"output": ("ramp", 0.0, max(amax, 1e-3), "magma")}
        if w_cls is not None:
            class_styles = styles.class_entries(tm.classes)
            styles.apply_classes(w_cls.band(1), class_styles)
            spec["classes"] = ("classes", class_styles)
        styles.write_styles(outs, spec)
    monitor.info(f"attention written for {n_valid} valid pixels → {output}")
    return {"dates": dates, "dates_source": source, "output": output, "output_heads": output_heads,
            "output_classes": output_classes, "valid_pixels": n_valid, "positions": doy}


# ---------------------------------------------------------------------------------------------
# Which attention a model gives (used by spectraltf:attentionmaps)
# ---------------------------------------------------------------------------------------------
SPECTRAL_TASK = "spectral-cloud-mask"


def resolve_attention_model(value, device="auto", threads=None, parameter="model", config=None):
    """``(mode, path, card)`` for a registry id or .onnx path, where ``mode`` is ``"spectral"``
    (SpecTf band attention, task ``spectral-cloud-mask``) or ``"temporal"`` (L-TAE, task
    ``temporal-attention``). The card decides; a file without a card is judged by its inputs.

    Raises :class:`ModelError` naming ``parameter`` when the model has no ``attention`` output or
    is neither kind (e.g. a segmentation model)."""
    from . import registry

    value = "spectf-cloud-v0.1.0" if value in (None, "") else str(value).strip()
    path, card, _ = OnnxModel.resolve(value, parameter, config, cardless=True)  # a bare .onnx: judged below
    task = card.get("task")
    if task not in (None, TASK, SPECTRAL_TASK):
        raise ModelError(f"model '{card.get('id', value)}' is a '{task}' model without attention weights; attention "
                         f"maps need a SpecTf ('{SPECTRAL_TASK}') or L-TAE ('{TASK}') model.", parameter)
    session = onnx_backend.load_session(path, device, threads, parameter, config=config)
    if task is None:
        ins = set(session.inputs)
        task = TASK if {"series", "doy"} <= ins else SPECTRAL_TASK if {"spectra", "wavelengths"} <= ins else None
    if task == TASK:
        check_attention_model(session, ("series", "doy"), parameter)
    elif task == SPECTRAL_TASK:
        check_attention_model(session, ("spectra", "wavelengths"), parameter)
    else:
        check_attention_model(session, (), parameter)
        raise ModelError(f"{os.path.basename(path)} has neither the SpecTf inputs (spectra, wavelengths) nor the "
                         f"L-TAE inputs (series, doy), and no model card saying which it is.", parameter)
    if task == TASK and not card:
        raise ModelError(f"{os.path.basename(path)} looks like an L-TAE model but has no model card (channels, "
                         "dates policy, classes); export it with training/ltae.py.", parameter)
    return ("temporal" if task == TASK else "spectral"), path, card
