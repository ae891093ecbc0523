"""The batch runner's one contact with the runtime: tasks, parameter parsing, config, running.

The parameter table (:data:`..runtime.parameters.TASKS`) is the same one the Processing algorithms
are generated from, so a CSV cell or ``NAME=VALUE`` is checked by the same code and gets the same
message as in ``qgis_process``. The runtime settings travel as a :class:`..runtime.config.RuntimeConfig`
built here, never through the environment.
"""
import os

from ..runtime.config import ENV_THREADS, RuntimeConfig
from ..runtime.errors import SpectralError
from ..runtime.parameters import DESTINATION_KINDS, TASKS, parse_values

#: Parameter kinds whose values are file paths (resolved against the CSV's folder).
PATH_KINDS = ("raster", "rasters", "file") + DESTINATION_KINDS


class UsageError(Exception):
    """A problem with the command line or the CSV list itself (exit status 2, nothing is run)."""


def batch_tasks():
    """Tasks the batch runner can run: those that write at least one raster."""
    return {name: t for name, t in TASKS.items() if any(p.kind == "output_raster" for p in t.params)}


def get_task(name):
    """The task for an algorithm id (with or without the ``spectraltf:`` prefix)."""
    key = str(name).strip().lower()
    if key.startswith("spectraltf:"):
        key = key.split(":", 1)[1]
    tasks = batch_tasks()
    if key not in tasks:
        raise UsageError(f"unknown algorithm '{name}'; expected one of {', '.join(sorted(tasks))}.")
    return tasks[key]


def input_params(task):
    return [p for p in task.params if not p.is_destination]


def destinations(task):
    return [p for p in task.params if p.is_destination]


def parse(task, raw):
    """Runtime keyword arguments for the raw values ``raw`` (parameter name → text), validated as
    the Processing algorithm validates them; raises :class:`SpectralError` naming the parameter."""
    return parse_values(task, raw)


def rename_error(task, exc):
    """``exc`` naming the Processing parameter rather than the runtime argument."""
    return task.rename_error(exc) if isinstance(exc, SpectralError) else exc


def message(task, exc, raw=None):
    """The one-line, user-facing message of a runtime error (naming the parameter, not the
    runtime's argument). A GDAL read error that names one of the scene's files (``raw``: parameter
    → value) is put as ``PARAM: cannot read FILE: ...``."""
    if isinstance(exc, RuntimeError) and raw and not isinstance(exc, SpectralError):
        text = " ".join(str(exc).split())
        for name, value in raw.items():
            for path in str(value).split(";"):
                local = path.split("|")[0].strip()
                if local and local in text and not task.param(name).is_destination:
                    detail = text.replace(local, "").lstrip(" ,:")
                    return f"{name}: cannot read {local}: {detail}"
    if isinstance(exc, SpectralError):
        exc = task.rename_error(exc)
        text = str(exc)
    elif isinstance(exc, MemoryError):
        text = "out of memory; lower BATCH_SIZE or the block budget (SPECTRALTF_BLOCK_MB), or use fewer workers per machine."
    else:
        first = (str(exc).strip().splitlines() or [""])[0]
        text = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return " ".join(text.split())  # one line


#: Runtime settings a batch passes to every scene (threads are the cluster's: cores / workers).
CONFIG_FIELDS = ("model_dirs", "device", "block_mb", "compression", "native_attention")


def config_fields(cfg):
    """The :data:`CONFIG_FIELDS` of a :class:`RuntimeConfig` as a plain dict (None for None)."""
    if cfg is None:
        return None
    return {"model_dirs": list(cfg.model_dirs), "device": cfg.device, "block_mb": cfg.block_mb,
            "compression": cfg.compression, "native_attention": cfg.native_attention}


def config(threads=None, default_threads=None, base=None):
    """The runtime config of one scene: environment-seeded defaults, ``base`` (:func:`config_fields`
    of the submitting side) over them; ``threads`` (ONNX Runtime intra-op threads) wins,
    ``default_threads`` applies only where the environment (``SPECTRALTF_THREADS`` on that worker)
    sets nothing."""
    fields = {k: v for k, v in (base or {}).items() if k in CONFIG_FIELDS}
    if "model_dirs" in fields:
        fields["model_dirs"] = tuple(fields["model_dirs"] or ())
    cfg = RuntimeConfig.from_environment(threads=threads, **fields)
    if threads is None and default_threads and ENV_THREADS not in cfg.sources:
        cfg = cfg.with_overrides(threads=default_threads)
    return cfg


def run(task, kwargs, cfg, monitor):
    """Run the task; returns its result dict (output parameter name → path or value)."""
    return task.run(cfg, monitor, **kwargs)


def clean_partials_in(folders):
    """:func:`clean_partials` for each of ``folders``; returns every path removed."""
    return [path for folder in folders for path in clean_partials(folder)]


def clean_partials(folder):
    """Remove temporaries that killed runs left in ``folder``: those of dead processes of this host,
    other hosts' only when old (:func:`..runtime.pipeline.staging.clean_stale_staging`)."""
    if not os.path.isdir(folder):
        return []
    try:
        from ..runtime.pipeline.outputs import clean_stale_staging
    except ImportError:  # runtime before the staged output set: hidden .<name>.partial-* files
        import glob

        removed = glob.glob(os.path.join(glob.escape(folder), ".*.partial-*"))
        for path in removed:
            try:
                os.remove(path)
            except OSError:
                pass
        return removed
    return clean_stale_staging(folder)
