"""Benchmark ``spectraltf:segment``'s runtime against ukis-csmask's own ``CSmask`` (same ONNX model).

Each measurement runs in its own subprocess (peak RSS = that process's ``VmHWM``), with the
same ONNX Runtime thread count for both. For each real labelled chip in
``../shared/data/multispectral`` it prints: wall time of ours and of ``CSmask`` (each including the
model load), the ratio ours / package (target <= 1.0), peak RSS of both, class agreement with the
package and cloud / shadow IoU vs the labels.

Memory mode (``--memory``): a synthetic 10 000 × 10 000 × 6-band raster (uint16 reflectance × 1e-4,
written once to a temporary folder) is segmented and the peak RSS printed. The default model for
this mode is a tiny generated 6-band 1×1-convolution model (the streaming memory does not depend
on the network; use ``--model ukis-csmask-6b-l2a`` on a GPU to time the real one).

Usage::

    .venv/bin/python bench/segment_ukis.py [--threads N] [--device cpu|cuda|auto]
    .venv/bin/python bench/segment_ukis.py --memory [--size 10000] [--model ID]
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
SHARED = os.environ.get("SPECTRALTF_SHARED_DATA", os.path.join(os.path.dirname(REPO), "shared", "data"))
BAND_ORDER = ["blue", "green", "red", "nir", "swir16", "swir22"]
WAVELENGTHS = {"sentinel2": [490, 560, 665, 842, 1610, 2190], "landsat5": [485, 560, 660, 830, 1650, 2215],
               "landsat7": [477, 560, 661, 835, 1648, 2205]}


def _import_plugin():
    plugins = os.path.join(REPO, "build", "plugins")
    link = os.path.join(plugins, "spectral_transformers")
    if not os.path.exists(link):
        os.makedirs(plugins, exist_ok=True)
        os.symlink(REPO, link)
    sys.path.insert(0, plugins)


def peak_rss_mb():
    """Peak resident memory of this process in MB: VmHWM (reset by exec, unlike ru_maxrss, which
    Linux carries over from the forking parent), else ru_maxrss."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def write_chip(name, folder):
    from osgeo import gdal
    gdal.UseExceptions()

    img = np.load(os.path.join(SHARED, "multispectral", f"{name}.npz"))["img"]
    path = os.path.join(folder, f"{name}.tif")
    ds = gdal.GetDriverByName("GTiff").Create(path, img.shape[1], img.shape[0], 6, gdal.GDT_Float32)
    ds.SetGeoTransform((0, 30, 0, 0, 0, -30))
    for i in range(6):
        b = ds.GetRasterBand(i + 1)
        b.WriteArray(img[..., i])
        b.SetDescription(BAND_ORDER[i])
        b.SetMetadataItem("wavelength", str(WAVELENGTHS[name][i]))
        b.SetMetadataItem("wavelength_units", "Nanometers")
    ds = None
    return path


# ---- child processes ------------------------------------------------------------------------
def child_ours(args):
    _import_plugin()
    from osgeo import gdal
    gdal.UseExceptions()

    from spectral_transformers.runtime.models.segmentation import run_segmentation

    out = os.path.join(args.folder, f"{args.name}_ours.tif")
    t = time.perf_counter()
    res = run_segmentation([args.input], args.model, {"classes": out}, batch_size=args.batch,
                           device=args.device, threads=args.threads)
    dt = time.perf_counter() - t
    if args.save:
        np.save(args.save, gdal.Open(out).ReadAsArray())
    return {"seconds": dt, "peak_rss_mb": peak_rss_mb(), "provider": res.provider, "tiles": res.tiles_run}


def child_ukis(args):
    from ukis_csmask.mask import CSmask

    img = np.load(os.path.join(SHARED, "multispectral", f"{args.name}.npz"))["img"]
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if args.device == "cuda" else ["CPUExecutionProvider"]
    t = time.perf_counter()
    cs = CSmask(img, BAND_ORDER, product_level="l2a", intra_op_num_threads=args.threads, inter_op_num_threads=1,
                providers=providers, batch_size=args.batch)
    dt = time.perf_counter() - t
    if args.save:
        np.save(args.save, cs.csm[..., 0])
    return {"seconds": dt, "peak_rss_mb": peak_rss_mb(), "tiles": None}


