"""Bounded-memory benchmark: SpecTf cloud mask of a 1000×1000-pixel EMIT-like radiance scene.

Generates the scene with bench/toa_memory.py's generator (radiance + OBS, converted to TOA on the fly
by the algorithm), runs `spectraltf:cloudmask` through scripts/qgis_process and prints wall time,
spectra/s and peak RSS. Target (issues 3 and 7): peak RSS ≤ 1.5 GB.

    .venv/bin/python bench/cloudmask_memory.py [--lines 1000 --samples 1000]
"""
import argparse
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from measure import QGIS_PROCESS, report, run_measured  # noqa: E402
from toa_memory import make_cube  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=1000)
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--workdir", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "spectraltf-bench-cm"))
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    rdn, obs = make_cube(args.workdir, args.lines, args.samples)
    out = os.path.join(args.workdir, "mask.tif")
    seconds, rss, log = run_measured([QGIS_PROCESS, "run", "spectraltf:cloudmask", "--", f"INPUT={rdn}",
                                      f"OBSERVATION={obs}", "INPUT_TYPE=radiance", "DEVICE=cpu", f"OUTPUT={out}"])
    pixels = args.lines * args.samples
    report(f"SpecTf cloud mask, {args.lines}×{args.samples} px × 285 bands (radiance + OBS)", [
        ("wall time", f"{seconds:.1f} s ({pixels / seconds:.0f} spectra/s incl. TOA conversion and I/O)"),
        ("peak RSS (target ≤ 1536 MiB)", f"{rss:.0f} MiB  {'OK' if rss <= 1536 else 'OVER'}"),
    ])
    if not args.keep:
        shutil.rmtree(args.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
