"""Batch runner throughput: Dask workers vs sequential ``qgis_process`` calls (SpecTf cloud mask).

Scenes (written to a temporary folder; inputs read from ../shared/data):

- *small*: the real Libya-4 EMIT radiance clip (25 x 22 px, 285 bands) + its derived OBS, listed
  ``--small`` times under different names: QGIS start-up and model loading dominate each scene;
- *big*: ``--big`` EMIT-like scenes of ``--side`` x ``--side`` px (the real clip's spectra tiled),
  where inference dominates.

Runs, each a separate process as users run them (``python -m spectral_transformers.batch run
cloudmask ... DEVICE=cpu``; ``scripts/qgis_process run spectraltf:cloudmask``):

1. small scenes: batch with 1 worker, with 2 workers, and one ``qgis_process`` call per scene;
2. big scenes: in-process compute of one scene (warm model, 1 and 2 ONNX Runtime threads), batch
   with 1 worker x 2 threads and with 2 workers x 1 thread.

Prints scenes/s for each and the three ratios of issue 14:

- per-scene overhead / compute on a big scene, where overhead = (batch time excluding cluster
  start-up) / scenes - in-process compute of one scene with the same threads (target <= 0.10); also
  from the batch run alone: (wall per scene - the task's time on its worker) / that task time, which
  other processes' load skews much less;
- batch (2 workers, cluster start-up included) / sequential ``qgis_process`` on the small clip, in
  scenes/s (target >= 5);
- 2 workers x 1 thread / 1 worker x 2 threads on big scenes, in scenes/s excluding start-up
  (target >= 0.90, i.e. within 10 %).

Timings only; nothing is asserted. Other processes on the machine skew wall times: the load
average before and after is printed with the figures.

``.venv/bin/python bench/batch_throughput.py [--small 12] [--big 4] [--side 100]``
(about 6-10 min on 2 busy cores).
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "build" / "plugins"))
sys.path.insert(0, str(REPO / "tests"))
QGIS_PROCESS = REPO / "scripts" / "qgis_process"
_BENCH_ENV_DROP = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")  # slow NumPy down; unset for benchmarks only


def _env():
    env = {k: v for k, v in os.environ.items() if k not in _BENCH_ENV_DROP}
    env.update(QT_QPA_PLATFORM="offscreen", GDAL_PAM_ENABLED="NO", PYTHONDONTWRITEBYTECODE="1")
    return env


def _timed(cmd, **kw):
    t0 = time.perf_counter()
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=_env(), **kw)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"failed ({proc.returncode}): {' '.join(map(str, cmd))}\n{(proc.stdout + proc.stderr)[-3000:]}")
    return seconds, proc.stdout + proc.stderr


def _mean(recs, key):
    return sum(float(r.get(key) or 0.0) for r in recs) / max(1, len(recs))


def write_csv(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        f.write("NAME,INPUT,OBSERVATION\n")
        for row in rows:
            f.write(",".join(row) + "\n")
    return path


def batch(csv_path, out, workers):
    """(wall s incl. cluster start-up, s excluding it, manifest records) of one batch run."""
    wall, log = _timed([sys.executable, "-m", "spectral_transformers.batch", "run", "cloudmask", "--inputs", csv_path,
                        "--output-dir", out, "--workers", workers, "--dashboard-address", "127.0.0.1:0", "DEVICE=cpu"])
    inner = float(re.search(r"skipped in ([0-9.]+) s", log).group(1))
    recs = [json.loads(line) for line in open(os.path.join(out, "manifest.jsonl"), encoding="utf-8")]
    if any(r["status"] != "done" for r in recs):
        raise RuntimeError(f"batch scenes failed: {[r for r in recs if r['status'] != 'done']}")
    return wall, inner, recs


def sequential_qgis_process(scenes, out):
    os.makedirs(out, exist_ok=True)
    t0 = time.perf_counter()
    for name, rdn, obs in scenes:
        _timed([QGIS_PROCESS, "run", "spectraltf:cloudmask", "--", f"INPUT={rdn}", f"OBSERVATION={obs}", "DEVICE=cpu",
                f"OUTPUT={out}/{name}_output.tif", f"OUTPUT_PROBABILITY={out}/{name}_output_probability.tif"])
    return time.perf_counter() - t0


_COMPUTE = r"""
import sys, time, json
sys.path.insert(0, {plugins!r})
from spectral_transformers.batch import tasks
from spectral_transformers.runtime.monitor import Monitor
task = tasks.get_task("cloudmask")
def once(rdn, obs, out, threads):
    kw = tasks.parse(task, {{"INPUT": rdn, "OBSERVATION": obs, "DEVICE": "cpu", "OUTPUT": out + "_m.tif",
                            "OUTPUT_PROBABILITY": out + "_p.tif"}})
    t0 = time.perf_counter(); tasks.run(task, kw, tasks.config(threads), Monitor()); return time.perf_counter() - t0
