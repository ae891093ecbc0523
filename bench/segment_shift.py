"""What the tiling guarantees, measured: blended = single window, and grid shifts vs the model's own
translation sensitivity (ukis-csmask, real labelled chips).

For each chip of ``../shared/data/multispectral/{sentinel2,landsat5,landsat7}.npz`` (512 × 512 × 6):

1. **shift, plugin**: ``spectraltf:segment``'s runtime on the chip and on the chip without its first
   ``--shift`` (37) rows and columns; the fraction of pixels of the common area whose class differs;
2. **shift, package**: the same with ukis-csmask's own ``CSmask`` (if installed) — the model's own
   translation sensitivity through its reference pipeline;
3. plugin vs package on the unshifted chip (the tiling reproduces the package's).

(Blended = one window over the whole image is tested in ``tests/test_segment.py`` on a small model:
the ukis ONNX files take 256-px tiles only.)

Run: ``.venv/bin/python bench/segment_shift.py`` (about 1–2 min on 2 cores).
"""
import argparse
import os
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from segment_ukis import BAND_ORDER, SHARED, _import_plugin, write_chip  # noqa: E402

_import_plugin()
from osgeo import gdal  # noqa: E402

from spectral_transformers.runtime.models.segmentation import run_segmentation  # noqa: E402


def classes(path, model, folder, name):
    out = os.path.join(folder, f"{name}_classes.tif")
    run_segmentation([path], model, {"classes": out}, batch_size=4, device="cpu")
    return gdal.Open(out).ReadAsArray()


def shifted_copy(src, dst, shift):
    ds = gdal.Open(src)
    gdal.Translate(dst, ds, srcWin=[shift, shift, ds.RasterXSize - shift, ds.RasterYSize - shift])
    return dst


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shift", type=int, default=37)
    p.add_argument("--model", default="ukis-csmask-6b-l2a")
    args = p.parse_args(argv)
    s = args.shift
    try:
        from ukis_csmask.mask import CSmask
    except ImportError:
        CSmask = None
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("sentinel2", "landsat5", "landsat7"):
            chip = write_chip(name, tmp)
            a = classes(chip, args.model, tmp, name)
            b = classes(shifted_copy(chip, os.path.join(tmp, f"{name}_s.tif"), s), args.model, tmp, name + "_s")
            plugin = float(np.mean(a[s:, s:] != b))
            package = None
            if CSmask is not None:
                img = np.load(os.path.join(SHARED, "multispectral", f"{name}.npz"))["img"]
                ca = CSmask(img, BAND_ORDER, product_level="l2a").csm[..., 0]
                cb = CSmask(np.ascontiguousarray(img[s:, s:]), BAND_ORDER, product_level="l2a").csm[..., 0]
                package = float(np.mean(ca[s:, s:] != cb))
            both = float(np.mean(a != ca)) if package is not None else None  # same chip, plugin vs package
            rows.append((name, plugin, package, both))
    print(f"model {args.model}, shift {s} px (rows and columns)")
    print(f"{'chip':10s} {'shift: plugin':>14s} {'shift: package':>15s} {'plugin vs package (unshifted)':>30s}")
    for name, plugin, package, both in rows:
        pk = f"{100 * package:.2f} %" if package is not None else "n/a"
        sw = f"{100 * both:.2f} %" if both is not None else "n/a"
        print(f"{name:10s} {100 * plugin:12.2f} % {pk:>15s} {sw:>30s}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
