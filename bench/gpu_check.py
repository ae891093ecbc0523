"""The Python part of bench/gpu_check.sh (run that script; see its header for the modes).

Steps, each timed and reported in one summary (a failed or skipped step does not stop the others):

1. environment: ONNX Runtime version and providers, the GPU, the SpecTf model, ../shared/data, GDAL;
2. CUDA parity tests (tests/test_cuda_parity.py: SpecTf probabilities vs CPU ≤ 1e-4, segmentation
   classes equal); in CPU mode they run CPU against CPU (SPECTRALTF_PARITY_DEVICE=cpu);
3. SpecTf model only: 1.6 M spectra (a full EMIT scene) through SpectfModel.predict, probability
   only, batches of ``--batch``; target < 30 s on one H100/H200-class GPU;
4. SpecTf end to end (needs GDAL and ../shared/data): the full-size synthetic EMIT scene of
   bench/spectf_scene.py (radiance + OBS) through run_spectf, and max |Δp| of its probabilities vs
   the CPU float32 reference on sample lines (≤ 1e-4);
5. segmentation of a 10 000 × 10 000 × 6 raster (bench/segment_ukis.py --memory; the ukis-csmask
   U-Net when installed, else its tiny 1×1-conv model).

Figures also go to build/bench/gpu_check.json.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
SHARED = os.environ.get("SPECTRALTF_SHARED_DATA", os.path.join(os.path.dirname(REPO), "shared", "data"))
SPECTF = os.path.join(REPO, "models", "spectf-cloud-v0.1.0.onnx")
EMIT_SPECTRA = 1242 * 1280
UKIS = "ukis-csmask-6b-l2a"


def _plugin():
    plugins = os.path.join(REPO, "build", "plugins")
    os.makedirs(plugins, exist_ok=True)
    link = os.path.join(plugins, "spectral_transformers")
    if not os.path.exists(link):
        os.symlink(REPO, link, target_is_directory=True)
    if plugins not in sys.path:
        sys.path.insert(0, plugins)


def _have(module):
    try:
        __import__(module)
        return True
    except ImportError:
        return False


def environment(args):
    _plugin()
    env = {"python": sys.version.split()[0], "gdal": _have("osgeo.gdal"), "onnx": _have("onnx"),
           "shared_data": os.path.isdir(os.path.join(SHARED, "emit")), "spectf_model": os.path.isfile(SPECTF)}
    try:
        import onnxruntime as ort

        env.update(onnxruntime=ort.__version__, providers=ort.get_available_providers())
    except ImportError as exc:
        env.update(onnxruntime=None, providers=[], error=str(exc))
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
        env["gpu"] = out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        env["gpu"] = None
    if args.device == "cuda" and env["spectf_model"] and "CUDAExecutionProvider" in env["providers"]:
        try:  # listed is not usable: the CUDA/cuDNN libraries must load
            import onnxruntime as ort

            sess = ort.InferenceSession(SPECTF, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
            env["cuda_session"] = sess.get_providers()[0]
        except Exception as exc:  # noqa: BLE001 - reported
            env["cuda_session"] = f"failed: {exc}"
    try:
        from spectral_transformers.runtime.models import registry

        registry.resolve(UKIS)
        env["ukis_model"] = True
    except Exception:  # noqa: BLE001 - not installed / not resolvable: the tiny model is used
        env["ukis_model"] = False
    return env


def parity_tests(args):
    env = dict(os.environ)
    if args.device == "cpu":
        env["SPECTRALTF_PARITY_DEVICE"] = "cpu"
    cmd = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "tests/test_cuda_parity.py"]
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=args.step_timeout)
    lines = [ln for ln in proc.stdout.strip().splitlines() if ln.strip()]
    summary = lines[-1] if lines else proc.stderr.strip()[-300:]
    failed = [ln for ln in lines if ln.startswith(("FAILED", "ERROR", "SKIPPED"))]
    return {"ok": proc.returncode == 0 and "skipped" not in summary, "returncode": proc.returncode,
            "summary": summary, "details": failed[:8], "seconds": time.perf_counter() - t,
            "output_tail": proc.stdout[-3000:] if proc.returncode else ""}


def _spectra_pool(wl, n=4096, seed=0):
    """(n, S) TOA reflectance: the real Libya-4 spectra mixed with a constructed cloud (needs GDAL and
    ../shared/data), else smooth constructed spectra."""
    rng = np.random.default_rng(seed)
    clip = os.path.join(SHARED, "emit", "emit_l1b_rdn_libya4_25x22.img")
    if os.path.isfile(clip) and _have("osgeo.gdal"):
        from spectf_scene import cloud_toa

        from osgeo import gdal

        from spectral_transformers.runtime.io import raster_io
        from spectral_transformers.runtime.models.spectf import keep_bands
        from spectral_transformers.runtime.physics import toa

        ds = gdal.Open(clip)
        conv = toa.ToaConverter.create(ds, os.path.join(SHARED, "emit", "emit_l1b_obs_libya4_25x22_derived.img"))
        win = raster_io.Window(0, 0, ds.RasterXSize, ds.RasterYSize)
        values, valid = raster_io.read_block(ds, win)
        rho = conv.convert(win, values)[:, valid]
        keep = keep_bands(conv.wavelength_nm)
        cloud = cloud_toa(conv.wavelength_nm, np.nanmean(rho, axis=1))[keep]
        clear = rho[keep].T
        f = rng.uniform(0, 1, (n, 1)) ** 2
        f[: n // 3] = 0
        return ((1 - f) * clear[rng.integers(0, clear.shape[0], n)] + f * cloud[None]).astype(np.float32), "real"
    x = np.linspace(0, 1, wl.size)[None]
    base = rng.uniform(0.05, 0.6, (n, 1)) + rng.uniform(-0.2, 0.2, (n, 1)) * x
    return np.clip(base, 0.01, 1.2).astype(np.float32), "constructed"


def spectf_model_only(args):
    _plugin()
    from spectral_transformers.runtime.models.spectf import SpectfModel

    t_load = time.perf_counter()
    model = SpectfModel(SPECTF, device=args.device)
    wl = model.trained_wavelengths_nm.astype(np.float32)
    pool, source = _spectra_pool(wl, max(args.batch, 4096))
    model.predict(pool[: min(args.batch, 256)], wl)  # warm-up: session, CUDA kernels
    model.predict(pool[: args.batch], wl)
    load = time.perf_counter() - t_load
    done, t = 0, time.perf_counter()
    while done < args.spectra:
        n = min(args.batch, args.spectra - done)
        model.predict(pool[:n], wl)
        done += n
    seconds = time.perf_counter() - t
    return {"spectra": done, "seconds": seconds, "spectra_s": done / seconds, "batch": args.batch,
            "provider": model.session.active_provider, "spectra_source": source, "load_warmup_s": load,
            "full_scene_s": EMIT_SPECTRA / (done / seconds)}


def spectf_end_to_end(args):
    if not (_have("osgeo.gdal") and os.path.isdir(os.path.join(SHARED, "emit"))):
        return {"skipped": "needs GDAL and ../shared/data (the scene is built from the real EMIT clip)"}
    _plugin()
    import spectf_scene

    from spectral_transformers.runtime.models import spectf, spectf_pipeline

    lines, samples = spectf_scene.FULL if args.device != "cpu" else spectf_scene.QUICK
    folder = os.path.join(REPO, "build", "bench")
    t = time.perf_counter()
    rdn, obs = spectf_scene.build_scene(folder, lines, samples, log=lambda m: None)
    build = time.perf_counter() - t
    out_dir = os.path.join(folder, f"gpu_out_{lines}x{samples}")
    os.makedirs(out_dir, exist_ok=True)
    outputs = {"mask": os.path.join(out_dir, "mask.tif"), "probability": os.path.join(out_dir, "prob.tif")}
    for p in outputs.values():
        if os.path.exists(p):
            os.remove(p)
    t = time.perf_counter()
    res = spectf_pipeline.run_spectf(rdn, SPECTF, outputs, observation=obs, input_type="radiance", device=args.device,
                            batch_size=args.batch)
    seconds = time.perf_counter() - t
    model = spectf.SpectfModel(SPECTF, device="cpu")
    ref, _, spectra = spectf_scene.reference(rdn, obs, spectf_scene.sample_lines(lines), model)
    worst, agree, cloud, nodata_ok, n_valid, _ = spectf_scene.check_outputs(
        outputs["mask"], outputs["probability"], ref, (lines, samples))
    return {"scene": f"{lines}x{samples}x285", "valid_pixels": res.valid_pixels, "seconds": seconds,
            "spectra_s": res.valid_pixels / seconds, "scene_build_s": build, "provider": res.provider,
            "max_abs_dp_vs_cpu_float32": worst, "reference_spectra": int(spectra.shape[0]),
            "mask_agreement": agree, "cloud_fraction": cloud, "nodata_ok": nodata_ok}


def segmentation(args, env):
    cmd = [sys.executable, os.path.join(HERE, "segment_ukis.py"), "--memory", "--size", str(args.seg_size),
           "--device", args.device, "--tmp", os.path.join(REPO, "build", "bench")]
    if env.get("ukis_model"):
        cmd += ["--real", "--batch", str(args.seg_batch)]
    if not (_have("osgeo.gdal") and _have("onnx")):
        return {"skipped": "needs GDAL and the onnx package"}
    os.makedirs(os.path.join(REPO, "build", "bench"), exist_ok=True)
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=args.step_timeout)
    seconds = time.perf_counter() - t
    if proc.returncode:
        return {"ok": False, "error": (proc.stdout + proc.stderr)[-2000:]}
    return {"ok": True, "size": args.seg_size, "model": UKIS if env.get("ukis_model") else "tiny 1x1 conv",
            "report": proc.stdout.strip().splitlines(), "seconds_incl_raster": seconds}


def _step(results, name, fn, *a):
    t = time.perf_counter()
    try:
        results[name] = fn(*a)
    except Exception as exc:  # noqa: BLE001 - reported in the summary; the other steps still run
        results[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    results[name].setdefault("step_s", time.perf_counter() - t)
    print(f"gpu_check: {name} done in {results[name]['step_s']:.0f} s", file=sys.stderr, flush=True)


def summary(results, args):
    env = results["environment"]
    rows = [("device", f"{args.device}; GPU {env.get('gpu') or 'none'}; onnxruntime {env.get('onnxruntime')} "
                       f"{env.get('providers')}" + (f"; CUDA session: {env['cuda_session']}"
                                                    if "cuda_session" in env else ""))]
    p = results.get("parity", {})
    rows.append(("CUDA parity tests" if args.device != "cpu" else "parity tests (CPU vs CPU: logic only)",
                 p.get("summary") or p.get("error") or p.get("skipped", "")))
    m = results.get("spectf_model_only", {})
    if "spectra_s" in m:
        ok = ("OK" if m["full_scene_s"] < 30 else "OVER") if args.device != "cpu" else "n/a on CPU"
        rows.append(("SpecTf model only", f"{m['spectra']:,} spectra in {m['seconds']:.1f} s = {m['spectra_s']:,.0f} "
                     f"spectra/s (batch {m['batch']}, {m['provider']}); a full scene (1.6 M) in "
                     f"{m['full_scene_s']:.0f} s, target < 30 s: {ok}"))
    else:
        rows.append(("SpecTf model only", m.get("error") or m.get("skipped", "")))
    e = results.get("spectf_end_to_end", {})
    if "seconds" in e:
        rows.append(("SpecTf end to end (run_spectf)", f"{e['scene']} radiance + OBS: {e['seconds']:.1f} s = "
                     f"{e['spectra_s']:,.0f} spectra/s; max |Δp| vs CPU float32 {e['max_abs_dp_vs_cpu_float32']:.1e} "
                     f"({'OK' if e['max_abs_dp_vs_cpu_float32'] <= 1e-4 else 'OVER'} ≤ 1e-4), mask agreement "
                     f"{100 * e['mask_agreement']:.3f} %"))
    else:
        rows.append(("SpecTf end to end (run_spectf)", e.get("error") or e.get("skipped", "")))
    s = results.get("segmentation", {})
    rows.append((f"segmentation {args.seg_size} × {args.seg_size}",
                 " | ".join(s.get("report", [])[-1:]) or s.get("error") or s.get("skipped", "")))
    rows.append(("total", f"{results['total_s']:.0f} s (budget 480 s)"))
    print("\n== GPU check summary")
    width = max(len(r[0]) for r in rows)
    for label, value in rows:
        print(f"  {label.ljust(width)}  {value}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--dry-run", action="store_true", help="report the environment and the plan; compute nothing")
    ap.add_argument("--spectra", type=int, help=f"model-only spectra (default {EMIT_SPECTRA:,}; CPU 20 000)")
    ap.add_argument("--batch", type=int, help="spectra per SpecTf call (default 4096; CPU 256)")
    ap.add_argument("--seg-size", type=int, help="segmentation raster edge (default 10 000; CPU 1 000)")
    ap.add_argument("--seg-batch", type=int, default=16, help="tiles per segmentation call")
    ap.add_argument("--step-timeout", type=int, default=300)
    ap.add_argument("--json", default=os.path.join(REPO, "build", "bench", "gpu_check.json"))
    args = ap.parse_args(argv)
    cpu = args.device == "cpu"
    args.spectra = args.spectra or (20000 if cpu else EMIT_SPECTRA)
    args.batch = args.batch or (256 if cpu else 4096)
    args.seg_size = args.seg_size or (1000 if cpu else 10000)
    t0 = time.perf_counter()
    results = {"environment": environment(args)}
    env = results["environment"]
    if args.dry_run:
        print(json.dumps(env, indent=1))
        plan = ["parity tests: tests/test_cuda_parity.py",
                f"SpecTf model only: {args.spectra:,} spectra, batch {args.batch}" + (
                    "" if env["spectf_model"] else f" — NOT POSSIBLE: {SPECTF} missing (make setup)"),
                "SpecTf end to end: " + ("full-size scene from ../shared/data" if env["shared_data"] and env["gdal"]
                                         else "skipped (needs GDAL and ../shared/data)"),
                f"segmentation {args.seg_size} x {args.seg_size}: " + (UKIS if env["ukis_model"] else "tiny model")]
        print("gpu_check plan:\n  " + "\n  ".join(plan))
        return results
    _step(results, "parity", parity_tests, args)
    if env["spectf_model"]:
        _step(results, "spectf_model_only", spectf_model_only, args)
        _step(results, "spectf_end_to_end", spectf_end_to_end, args)
    else:
        results["spectf_model_only"] = results["spectf_end_to_end"] = {"skipped": f"{SPECTF} missing (make setup)"}
    _step(results, "segmentation", segmentation, args, env)
    results["total_s"] = time.perf_counter() - t0
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=1, default=str)
    summary(results, args)
    return results


if __name__ == "__main__":
    main()
