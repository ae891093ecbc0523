"""Command line of the batch runner (``python -m spectral_transformers.batch``).

::

    python -m spectral_transformers.batch run ALG --inputs LIST.csv --output-dir DIR \\
        [--workers N] [--scheduler ADDRESS] [--retries N] [NAME=VALUE ...]
    python -m spectral_transformers.batch params ALG
    python -m spectral_transformers.batch slurm --cores C --memory M [--workers-per-job P] [--jobs N] ...

Exit status of ``run``: 0 when every scene is done or skipped, 1 when any scene failed, 2 for a
problem with the command line or the list (nothing is run), 130 when interrupted.
"""
import argparse
import os
import sys
import time

from . import cluster, manifest, tasks
from .session import run_campaign
from .tasks import UsageError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def _parser():
    algs = ", ".join(sorted(tasks.batch_tasks()))
    p = argparse.ArgumentParser(prog="python -m spectral_transformers.batch",
                                description="Run a Spectral Transformers algorithm over many scenes on Dask.")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run ALG once per row of a CSV list",
                         description=f"Run ALG ({algs}) once per row of LIST.csv. NAME=VALUE arguments set a "
                                     "parameter for every row; outputs not given are written to "
                                     "DIR/<scene>_<output parameter in lower case>.tif.")
    run.add_argument("algorithm", metavar="ALG", help=f"algorithm id: {algs}")
    run.add_argument("--inputs", required=True, metavar="LIST.csv",
                     help="CSV: a header of parameter names (INPUT, OBSERVATION, ...; optional NAME), one row per scene")
    run.add_argument("--output-dir", required=True, metavar="DIR", help="folder for outputs and manifest.jsonl")
    run.add_argument("--workers", type=int, default=None, metavar="N",
                     help="worker processes of the local cluster (default: the number of cores); one thread each, "
                          "ONNX Runtime threads = cores / workers")
    run.add_argument("--scheduler", metavar="ADDRESS",
                     help="use an existing Dask cluster (tcp://host:port or a scheduler file) instead of a local one")
    run.add_argument("--retries", type=int, default=None, metavar="N",
                     help="times a scene is resubmitted after the worker running it died (default 2 on a local "
                          "cluster, the scheduler's setting on an existing one)")
    run.add_argument("--dashboard-address", default=cluster.DASHBOARD, metavar="HOST:PORT",
                     help=f"dashboard of the local cluster (default {cluster.DASHBOARD}; ':0' picks a free port)")
    run.add_argument("--force", action="store_true", help="recompute scenes that the manifest says are complete")
    run.add_argument("assignments", nargs="*", metavar="NAME=VALUE", help="parameter value for every scene")

    params = sub.add_parser("params", help="list the parameters of ALG (the CSV columns)")
    params.add_argument("algorithm", metavar="ALG")

    slurm = sub.add_parser("slurm", help="start a SLURM cluster of batch workers (dask-jobqueue) and print its address",
                           description="Starts a Dask scheduler here and SLURM jobs running batch workers; prints the "
                                       "scheduler address for `run --scheduler` and waits until interrupted "
                                       "(Ctrl-C cancels the jobs).")
    slurm.add_argument("--cores", type=int, required=True, help="CPUs per job (SLURM --cpus-per-task)")
    slurm.add_argument("--memory", required=True, help="memory per job, e.g. 64GB (SLURM --mem)")
    slurm.add_argument("--workers-per-job", type=int, default=None,
                       help="worker processes per job (default: --cores); ONNX Runtime threads = cores / this")
    slurm.add_argument("--jobs", type=int, default=1, help="jobs to start (default 1)")
    slurm.add_argument("--walltime", default="01:00:00")
    slurm.add_argument("--queue", default=None, help="partition (SLURM -p)")
    slurm.add_argument("--account", default=None, help="account (SLURM -A)")
    slurm.add_argument("--interface", default=None, help="network interface of scheduler and workers, e.g. ib0")
    slurm.add_argument("--log-directory", default=None, help="folder for the jobs' stdout/stderr")
    slurm.add_argument("--retries", type=int, default=None, help="worker deaths a scene survives")
    slurm.add_argument("--print-job-script", action="store_true", help="print the job script and exit (submits nothing)")
    return p


def _say(text):
    print(text, file=sys.stderr, flush=True)


def cmd_params(args):
    task = tasks.get_task(args.algorithm)
    print(f"{task.name}: {task.display}")
    for p in task.params:
        bits = [p.kind]
        if p.optional:
            bits.append("optional")
        if p.default not in (None, ""):
            bits.append(f"default {p.default}")
        if p.options:
            bits.append("one of " + "|".join(map(str, p.options)))
        if p.kind in ("number", "integer") and p.bounds_text():
            bits.append(p.bounds_text())
        if p.is_destination:
            bits.append(f"default DIR/<scene>_{p.name.lower()}.tif")
        print(f"  {p.name:<24} {p.label} ({'; '.join(bits)})")
    return EXIT_OK


def cmd_run(args):
    summary, timing, output_dir = run_campaign(
        args.algorithm, args.inputs, args.output_dir, args.assignments, workers=args.workers,
        scheduler=args.scheduler, retries=args.retries, force=args.force, dashboard_address=args.dashboard_address,
        say=_say)
    _say(f"{summary.total} scene(s): {summary.done} done, {summary.failed} failed, {summary.skipped} skipped in "
         f"{summary.seconds:.1f} s; manifest: {manifest.path_in(output_dir)}")
    _say(timing.line())
    return summary.exit_status


def cmd_slurm(args):
    slurm = cluster.slurm_cluster(args.cores, args.memory, workers_per_job=args.workers_per_job,
                                  walltime=args.walltime, queue=args.queue, account=args.account,
                                  interface=args.interface, log_directory=args.log_directory, retries=args.retries)
    try:
        if args.print_job_script:
            print(slurm.job_script())
            return EXIT_OK
        slurm.scale(jobs=args.jobs)
        print(slurm.scheduler_address, flush=True)
        _say(f"SLURM cluster: {args.jobs} job(s) requested; run scenes with\n"
             f"  python -m spectral_transformers.batch run ALG --inputs LIST.csv --output-dir DIR "
             f"--scheduler {slurm.scheduler_address}\nDashboard: {slurm.dashboard_link}\nCtrl-C stops the cluster.")
        while True:
            time.sleep(3600)
    finally:
        slurm.close()


def _parse(argv):
    """Parse ``argv``; ``run`` takes NAME=VALUE arguments between and after its options."""
    parser = _parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in _commands(parser):
        return parser.parse_args(argv)  # usage / --help / an unknown command
    sub = _commands(parser)[argv[0]]
    args = sub.parse_intermixed_args(argv[1:])
    args.command = argv[0]
    return args


def _commands(parser):
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))  # noqa: SLF001
    return action.choices


def main(argv=None):
    args = _parse(argv)
    try:
        if args.command == "params":
            return cmd_params(args)
        if args.command == "slurm":
            return cmd_slurm(args)
        return cmd_run(args)
    except UsageError as exc:
        _say(f"error: {exc}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        _say("\nInterrupted; finished scenes are in the manifest, a rerun resumes from there.")
        return EXIT_INTERRUPTED
