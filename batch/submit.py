"""The Processing algorithm's side of the batch runner (``spectraltf:submitbatch``).

:func:`submit` runs :func:`.session.run_campaign`, the code behind ``python -m
spectral_transformers.batch run``, with the algorithm's values: progress, per-scene lines and
failures go to the Processing log through the run's monitor, Cancel stops the scenes still queued or
running, and mistakes in the values or the list come back as one-line errors naming the algorithm's
parameter (``INPUTS: …``, ``PARAMETERS: THRESHOLD: …``) before any cluster starts.
"""
import re

from ..runtime.errors import InputError
from . import manifest
from .tasks import UsageError

#: Command-line options in the shared messages → the algorithm's parameters.
_OPTIONS = {"--inputs": "INPUTS", "--output-dir": "OUTPUT_DIR", "--workers": "WORKERS", "--retries": "RETRIES",
            "--scheduler": "SCHEDULER"}
#: ``;`` or a line break before ``NAME=`` separates two assignments (a ``;`` inside a value, e.g. a list
#: of rasters, stays in it).
_SPLIT = re.compile(r"(?:\r?\n|;)\s*(?=[A-Za-z_][A-Za-z0-9_]*\s*=)")


def split_assignments(text):
    """``"MODEL=x; DEVICE=cpu"`` or one per line → ``["MODEL=x", "DEVICE=cpu"]``."""
    if not text or not str(text).strip():
        return []
    return [item.strip().rstrip(";").strip() for item in _SPLIT.split(str(text).strip()) if item.strip(" ;\r\n")]


def usage_error(exc, assignments=()):
    """The :class:`InputError` (naming the algorithm's parameter) for a batch :class:`UsageError`."""
    text = str(exc)
    for option, name in _OPTIONS.items():
        if text.startswith(option + ":"):
            return InputError(text[len(option) + 1:].strip(), name)
    if text.startswith("--workers applies"):
        return InputError("only for a local cluster; an existing cluster (Dask scheduler address) has its own "
                          "workers: leave it empty.", "WORKERS")
    if text.startswith("command line:"):
        return InputError(text[len("command line:"):].strip(), "PARAMETERS")
    given = {a.partition("=")[0].strip().upper() for a in assignments}
    first = text.split(":", 1)[0].strip()
    if first in given or "NAME=VALUE" in text or "on the command line" in text:
        return InputError(text.replace("on the command line", "in the parameters for every scene"), "PARAMETERS")
    return InputError(text, "INPUTS")


class MonitorProgress:
    """The batch progress sink (see :class:`.runner.Progress`) over a runtime monitor: the progress
    bar, one log line per scene, failures as warnings."""

    def __init__(self, monitor):
        self.monitor = monitor
        self.total = 1
        self.finished = 0

    def begin(self, total):
        self.total = max(1, int(total))

    def update(self, record):
        self.finished += 1
        status, name = record["status"], record["name"]
        if status == manifest.FAILED:
            self.monitor.warn(f"{name} failed: {record['error']}")
        elif status == manifest.DONE:
            self.monitor.info(f"{name}: done in {record['seconds']:.1f} s")
        else:
            self.monitor.info(f"{name}: skipped (complete with the same parameters)")
        self.monitor.progress(self.finished / self.total)

    def draw(self):
        pass

    def close(self):
        pass


def submit(config, monitor, algorithm, inputs, output_dir, parameters=None, scheduler=None, workers=None,
           retries=None, force=False):
    """Run the batch; returns the algorithm's results keyed by argument (``output_dir``, ``manifest``,
    ``total``, ``done``, ``failed``, ``skipped``; :attr:`..runtime.parameters.Task.run` names them). Failed scenes are reported, not raised: the others' outputs
    and the manifest are the result."""
    from . import cluster, session

    session.require_dask()
    assignments = split_assignments(parameters)
    cluster.use_python_for_workers()  # inside QGIS, sys.executable is QGIS itself
    try:
        summary, timing, out = session.run_campaign(
            algorithm, inputs, output_dir, assignments, workers=workers, scheduler=scheduler, retries=retries,
            force=bool(force), say=monitor.info, progress=MonitorProgress(monitor),
            cancelled=monitor.cancelled, config=config)
    except UsageError as exc:
        raise usage_error(exc, assignments) from None
    path = manifest.path_in(out)
    monitor.info(f"{summary.total} scene(s): {summary.done} done, {summary.failed} failed, {summary.skipped} "
                 f"skipped in {summary.seconds:.1f} s; manifest: {path}. {timing.line()}")
    if summary.failed:
        monitor.warn(f"{summary.failed} of {summary.total} scene(s) failed (messages above and in {path}); the "
                     "others are complete. Fix them and run again: complete scenes are skipped.")
    return {"output_dir": out, "manifest": path, "total": summary.total, "done": summary.done,
            "failed": summary.failed, "skipped": summary.skipped}
