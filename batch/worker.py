"""What a Dask worker runs for one scene: parse the values, run the runtime task, report.

Plain functions of plain data (a job dict in, a record dict out), so they pickle to any worker and
import nothing of QGIS. Errors the task raises are reported in the record (status ``failed`` and the
one-line message), never raised to Dask: a corrupt scene fails the same way on every try, so Dask's
retries are kept for what they are meant for, a worker that died under the scene.
"""
import os
import socket
import time

from ..runtime.monitor import Monitor
from . import manifest, tasks

#: Warnings kept per scene in the manifest.
MAX_WARNINGS = 20


class SceneMonitor(Monitor):
    """Collects the task's warnings for the manifest (progress goes nowhere: a scene is one step
    of the batch's progress bar)."""

    def __init__(self):
        self.warnings = []

    def warn(self, message):
        if len(self.warnings) < MAX_WARNINGS:
            self.warnings.append(" ".join(str(message).split()))


def _worker_address():
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return socket.gethostname()


def run_scene(job):
    """Run one scene. ``job``: ``algorithm``, ``name``, ``parameters`` (raw values), ``outputs``,
    ``fingerprint``, ``threads`` (ONNX Runtime threads: they win) or ``threads_by_worker`` (worker address
→ threads: a default the worker's ``SPECTRALTF_THREADS`` overrides), ``config`` (runtime settings that
win over the worker's environment, or None). Returns the manifest record.
(Temporaries of an attempt killed before this one are removed by the runtime's output set.)"""
    started, cpu_started = time.perf_counter(), time.process_time()
    task = tasks.get_task(job["algorithm"])
    monitor = SceneMonitor()
    record = {"name": job["name"], "status": manifest.FAILED, "outputs": {}, "error": None, "seconds": 0.0,
              "algorithm": task.name, "parameters": job["parameters"], "fingerprint": job["fingerprint"],
              "worker": _worker_address(), "pid": os.getpid()}
    try:
        kwargs = tasks.parse(task, job["parameters"])
        cfg = tasks.config(job.get("threads"), job.get("threads_by_worker", {}).get(record["worker"]),
                           job.get("config"))
        result = tasks.run(task, kwargs, cfg, monitor) or {}
    except Exception as exc:  # noqa: BLE001 - every failure becomes the scene's one-line message
        record["error"] = tasks.message(task, exc, job["parameters"])
    else:
        reported = {p: path for p, path in job["outputs"].items() if result.get(p)}
        written = {p: path for p, path in reported.items() if os.path.isfile(path)}
        missing = [p for p in reported if p not in written]
        if missing:
            record["error"] = f"{missing[0]}: the task reported {result.get(missing[0])} but no file is there."
        else:
            record.update(status=manifest.DONE, outputs=written, files=manifest.file_stamps(written.values()))
            record["results"] = {k: v for k, v in result.items()
                                 if k not in job["outputs"] and not k.startswith("_") and isinstance(v, (int, float, str, bool))}
    record["seconds"] = round(time.perf_counter() - started, 3)
    record["cpu_seconds"] = round(time.process_time() - cpu_started, 3)  # this worker process, all its threads
    record["warnings"] = monitor.warnings
    return record


def runtime_modules():
    """Top-level modules loaded in this process (tests check that workers never load QGIS)."""
    import sys

    return sorted({m.split(".")[0] for m in sys.modules})


def onnx_threads():
    """Intra-op thread counts of the ONNX Runtime sessions this process has opened (tests)."""
    from ..runtime.models import onnx_backend

    return sorted({s.session.get_session_options().intra_op_num_threads
                   for s in list(onnx_backend._sessions.values())})  # noqa: SLF001


def thread_limits():
    """The numeric libraries' thread settings this worker process started with (tests)."""
    from .cluster import WORKER_THREAD_LIMITS

    return {name: os.environ.get(name) for name in WORKER_THREAD_LIMITS}