res = {{}}
for threads in (1, 2):
    once({warm_rdn!r}, {warm_obs!r}, {tmp!r} + "/warm%d" % threads, threads)  # model load, sessions
    res[threads] = once({rdn!r}, {obs!r}, {tmp!r} + "/big%d" % threads, threads)
print(json.dumps(res))
"""


def compute_times(tmp, warm, big):
    code = _COMPUTE.format(plugins=str(REPO / "build" / "plugins"), warm_rdn=warm[1], warm_obs=warm[2],
                           rdn=big[1], obs=big[2], tmp=tmp)
    _, log = _timed([sys.executable, "-c", code])
    res = json.loads(log.strip().splitlines()[-1])
    return float(res["1"]), float(res["2"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--small", type=int, default=12, help="scenes of the small real clip")
    ap.add_argument("--big", type=int, default=4, help="EMIT-like scenes of --side px")
    ap.add_argument("--side", type=int, default=100)
    args = ap.parse_args()
    import batch_scenes
    from support import shared

    load0 = os.getloadavg()
    print(f"cores {os.cpu_count()}, load average {load0[0]:.2f} at start (other sessions share this machine)")
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        rdn, obs = str(shared(*batch_scenes.RDN)), str(shared(*batch_scenes.OBS))
        small = [(f"clip{i:02d}", rdn, obs) for i in range(args.small)]
        small_csv = write_csv(os.path.join(tmp, "small.csv"), small)
        big = [(f"big{i}",) + batch_scenes.emit_like(tmp, f"big{i}", args.side) for i in range(args.big)]
        big_csv = write_csv(os.path.join(tmp, "big.csv"), big)

        rows = {}
        for workers in (1, 2):
            wall, inner, recs = batch(small_csv, os.path.join(tmp, f"small_w{workers}"), workers)
            rows[f"small w{workers}"] = (wall, inner)
            print(f"small clip, batch {workers} worker(s): {args.small / wall:.3f} scenes/s "
                  f"({wall:.1f} s; {args.small / inner:.3f} scenes/s without the {wall - inner:.1f} s start-up; "
                  f"{_mean(recs, 'seconds'):.2f} s, {_mean(recs, 'cpu_seconds'):.2f} CPU-s per scene on its worker)",
                  flush=True)
        qp = sequential_qgis_process(small, os.path.join(tmp, "small_qp"))
        print(f"small clip, sequential qgis_process: {args.small / qp:.3f} scenes/s ({qp:.1f} s)", flush=True)

        c1, c2 = compute_times(tmp, small[0], big[0])
        print(f"big scene ({args.side} x {args.side} px) in-process compute: {c1:.2f} s with 1 thread, "
              f"{c2:.2f} s with 2 threads", flush=True)
        for workers in (1, 2):
            wall, inner, recs = batch(big_csv, os.path.join(tmp, f"big_w{workers}"), workers)
            rows[f"big w{workers}"] = (wall, inner, _mean(recs, "seconds"), _mean(recs, "cpu_seconds"))
            print(f"big scenes, batch {workers} worker(s) x {2 // workers} thread(s): {args.big / wall:.4f} scenes/s "
                  f"({wall:.1f} s; {args.big / inner:.4f} scenes/s without start-up; {_mean(recs, 'seconds'):.2f} s, "
                  f"{_mean(recs, 'cpu_seconds'):.2f} CPU-s per scene on its worker)", flush=True)

    per_scene = rows["big w1"][1] / args.big
    overhead = per_scene - c2
    r1 = overhead / c2
    # the same run's own split: what the batch adds around the task = wall per scene - task time on the worker
    own = per_scene - rows["big w1"][2]
    r1_own = own / rows["big w1"][2]
    r2 = (args.small / rows["small w2"][0]) / (args.small / qp)
    r3 = (args.big / rows["big w2"][1]) / (args.big / rows["big w1"][1])
    load1 = os.getloadavg()
    print("\n== ratios (issue 14 targets)")
    print(f"  per-scene overhead / compute, {args.side} x {args.side} px scene, 1 worker x 2 threads: "
          f"{overhead:.2f} s / {c2:.2f} s = {r1:.3f}  (target <= 0.10; compute measured in-process, another run)")
    print(f"    same batch run: wall per scene - task time on the worker = {own:.2f} s / {rows['big w1'][2]:.2f} s "
          f"= {r1_own:.3f}")
    print(f"  batch 2 workers / sequential qgis_process, small real clip (scenes/s, start-up included): "
          f"{r2:.2f}x  (target >= 5)")
    print(f"  2 workers x 1 thread / 1 worker x 2 threads, {args.side} x {args.side} px scenes (scenes/s): "
          f"{r3:.3f}  (target >= 0.90)")
    print(f"load average {load1[0]:.2f} at the end (start {load0[0]:.2f}); wall times include other sessions' load")


if __name__ == "__main__":
    main()
