"""SpecTf CPU throughput: plugin runtime (ONNX Runtime) vs the upstream PyTorch deploy path.

Paths, each in its own subprocess (separate peak RSS), on the same spectra (real EMIT Libya-4 TOA
reflectance + synthetic cloudy mixes, 268 bands):

- ``onnx``: what the plugin runs — ``runtime.models.spectf.SpectfModel.predict`` on
  ``models/spectf-cloud-v0.1.0.onnx`` (CPU; its probability-only variant), fetching ``probability``; several batch sizes, best kept;
- ``upstream``: SpecTf's ``deploy_pt.py`` recipe — model cast to bfloat16, TorchScript
  (``jit`` + ``optimize_for_inference``), ``inference_mode``, batch 4096;
- ``eager32``: the same upstream forward in float32, eager.

Both PyTorch paths run the published weights through upstream's forward semantics (LayerNorm per
q/k/v, ``MultiheadAttention`` with its default ``need_weights=True``), see ``_upstream_forward``.

Prints spectra/s (wall clock, and per CPU-second, which is robust when other processes share the
cores), peak RSS, the speed-ups of the plugin path and max |Δprob| of bf16 and ONNX vs float32 on
the cloudy spectra. Timings only; nothing is asserted.

``.venv/bin/python bench/spectf_speed.py [--batches 32,64,128,256] [--seconds 3] [--upstream-batches 1]
[--threads N]`` (default run ≈ 1–3 min on 2 cores).
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "build" / "plugins"))
MODEL = REPO / "models" / "spectf-cloud-v0.1.0.onnx"
WEIGHTS = REPO.parent / "shared" / "data" / "spectf" / "spectf_cloud_v0.1.0_weights.pt"


def spectra(n):
    """(n, 268) float32 spectra (Libya-4 clear + synthetic cloudy, tiled), wavelengths, cloudy set."""
    import numpy as np

    from spectral_transformers.training.spectf import keep_bands
    from spectral_transformers.training.spectf_samples import cloudy_mixes, libya4_toa

    rho, wl, _ = libya4_toa()
    keep = keep_bands(wl)
    cloudy, _ = cloudy_mixes(rho, wl, fractions=(0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 0.6, 1.0))
    base = np.concatenate([rho, cloudy])[:, keep]
    reps = -(-n // len(base))
    return (np.ascontiguousarray(np.tile(base, (reps, 1))[:n], dtype=np.float32),
            wl[keep].astype(np.float32), np.ascontiguousarray(cloudy[:, keep], dtype=np.float32))


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def worker_onnx(args):
    from spectral_transformers.runtime.models.spectf import SpectfModel

    model = SpectfModel.load(str(MODEL), device="cpu", threads=args.threads)  # the cloud-mask path
    b = int(args.batches)  # one batch size per process, so peak RSS belongs to it
    x, wl, cloudy = spectra(b)
    model.predict(x[:b], wl)
    n, t0, c0 = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - t0 < args.seconds:
        model.predict(x[:b], wl)
        n += b
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    prob = model.predict(cloudy, wl)[0]
    return {"spectra_per_s": n / wall, "spectra_per_cpu_s": n / cpu, "batch": b, "cloudy_prob": prob.tolist()}


def _upstream_forward(model):
    """A module running the weights the way upstream's ``SpecTfEncoder.forward`` does: LayerNorm
    evaluated separately for query, key and value and ``MultiheadAttention`` called with its default
    ``need_weights=True`` (head-averaged weights computed and discarded), then max + head."""
    import torch

    class Upstream(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, tokens):
            x = self.m.spectral_embed(tokens)
            for layer in self.m.layers:
                x = layer.attention.attention(layer.norm1(x), layer.norm1(x), layer.norm1(x))[0]
                x = layer.ff(layer.norm2(x))
            return self.m.head(torch.max(x, dim=1)[0])

    return Upstream(model).eval()


def worker_torch(args, upstream):
    dtype_name = "bfloat16" if upstream else "float32"
    import torch

    from spectral_transformers.training.spectf import load_weights

    model = load_weights(WEIGHTS).to(getattr(torch, dtype_name))
    torch.set_num_threads(args.threads)
    batch = 4096 if upstream else args.eager_batch
    n_batches = args.upstream_batches if upstream else 2
    x, wl, cloudy = spectra(batch)
    tokens = model.tokens(x, wl).to(model.head.weight.dtype)
    if upstream:  # deploy_pt.py: torch.jit.optimize_for_inference(torch.jit.script(model)), batch 4096
        with torch.no_grad():
            run = torch.jit.optimize_for_inference(torch.jit.trace(_upstream_forward(model), tokens[:64]))
    else:
        run = _upstream_forward(model)
    with torch.inference_mode():
        run(tokens[:256])  # warm-up (and TorchScript profiling runs)
        run(tokens[:256])
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(n_batches):
            torch.softmax(run(tokens), dim=1)[:, 1].float()
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
        prob = torch.softmax(run(model.tokens(cloudy, wl).to(tokens.dtype)), 1)[:, 1].float().numpy()
    return {"spectra_per_s": batch * n_batches / elapsed, "spectra_per_cpu_s": batch * n_batches / cpu, "batch": batch, "cloudy_prob": prob.tolist()}


def run_worker(name, args, batch=None):
    cmd = [sys.executable, __file__, "--worker", name, "--threads", str(args.threads), "--batches", str(batch),
           "--seconds", str(args.seconds), "--upstream-batches", str(args.upstream_batches),
           "--eager-batch", str(args.eager_batch)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{name} worker failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batches", default="16,64,256", help="ONNX Runtime batch sizes to try")
    p.add_argument("--seconds", type=float, default=3.0, help="timing window per ONNX batch size")
    p.add_argument("--upstream-batches", type=int, default=1, help="timed batches of 4096 on the upstream path")
    p.add_argument("--eager-batch", type=int, default=1024)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        out = worker_onnx(args) if args.worker == "onnx" else worker_torch(args, args.worker == "upstream")
        out["peak_rss_mb"] = peak_rss_mb()
        print(json.dumps(out))
        return 0
    import numpy as np

    for need in (MODEL, WEIGHTS):
        if not need.exists():
            raise SystemExit(f"missing {need} (run `make setup`)")
    print(f"SpecTf CPU throughput, {args.threads} threads, {os.cpu_count()} cores, 268 bands")
    by_batch = {int(b): run_worker("onnx", args, int(b)) for b in args.batches.split(",")}
    res = {"onnx": max(by_batch.values(), key=lambda r: r["spectra_per_s"])}
    res.update({name: run_worker(name, args) for name in ("upstream", "eager32")})
    labels = {"onnx": "plugin: ONNX Runtime float32", "upstream": "upstream: TorchScript bf16",
              "eager32": "PyTorch eager float32"}
    for name, r in res.items():
        print(f"  {labels[name]:<30} {r['spectra_per_s']:8.0f} spectra/s wall, {r['spectra_per_cpu_s']:6.0f} per CPU-s"
              f"  (batch {r['batch']:>4})  peak RSS {r['peak_rss_mb']:6.0f} MB")
    print("  ONNX Runtime by batch: " + ", ".join(
        f"{b}: {r['spectra_per_s']:.0f}/s ({r['spectra_per_cpu_s']:.0f}/CPU-s, {r['peak_rss_mb']:.0f} MB)"
        for b, r in by_batch.items()))
    for key, what in (("spectra_per_s", "wall clock"), ("spectra_per_cpu_s", "CPU time")):
        o, up, ref = res["onnx"][key], res["upstream"][key], res["eager32"][key]
        print(f"  speed-up plugin vs upstream ({what}): {o / up:.1f}x; vs eager float32: {o / ref:.1f}x")
    p32 = np.array(res["eager32"]["cloudy_prob"])
    print(f"  max |Δprob| on {p32.size} cloudy spectra vs float32: bf16 upstream "
          f"{np.max(np.abs(np.array(res['upstream']['cloudy_prob']) - p32)):.2e}, "
          f"ONNX {np.max(np.abs(np.array(res['onnx']['cloudy_prob']) - p32)):.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
