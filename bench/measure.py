"""Small helpers for benchmarks: run a command in a child process and report wall time and peak RSS.

Peak RSS comes from ``wait4``'s resource usage of that one child (ru_maxrss, KiB on Linux), so each
measured command must run in its own process.
"""
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QGIS_PROCESS = os.path.join(REPO, "scripts", "qgis_process")
SHARED_DATA = os.environ.get("SPECTRALTF_SHARED_DATA", os.path.join(os.path.dirname(REPO), "shared", "data"))


def run_measured(cmd, env=None, cwd=None):
    """Run ``cmd``; return (seconds, peak RSS in MiB, stdout+stderr text). Raises on failure."""
    full_env = dict(os.environ)
    full_env.setdefault("QT_QPA_PLATFORM", "offscreen")
    if env:
        full_env.update(env)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=full_env, cwd=cwd)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise RuntimeError(f"command failed ({code}): {' '.join(map(str, cmd))}\n{out[-4000:]}")
    return seconds, usage.ru_maxrss / 1024.0, out


def python_cmd(*args):
    return [sys.executable, *args]


def report(title, rows):
    """Print a small table: rows of (label, value string)."""
    print(f"\n== {title}")
    width = max(len(r[0]) for r in rows)
    for label, value in rows:
        print(f"  {label.ljust(width)}  {value}")