def _child(kind, **kw):
    cmd = [sys.executable, os.path.abspath(__file__), "--child", kind]
    for k, v in kw.items():
        if v is not None:
            cmd += [f"--{k}", str(v)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def iou(pred, label):
    union = np.sum(pred | label)
    return np.sum(pred & label) / union if union else 1.0


def bench_chips(args):
    threads = args.threads or os.cpu_count()
    print(f"threads={threads} device={args.device} model={args.model} batch={args.batch}")
    print(f"{'chip':10s} {'ours s':>8s} {'ukis s':>8s} {'ratio':>6s} {'ours MB':>8s} {'ukis MB':>8s} "
          f"{'agree':>8s} {'cloud IoU (ukis)':>18s} {'shadow IoU (ukis)':>18s}")
    ratios = []
    with tempfile.TemporaryDirectory() as folder:
        for name in ("sentinel2", "landsat5", "landsat7"):
            src = write_chip(name, folder)
            a, b = os.path.join(folder, f"{name}_a.npy"), os.path.join(folder, f"{name}_b.npy")
            common = dict(name=name, folder=folder, threads=threads, device=args.device, batch=args.batch)
            ours = _child("ours", input=src, model=args.model, save=a, **common)
            ukis = _child("ukis", save=b, **common)
            mine, ref = np.load(a), np.load(b)
            msk = np.load(os.path.join(SHARED, "multispectral", f"{name}.npz"))["msk"][..., 0]
            ratio = ours["seconds"] / ukis["seconds"]
            ratios.append(ratio)
            print(f"{name:10s} {ours['seconds']:8.2f} {ukis['seconds']:8.2f} {ratio:6.2f} {ours['peak_rss_mb']:8.0f} "
                  f"{ukis['peak_rss_mb']:8.0f} {np.mean(mine == ref):8.4%} "
                  f"{iou(mine == 1, msk == 4):8.4f} ({iou(ref == 1, msk == 4):.4f}) "
                  f"{iou(mine == 2, msk == 0):8.4f} ({iou(ref == 2, msk == 0):.4f})")
    print(f"mean run-time ratio ours / ukis-csmask: {np.mean(ratios):.2f} (provider {ours['provider']}, "
          f"{ours['tiles']} tiles per chip)")


# ---- memory mode ------------------------------------------------------------------------------
def make_tiny_model(folder):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = np.random.default_rng(0).normal(0, 1, (3, 6, 1, 1)).astype(np.float32)
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["logits"])], "tiny",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 6, 256, 256])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3, 256, 256])],
                              [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    card = {"id": "bench-tiny-6b", "task": "segmentation", "name": "1x1 conv (memory bench)",
            "input": {"tile_size": 256, "bands": [{"name": b} for b in BAND_ORDER], "scale": 1.0},
            "output": {"kind": "logits", "classes": ["a", "b", "c"]}, "tiling": {"overlap": 0.2}}
    helper.set_model_props(model, {"model_card": json.dumps(card)})
    path = os.path.join(folder, "bench-tiny-6b.onnx")
    onnx.save(model, path)
    return path


def make_big_raster(path, size):
    from osgeo import gdal
    gdal.UseExceptions()

    ds = gdal.GetDriverByName("GTiff").Create(path, size, size, 6, gdal.GDT_UInt16,
                                              ["TILED=YES", "COMPRESS=DEFLATE", "BIGTIFF=YES"])
    ds.SetGeoTransform((0, 30, 0, 0, 0, -30))
    x = np.arange(size, dtype=np.float32)
    rows = 512
    for b in range(6):
        band = ds.GetRasterBand(b + 1)
        band.SetDescription(BAND_ORDER[b])
        band.SetScale(1e-4)
        band.SetNoDataValue(0)
        for y0 in range(0, size, rows):
            y = np.arange(y0, min(size, y0 + rows), dtype=np.float32)[:, None]
            block = 2000 + 1500 * np.sin(x / (200 + 37 * b)) * np.cos(y / 300.0) + 10 * b
            band.WriteArray(block.astype(np.uint16), 0, y0)
    ds = None


def child_memory(args):
    _import_plugin()
    from spectral_transformers.runtime.models.segmentation import run_segmentation

    from osgeo import gdal
    gdal.UseExceptions()

    base = peak_rss_mb()
    cache_mb = gdal.GetCacheMax() / 2**20
    t = time.perf_counter()
    res = run_segmentation([args.input], args.model, {"classes": os.path.join(args.folder, "big_cls.tif")},
                           batch_size=args.batch, device=args.device, threads=args.threads)
    return {"seconds": time.perf_counter() - t, "peak_rss_mb": peak_rss_mb(), "rss_before_mb": base,
            "tiles": res.tiles_run, "provider": res.provider, "gdal_cache_mb": cache_mb}


def bench_memory(args):
    with tempfile.TemporaryDirectory(dir=args.tmp) as folder:
        src = os.path.join(folder, "big.tif")
        t = time.perf_counter()
        make_big_raster(src, args.size)
        print(f"synthetic raster {args.size} x {args.size} x 6 (uint16, {os.path.getsize(src) / 1e6:.0f} MB on disk) "
              f"written in {time.perf_counter() - t:.0f} s")
        model = args.model if args.model != "ukis-csmask-6b-l2a" or args.real else make_tiny_model(folder)
        r = _child("memory", input=src, model=model, folder=folder, threads=args.threads or os.cpu_count(),
                   device=args.device, batch=args.batch)
        raw_gb = args.size * args.size * 6 * 4 / 1e9
        print(f"model {os.path.basename(str(model))}: {r['tiles']} tiles in {r['seconds']:.0f} s ({r['provider']}); "
              f"peak RSS {r['peak_rss_mb']:.0f} MB (process start {r['rss_before_mb']:.0f} MB; the raster is "
              f"{raw_gb:.1f} GB as float32; GDAL block cache limit {r['gdal_cache_mb']:.0f} MB)")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="ukis-csmask-6b-l2a")
    p.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (0 = all cores)")
    p.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    p.add_argument("--batch", type=int, default=1, help="tiles per inference call (CSmask's default is 1)")
    p.add_argument("--memory", action="store_true", help="synthetic 10 000 x 10 000 memory benchmark")
    p.add_argument("--real", action="store_true", help="memory mode: run --model instead of the tiny model")
    p.add_argument("--size", type=int, default=10000)
    p.add_argument("--tmp", default=None, help="folder for the synthetic raster (default: TMPDIR)")
    p.add_argument("--child", choices=["ours", "ukis", "memory"])
    for k in ("name", "folder", "input", "save"):
        p.add_argument(f"--{k}")
    args = p.parse_args(argv)
    args.threads = args.threads or None
    if args.child:
        fn = {"ours": child_ours, "ukis": child_ukis, "memory": child_memory}[args.child]
        args.threads = args.threads or os.cpu_count()
        print(json.dumps(fn(args)))
        return
    if args.memory:
        bench_memory(args)
    else:
        bench_chips(args)


if __name__ == "__main__":
    main()
