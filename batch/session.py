"""One batch run from start to end: check the list, start or join a cluster, run, shut down.

The one implementation behind the command line (``python -m spectral_transformers.batch run``) and
the Processing algorithm *Submit batch to a Dask scheduler* (``spectraltf:submitbatch``): both call
:func:`run_campaign` with the same arguments, so a mistake gets the same message and a list runs the
same way from a terminal and from the Toolbox. Mistakes in the arguments or the list raise
:class:`~.tasks.UsageError` before any cluster starts.
"""
import os
import time
from dataclasses import dataclass

from ..runtime.config import cpu_cores
from . import cluster, tasks
from .runner import run_batch, validate
from .scenes import parse_assignments, read_scenes
from .tasks import UsageError, get_task


@dataclass
class Timing:
    """Seconds of a run's phases: cluster start-up (or connection), the scenes, the shutdown."""

    startup: float = 0.0
    scenes: float = 0.0
    shutdown: float = 0.0

    def line(self):
        return (f"Timing: cluster start-up {self.startup:.2f} s, scenes {self.scenes:.2f} s, "
                f"shutdown {self.shutdown:.2f} s.")


def require_dask():
    """Raise :class:`~..runtime.errors.DependencyError` when Dask distributed is not importable here."""
    try:
        import dask  # noqa: F401
        import distributed  # noqa: F401
    except ImportError as exc:
        from ..runtime.errors import DependencyError

        raise DependencyError(
            f"Dask distributed is not installed for this Python ({exc}); the batch runner needs it. Install it "
            "with `python -m pip install \"dask[distributed]\" bokeh` for the Python that runs this (for QGIS: "
            "its Python, e.g. from the OSGeo4W shell on Windows), or `pip install -r requirements-batch.txt` in "
            "the plugin's development setup.") from None


def dashboard_text(client):
    try:
        import bokeh  # noqa: F401 - Dask serves its dashboard only with bokeh installed
    except ImportError:
        return "not available (install bokeh>=3.1 to get one)"
    return client.dashboard_link or "not available"


def run_campaign(algorithm, inputs, output_dir, assignments=(), workers=None, scheduler=None, retries=None,
                 force=False, dashboard_address=cluster.DASHBOARD, say=None, progress=None, cancelled=None,
                 config=None):
    """Run ``algorithm`` over the scenes of the CSV ``inputs`` into ``output_dir``.

    ``assignments``: ``NAME=VALUE`` texts for every scene; ``workers``: processes of a local cluster
    (default: the cores); ``scheduler``: address of an existing cluster instead (``tcp://host:port``
    or a scheduler file); ``retries``: worker deaths a scene survives (default 2 locally, the
    scheduler's own setting otherwise); ``force``: recompute complete scenes; ``say(text)``: status
    lines; ``progress``: a :class:`~.runner.Progress`-like sink (default: the terminal bar);
    ``cancelled()``: polled, True stops the run (:class:`~..runtime.errors.Cancelled`); ``config``: a
    :class:`~..runtime.config.RuntimeConfig` whose model folders, device, block budget and compression
    the scenes run with (the Toolbox passes the provider's settings; default: each worker's
    environment, as for any runtime script).
    Returns ``(Summary, Timing, output_dir)``."""
    say = say or (lambda text: None)
    task = get_task(algorithm)
    overrides = parse_assignments(assignments)
    if workers is not None and int(workers) < 1:
        raise UsageError(f"--workers: {workers} is not a number of workers; expected 1 or more.")
    if retries is not None and int(retries) < 0:
        raise UsageError(f"--retries: {retries} is negative; expected 0 or more.")
    scheduler = (scheduler or "").strip() or None
    if scheduler and workers is not None:
        raise UsageError("--workers applies to the local cluster; an existing cluster (--scheduler) has its own workers.")
    if not output_dir or not str(output_dir).strip():
        raise UsageError("--output-dir: no folder given.")
    scenes = read_scenes(inputs, task, overrides, output_dir)
    validate(task, scenes, set(overrides))  # a bad NAME=VALUE stops here, before a cluster starts
    output_dir = os.path.abspath(output_dir)
    try:
        os.makedirs(output_dir, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--output-dir: cannot create {output_dir}: {exc.strerror}") from None
    require_dask()

    timing = Timing()
    started = time.perf_counter()
    local = not scheduler
    retries = int(retries) if retries is not None else (2 if local else None)
    if local:
        workers = int(workers or cpu_cores())
        threads = cluster.local_threads(workers)
        say(f"Starting a local Dask cluster: {workers} worker(s) x 1 thread on 127.0.0.1, "
            f"{threads} ONNX Runtime thread(s) per worker.")
        dask_cluster = cluster.local_cluster(workers, dashboard_address, retries)
        from distributed import Client

        client = Client(dask_cluster)
        threads_by_worker = None
    else:
        dask_cluster = None
        client = cluster.connect(scheduler)
        if retries is not None:
            cluster.set_allowed_failures(client, retries)
        threads, threads_by_worker = None, cluster.remote_threads(client)
        n = len(threads_by_worker)
        say(f"Connected to {scheduler}: {n} worker(s)" + ("" if n else " (none yet: scenes wait for workers)") + ".")
    timing.startup = time.perf_counter() - started
    try:
        say(f"Dashboard: {dashboard_text(client)}")
        say(f"{len(scenes)} scene(s) of {task.name} → {output_dir}")
        summary = run_batch(task, scenes, output_dir, client, threads=threads, threads_by_worker=threads_by_worker,
                            retries=retries, global_names=set(overrides), force=force, local=local,
                            progress=progress, cancelled=cancelled, base_config=tasks.config_fields(config))
    finally:
        closing = time.perf_counter()
        client.close()
        if dask_cluster is not None:
            dask_cluster.close()
            # a scene cancelled while it ran was stopped with its worker: remove what it staged
            tasks.clean_partials_in(sorted({os.path.dirname(p) for s in scenes for p in s.outputs.values()}))
        timing.shutdown = time.perf_counter() - closing
    timing.scenes = summary.seconds
    return summary, timing, output_dir
