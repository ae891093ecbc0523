"""Dask clusters for the batch runner: a LocalCluster on loopback, an existing scheduler, SLURM.

- :func:`local_cluster`: ``workers`` worker processes on this machine, one Dask thread each,
  listening on 127.0.0.1 only; ONNX Runtime gets cores / workers threads per worker
  (:func:`local_threads`), OpenMP/BLAS one (:data:`WORKER_THREAD_LIMITS`).
- :func:`connect`: a client of an existing scheduler (``tcp://host:port``): a ``dask scheduler`` +
  ``dask worker`` cluster, a dask-jobqueue cluster, Kubernetes... Workers there need this plugin
  importable (``spectral_transformers`` on their ``PYTHONPATH``), NumPy, GDAL's Python bindings and
  ONNX Runtime; no QGIS.
- :func:`slurm_cluster`: the SLURM recipe (dask-jobqueue): each job is one node share of
  ``cores`` CPUs and ``memory`` running ``workers_per_job`` worker processes with one Dask thread
  each and ``cores // workers_per_job`` ONNX Runtime threads (``SPECTRALTF_THREADS`` in the job
  script seeds the workers' runtime config).

Retries: when a worker dies while it runs a scene (killed, out of memory, node lost), the scheduler
gives the scene to another worker, up to ``allowed-failures`` times (:func:`set_allowed_failures`;
``--retries``). Errors raised by a scene itself are not retried (see :mod:`.worker`).
"""
import logging
import os
import sys

from ..runtime.config import cpu_cores

#: Default dashboard address of a local cluster (Dask picks a free port when it is taken).
DASHBOARD = "127.0.0.1:8787"
LOOPBACK = "127.0.0.1"
PLUGIN_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _quiet_dask_logs():
    # Dask logs every worker restart at WARNING (kept: a dead worker is worth knowing about);
    # its INFO chatter about ports and connections would bury the progress bar.
    for name in ("distributed", "distributed.scheduler", "distributed.nanny", "distributed.core"):
        logging.getLogger(name).setLevel(logging.WARNING)


#: Thread pools of the numeric libraries in a worker process: one thread each. A worker's parallelism
#: is its ONNX Runtime threads (passed in the runtime config); OpenMP/BLAS pools sized for the whole
#: machine in every worker would oversubscribe the cores. Set through Dask's config for the worker
#: processes it spawns (they must be in place before NumPy loads), never in this process.
WORKER_THREAD_LIMITS = {"OMP_NUM_THREADS": 1, "MKL_NUM_THREADS": 1, "OPENBLAS_NUM_THREADS": 1,
                        "NUMEXPR_NUM_THREADS": 1, "GDAL_NUM_THREADS": 1}


def worker_environ():
    """Environment Dask gives each local worker process before it starts: its configured
    ``distributed.nanny.pre-spawn-environ`` with :data:`WORKER_THREAD_LIMITS` on top."""
    import dask

    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ", default={}) or {})
    environ.update(WORKER_THREAD_LIMITS)
    return environ


