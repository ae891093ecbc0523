"""Bounded-memory benchmark: TOA reflectance of a multi-GB synthetic radiance cube through qgis_process.

Generates (once, in --workdir) an EMIT-like ENVI cube, default 2600 lines × 1242 samples × 285 bands
float32 (3.7 GB), with EMIT wavelengths/FWHM and an 11-band OBS, then measures in one run:
- a plain `gdal_translate` copy of the cube (reference time),
- `spectraltf:toareflectance` through scripts/qgis_process,
and prints wall time, peak RSS and the time ratio. Targets (issue 7): peak RSS ≤ 1 GB, time ≤ 2×.

    .venv/bin/python bench/toa_memory.py [--lines 2600] [--workdir /tmp/spectraltf-bench]
"""
import argparse
import os
import shutil
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from measure import QGIS_PROCESS, SHARED_DATA, report, run_measured  # noqa: E402


def envi_header(path, lines, samples, bands, extra):
    with open(path, "w") as f:
        f.write("ENVI\n")
        f.write(f"samples = {samples}\nlines = {lines}\nbands = {bands}\nheader offset = 0\n")
        f.write("file type = ENVI Standard\ndata type = 4\ninterleave = bil\nbyte order = 0\n")
        f.write("data ignore value = -9999\n")
        f.write(extra)


def make_cube(workdir, lines, samples):
    """EMIT-like radiance (Libya-4 mean spectrum × smooth spatial pattern) written line by line (BIL)."""
    rdn = os.path.join(workdir, f"rdn_{lines}x{samples}.img")
    obs = os.path.join(workdir, f"obs_{lines}x{samples}.img")
    if os.path.exists(rdn) and os.path.exists(obs):
        return rdn, obs
    from osgeo import gdal
    gdal.UseExceptions()

    src = gdal.Open(os.path.join(SHARED_DATA, "emit", "emit_l1b_rdn_libya4_25x22.img"))
    meta = src.GetMetadata("ENVI")
    spectra = src.ReadAsArray().reshape(src.RasterCount, -1)
    spectrum = spectra[:, spectra[0] != -9999].mean(axis=1).astype(np.float32)
    bands = spectrum.size
    envi_header(rdn[:-4] + ".hdr", lines, samples, bands,
                f"wavelength units = nanometers\nwavelength = {meta['wavelength']}\nfwhm = {meta['fwhm']}\n")
    ramp = (0.8 + 0.4 * np.linspace(0, 1, samples, dtype=np.float32))
    with open(rdn, "wb") as f:
        for i in range(lines):
            scale = ramp * (0.9 + 0.2 * np.float32(np.sin(i / 50.0) ** 2))
            line = spectrum[:, None] * scale[None, :]  # BIL: bands × samples per line
            if i % 97 == 0:
                line[:, :5] = -9999.0
            f.write(line.astype("<f4").tobytes())
    envi_header(obs[:-4] + ".hdr", lines, samples, 11, "")
    with open(obs, "wb") as f:
        for i in range(lines):
            line = np.zeros((11, samples), np.float32)
            line[4] = 25.0 + i * 1e-3  # to-sun zenith
            line[10] = 1.0104
            f.write(line.astype("<f4").tobytes())
    return rdn, obs


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=2600)
    ap.add_argument("--samples", type=int, default=1242)
    ap.add_argument("--workdir", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "spectraltf-bench"))
    ap.add_argument("--keep", action="store_true", help="keep the generated cube for the next run")
    args = ap.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    rdn, obs = make_cube(args.workdir, args.lines, args.samples)
    size_gb = os.path.getsize(rdn) / 1e9
    copy = os.path.join(args.workdir, "copy.tif")
    out = os.path.join(args.workdir, "toa.tif")
    for p in (copy, out):
        if os.path.exists(p):
            os.remove(p)
    t_copy, rss_copy, _ = run_measured(["gdal_translate", "-q", "-of", "GTiff", "-co", "BIGTIFF=YES", rdn, copy])
    os.remove(copy)
    t_toa, rss_toa, log = run_measured([QGIS_PROCESS, "run", "spectraltf:toareflectance", "--",
                                        f"INPUT={rdn}", f"OBSERVATION={obs}", f"OUTPUT={out}"])
    report(f"TOA reflectance of a {args.lines}×{args.samples}×285 float32 cube ({size_gb:.2f} GB)", [
        ("gdal_translate copy", f"{t_copy:7.1f} s   peak RSS {rss_copy:7.0f} MiB"),
        ("spectraltf:toareflectance", f"{t_toa:7.1f} s   peak RSS {rss_toa:7.0f} MiB"),
        ("time ratio (target ≤ 2.0)", f"{t_toa / t_copy:7.2f}"),
        ("peak RSS (target ≤ 1024 MiB)", f"{rss_toa:7.0f} MiB  {'OK' if rss_toa <= 1024 else 'OVER'}"),
    ])
    os.remove(out)
    if not args.keep:
        shutil.rmtree(args.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