def local_threads(workers):
    """ONNX Runtime threads per worker of a local cluster: cores / workers (at least 1)."""
    return max(1, cpu_cores() // max(1, int(workers)))


def _is_python(path):
    name = os.path.basename(path or "").lower()
    return bool(path) and os.path.isfile(path) and name.startswith("python") and "config" not in name


def worker_python():
    """The Python interpreter local worker processes start: this process's, or, inside QGIS (whose
    ``sys.executable`` is the QGIS program, or whatever ``python`` is first on the PATH), the Python
    of the same installation and version (workers get this process's ``sys.path``, so the stdlib
    and compiled modules must match)."""
    prefixes = {os.path.realpath(p) for p in (sys.exec_prefix, sys.base_exec_prefix) if p}
    if _is_python(sys.executable) and any(os.path.realpath(sys.executable).startswith(p + os.sep) for p in prefixes):
        return sys.executable
    major, minor = sys.version_info[:2]
    names = [f"python{major}.{minor}", f"python{major}", "python"]
    folders = [os.path.join(sys.exec_prefix, "bin"), sys.exec_prefix, os.path.join(sys.base_exec_prefix, "bin"),
               sys.base_exec_prefix]
    for folder in folders:
        for name in names:
            for suffix in ("", ".exe"):
                path = os.path.join(folder, name + suffix)
                if _is_python(path) and os.access(path, os.X_OK):
                    return path
    import shutil

    for name in names[:2]:
        path = shutil.which(name)
        if path and any(os.path.realpath(path).startswith(p + os.sep) for p in prefixes):
            return path
    from ..runtime.errors import DependencyError

    raise DependencyError(f"cannot find the Python {major}.{minor} interpreter of this installation "
                          f"({sys.executable}) to start local Dask workers; give the address of a running "
                          "Dask scheduler instead.")


def use_python_for_workers():
    """Make local workers start with :func:`worker_python` (multiprocessing's spawn executable: only
    changed where ``sys.executable`` is not a Python interpreter, e.g. inside QGIS)."""
    python = worker_python()
    if python != sys.executable:
        import multiprocessing

        multiprocessing.set_executable(python)
    return python


def local_cluster(workers, dashboard_address=DASHBOARD, retries=None, memory_limit="auto"):
    """A LocalCluster of ``workers`` processes x 1 thread on 127.0.0.1 (each with its share of the
    memory; a worker over its limit is restarted and its scene retried)."""
    import dask
    from distributed import LocalCluster

    _quiet_dask_logs()
    config = {"distributed.nanny.pre-spawn-environ": worker_environ()}
    if retries is not None:
        config["distributed.scheduler.allowed-failures"] = int(retries)
    with dask.config.set(config):
        return LocalCluster(n_workers=int(workers), threads_per_worker=1, processes=True, host=LOOPBACK,
                            dashboard_address=dashboard_address, memory_limit=memory_limit,
                            silence_logs=logging.WARNING)


def connect(address, timeout=30):
    """A client of the scheduler at ``address`` (``tcp://host:port`` or a scheduler file)."""
    from distributed import Client

    _quiet_dask_logs()
    if os.path.isfile(address):
        return Client(scheduler_file=address, timeout=timeout)
    return Client(address, timeout=timeout)


def set_allowed_failures(client, retries):
    """How many worker deaths a task survives on this client's scheduler (applies to the whole
    scheduler, i.e. to other clients of a shared cluster too)."""
    def _set(dask_scheduler, value=int(retries)):
        dask_scheduler.allowed_failures = value
        return value

    return client.run_on_scheduler(_set)


def remote_threads(client):
    """Worker address → ONNX Runtime threads for an existing cluster: the worker's cores divided by
    the Dask threads of all workers on its host (so several workers per machine do not
    oversubscribe it). A worker's own ``SPECTRALTF_THREADS`` wins (see :mod:`.worker`)."""
    info = client.scheduler_info(n_workers=-1).get("workers", {}) if _takes_n_workers(client) else \
        client.scheduler_info().get("workers", {})
    if not info:
        return {}
    cores = client.run(cpu_cores)
    per_host = {}
    for addr, w in info.items():
        per_host[w.get("host")] = per_host.get(w.get("host"), 0) + int(w.get("nthreads", 1) or 1)
    return {addr: max(1, int(cores.get(addr, 1)) // max(1, per_host.get(w.get("host"), 1)))
            for addr, w in info.items()}


def _takes_n_workers(client):
    import inspect

    try:
        return "n_workers" in inspect.signature(client.scheduler_info).parameters
    except (TypeError, ValueError):
        return False


def slurm_cluster(cores, memory, workers_per_job=None, walltime="01:00:00", queue=None, account=None,
                  python=None, interface=None, host=None, dashboard_address=":8787", job_extra=(),
                  log_directory=None, retries=None, **kwargs):
    """A dask-jobqueue ``SLURMCluster`` whose jobs run batch workers (call ``.scale(jobs=N)`` or
    ``.adapt(...)`` on it, then give ``.scheduler_address`` to ``--scheduler``).

    ``cores``/``memory`` per job (SLURM ``--cpus-per-task`` / ``--mem``); ``workers_per_job`` worker
    processes per job (default: ``cores``), each with 1 Dask thread and ``cores // workers_per_job``
    ONNX Runtime threads; ``python``: the interpreter on the nodes (default: this one, i.e. the
    project venv on a shared file system); ``interface``: the network interface workers and scheduler
    use (e.g. ``ib0``); ``host``: the scheduler's listening address."""
    import dask
    from dask_jobqueue import SLURMCluster

    _quiet_dask_logs()
    cores = int(cores)
    workers_per_job = int(workers_per_job or cores)
    if workers_per_job < 1 or workers_per_job > cores:
        raise ValueError(f"workers per job must be from 1 to the job's cores ({cores}); got {workers_per_job}.")
    threads = max(1, cores // workers_per_job)
    prologue = [
        f"export PYTHONPATH={PLUGIN_PARENT}${{PYTHONPATH:+:$PYTHONPATH}}",
        f"export SPECTRALTF_THREADS={threads}",
    ] + [f"export {name}={value}" for name, value in WORKER_THREAD_LIMITS.items()]
    scheduler_options = {"dashboard_address": dashboard_address}
    if host:
        scheduler_options["host"] = host
    if interface:
        scheduler_options["interface"] = interface
    config = {}
    if retries is not None:
        config["distributed.scheduler.allowed-failures"] = int(retries)
    with dask.config.set(config):
        return SLURMCluster(
            # Dask's view: workers_per_job processes x 1 thread; SLURM's: the job's real CPUs.
            cores=workers_per_job, processes=workers_per_job, job_cpu=cores, memory=memory,
            walltime=walltime, queue=queue, account=account, python=python or sys.executable,
            interface=interface, job_script_prologue=prologue, job_extra_directives=list(job_extra),
            job_name="spectraltf-batch", log_directory=log_directory,
            scheduler_options=scheduler_options, **kwargs)
