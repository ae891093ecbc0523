"""SpecTf CPU throughput: the plugin runtime vs upstream's own deploy path vs the float32 GEMM floor.

Everything is measured in ONE run, each part in its own subprocess (own peak RSS), on the same
spectra (real EMIT Libya-4 TOA reflectance + constructed cloudy mixes, 268 bands):

- ``gemm``: a 2048² float32 matrix product with NumPy (OpenBLAS), GFLOP/s on all threads and per
  CPU-second on one, measured before and after the models (the machine's load drifts), with the
  auto-detected OpenBLAS kernel and with ``SKYLAKEX`` (``--gemm-coretypes``; OpenBLAS may pick a
  slower kernel for a CPU it does not know, and the fastest counts); with SpecTf's FLOPs per
  spectrum, counted from the MatMul/Gemm nodes of the exported graph at S = 268, this gives the
  float32 floor in spectra/s;
- ``plugin``: what the cloud mask runs — ``runtime.models.spectf.SpectfModel.predict`` on
  ``models/spectf-cloud-v0.1.0.onnx`` (CPU: the native forward pass in C where the kernel is built
  with AVX-512 and the card names its weights; else its pre-attention graph → the native attention
  kernel → its post-attention graph; else its probability-only variant; the line after it says
  which), per batch size: warm-up
  at that size, then timed batches for ``--seconds`` (at least 3), median; once before and once
  after the upstream paths, mean of the two;
- ``upstream``: upstream's OWN code — ``spectf.model.SpecTfEncoder`` imported from a checkout of the
  SpecTf repository at bench time (never committed here) — with its ``deploy_pt.py`` recipe: model
  and band centres cast to bfloat16, ``torch.jit.optimize_for_inference(torch.jit.script(model))``,
  ``inference_mode``, batch 4096 (its config), warmed up at 4096, ``--upstream-batches`` timed
  batches, median;
- ``upstream32``: the same upstream module in float32, eager: the reference probabilities;
- ``levers``: the levers (the native forward pass; attention formulation: ONNX Runtime's fused node,
  stock operators, the native kernel between ONNX graphs and its AVX2 path; thread layout, batch shape, graph optimisation level, denormals,
  spinning, int8, float16), interleaved in one process, median of the rounds;
- ``attention``: one core's µs per spectrum in the model, its attention node, the stock operators,
  the native kernel, and the model with the native kernel between ONNX graphs and with the native
  forward pass.

Prints spectra/s (wall clock, and per CPU-second, which is steadier when other processes share the
cores), the ratios plugin / upstream and plugin / floor, the lever table, and the fidelity (max |Δp|,
label flips at the card threshold) of the plugin float32 and upstream bf16 paths vs upstream float32.
Timings only; nothing is asserted.

Upstream source (``--upstream-src``): a checkout of https://github.com/emit-sds/SpecTf or a git
directory of it (its ``spectf/`` folder is extracted into ``build/upstream/``); default
``build/upstream/SpecTf``, else ``git clone --depth 1`` into it; when neither works the upstream
ratio is skipped with "upstream baseline not run: …".

Run it with OpenBLAS' core-type overrides removed (they slow NumPy), in this command only::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python bench/spectf_speed.py \\
        [--upstream-src PATH] [--batches 64,1024] [--seconds 4] [--upstream-batches 3] [--threads N]

(≈ 5 min on 2 quiet cores; ≈ 10 under heavy load.) Upstream's bf16 path at batch 4096 needs ≈ 6 GB.
The GEMM suffers more than ONNX Runtime from other processes on the same cores, so a floor ratio
measured under load is too high: judge it on a quiet machine.
"""
import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "build" / "plugins"))
MODEL = REPO / "models" / "spectf-cloud-v0.1.0.onnx"
DATA = REPO.parent / "shared" / "data" / "spectf"
WEIGHTS = DATA / "spectf_cloud_v0.1.0_weights.pt"
CONFIG = DATA / "spectf_cloud_config.yml"
UPSTREAM_URL = "https://github.com/emit-sds/SpecTf"
UPSTREAM_DIR = REPO / "build" / "upstream"
THRESHOLD = 0.51  # v0.1.0 card / upstream deploy default
GEMM_N = 2048


class UpstreamUnavailable(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------
def spectra(n):
    """(n, 268) float32 bench spectra (tiled), wavelengths (268,), fidelity set (real + constructed)."""
    import numpy as np

    from spectral_transformers.training.spectf import keep_bands
    from spectral_transformers.training.spectf_samples import cloudy_mixes, libya4_toa

    rho, wl, _ = libya4_toa()
    keep = keep_bands(wl)
    cloudy, _ = cloudy_mixes(rho, wl, fractions=(0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 0.45, 0.6, 0.8, 1.0))
    fidelity = np.concatenate([rho, cloudy])[:, keep]
    reps = -(-n // len(fidelity))
    return (np.ascontiguousarray(np.tile(fidelity, (reps, 1))[:n], dtype=np.float32),
            wl[keep].astype(np.float32), np.ascontiguousarray(fidelity, dtype=np.float32), len(rho))


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def timed(fn, n_items, seconds=0.0, min_runs=3):
    """Median wall and CPU (process) rates of repeated ``fn()`` calls, items per second."""
    import numpy as np

    walls, cpus, t_end = [], [], time.perf_counter() + seconds
    while len(walls) < min_runs or time.perf_counter() < t_end:
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return {"spectra_per_s": n_items / float(np.median(walls)), "spectra_per_cpu_s": n_items / float(np.median(cpus)),
            "runs": len(walls)}


# ---------------------------------------------------------------------------------------------
# FLOPs and the GEMM floor
# ---------------------------------------------------------------------------------------------
def graph_flops(path, bands=268):
    """FLOPs per spectrum of the MatMul/Gemm nodes of ``path`` (2·M·K·N each) at N = 1, S = ``bands``,
    from ONNX shape inference; returns (total, {node name: flops})."""
    import numpy as np
    import onnx
    from onnx import shape_inference

    model = onnx.load(str(path))
    for vi in model.graph.input:
        for dim, value in zip(vi.type.tensor_type.shape.dim, [1, bands] if vi.name == "spectra" else [bands]):
            dim.Clear()
            dim.dim_value = value
    model = shape_inference.infer_shapes(model, data_prop=True)
    g = model.graph
    shapes = {vi.name: [d.dim_value for d in vi.type.tensor_type.shape.dim]
              for vi in list(g.value_info) + list(g.input) + list(g.output)}
    shapes.update({t.name: list(t.dims) for t in g.initializer})
    parts = {}
    for node in g.node:
        if node.op_type in ("MatMul", "Gemm"):
            a, out = shapes.get(node.input[0]), shapes.get(node.output[0])
            if not a or not out or 0 in a or 0 in out:
                raise ValueError(f"shape inference left {node.name} without static shapes")
            trans_a = any(x.name == "transA" and x.i for x in node.attribute)
            k = a[-2] if trans_a else a[-1]
            parts[node.name] = 2 * int(np.prod(out)) * int(k)
    return sum(parts.values()), parts


def worker_gemm(args):
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.standard_normal((GEMM_N, GEMM_N), dtype=np.float32)
    b = rng.standard_normal((GEMM_N, GEMM_N), dtype=np.float32)
    for _ in range(2):
        a @ b
    r = timed(lambda: a @ b, 1, seconds=2.0, min_runs=5)
    flops = 2.0 * GEMM_N ** 3
    return {"gflops": r["spectra_per_s"] * flops / 1e9, "gflops_per_cpu_s": r["spectra_per_cpu_s"] * flops / 1e9,
            "runs": r["runs"], "core": os.environ.get("OPENBLAS_CORETYPE") or "auto-detected"}


def gemm_floor(args):
    """GEMM GFLOP/s with each of ``--gemm-coretypes`` (OpenBLAS kernels; ``default`` = auto-detected,
    a kernel the CPU lacks is skipped): {coretype: (threads-wide result, 1-thread result)}."""
    out = {}
    for core in args.gemm_coretypes.split(","):
        env = {} if core == "default" else {"OPENBLAS_CORETYPE": core}
        try:
            out[core] = (run_worker("gemm", args, env=env), run_worker("gemm", args, threads=1, env=env))
        except RuntimeError:
            print(f"  GEMM with OpenBLAS core {core}: failed (kernel not supported here?), skipped")
    return out


# ---------------------------------------------------------------------------------------------
# plugin runtime
# ---------------------------------------------------------------------------------------------
def worker_plugin(args):
    from spectral_transformers.runtime.models.spectf import SpectfModel

    model = SpectfModel.load(str(MODEL), device="cpu", threads=args.threads)  # the cloud-mask path
    b = int(args.batches)  # one batch size per process, so peak RSS belongs to it
    x, wl, fidelity, _ = spectra(b)
    model.predict(x, wl)
    model.predict(x, wl)
    out = timed(lambda: model.predict(x, wl), b, seconds=args.seconds)
    graph = ("native forward pass" if model.native_forward() else "native attention" if model.native_attention()
             else os.path.basename(model.probability_session().path))
    out.update(batch=b, prob=model.predict(fidelity, wl)[0].tolist(), graph=graph, engine=model.attention_engine())
    return out


# ---------------------------------------------------------------------------------------------
# upstream's own code
# ---------------------------------------------------------------------------------------------
def _git(*cmd, **kw):
    return subprocess.run(["git", *cmd], capture_output=True, text=True, timeout=kw.pop("timeout", 60),
                          env=dict(os.environ, GIT_TERMINAL_PROMPT="0"), **kw)


def upstream_package(src):
    """The ``spectf`` package folder of upstream's code and a description (commit); raises
    :class:`UpstreamUnavailable` with the reason when there is none."""
    if src is None:
        src = UPSTREAM_DIR / "SpecTf"
        if not (src / "spectf" / "model.py").is_file():
            UPSTREAM_DIR.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(src, ignore_errors=True)
            try:
                r = _git("clone", "--depth", "1", "--quiet", UPSTREAM_URL, str(src), timeout=180)
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise UpstreamUnavailable(f"no checkout in {src} and `git clone {UPSTREAM_URL}` failed ({exc}); "
                                          f"pass --upstream-src") from None
            if r.returncode != 0:
                raise UpstreamUnavailable(f"no checkout in {src} and `git clone {UPSTREAM_URL}` failed "
                                          f"({(r.stderr.strip().splitlines() or ['?'])[-1]}); pass --upstream-src")
    src = Path(src)
    if (src / "spectf" / "model.py").is_file():
        r = _git("-C", str(src), "rev-parse", "--short=12", "HEAD")
        return src / "spectf", f"checkout {src.name} @ {r.stdout.strip() or 'unknown commit'}"
    if (src / "HEAD").is_file() and (src / "objects").is_dir():  # a (bare) git directory
        r = _git("--git-dir", str(src), "rev-parse", "--short=12", "HEAD")
        if r.returncode != 0:
            raise UpstreamUnavailable(f"{src} is not a readable git directory ({r.stderr.strip()[:200]})")
        commit = r.stdout.strip()
        target = UPSTREAM_DIR / f"SpecTf-{commit}"
        if not (target / "spectf" / "model.py").is_file():
            target.mkdir(parents=True, exist_ok=True)
            archive = subprocess.run(["git", "--git-dir", str(src), "archive", "HEAD", "spectf"], capture_output=True)
            if archive.returncode != 0:
                raise UpstreamUnavailable(f"{src} has no spectf/ folder at HEAD")
            subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
        return target / "spectf", f"git directory @ {commit}"
    raise UpstreamUnavailable(f"{src} holds neither spectf/model.py nor a git directory of the SpecTf repository")


def import_upstream(package_dir):
    """``SpecTfEncoder`` from upstream's ``spectf/model.py``. The package's ``__init__`` asks
    importlib.metadata for the installed ``spectf`` version, so the package is registered as a
    bare namespace over that folder and only ``spectf.model`` (upstream's file, unchanged) runs."""
    import importlib

    pkg = types.ModuleType("spectf")
    pkg.__path__ = [str(package_dir)]
    sys.modules["spectf"] = pkg
    return importlib.import_module("spectf.model").SpecTfEncoder


def _upstream_model(encoder_cls, wl, dtype):
    """Upstream's model built as ``deploy_pt.py`` does, with the published weights."""
    import torch
    import yaml

    arch = yaml.safe_load(CONFIG.read_text())["architecture"] if CONFIG.exists() else \
        {"num_heads": 8, "dim_proj": 64, "dim_ff": 64, "agg": "max"}
    banddef = torch.tensor(wl, dtype=dtype)
    model = encoder_cls(banddef=banddef, dim_output=2, num_heads=arch["num_heads"], dim_proj=arch["dim_proj"],
                        dim_ff=arch["dim_ff"], agg=arch["agg"], use_residual=False, num_layers=1).to("cpu", dtype=dtype)
    model.load_state_dict(torch.load(str(WEIGHTS), map_location="cpu", weights_only=True))
    return model.eval()


def worker_upstream(args, bf16):
    import torch

    torch.set_num_threads(args.threads)
    encoder_cls = import_upstream(Path(args.upstream_pkg))
    dtype = torch.bfloat16 if bf16 else torch.float32
    batch = 4096 if bf16 else args.eager_batch
    x, wl, fidelity, _ = spectra(batch)
    model = _upstream_model(encoder_cls, wl, dtype)
    if bf16:  # deploy_pt.py
        model = torch.jit.optimize_for_inference(torch.jit.script(model))
    tokens = torch.from_numpy(x).to(dtype).unsqueeze(-1)  # (b, s, 1), as RasterDatasetTOA yields

    def run(t):
        return torch.nn.functional.softmax(model(t), dim=1).to(torch.float32).numpy()[:, 1]

    with torch.inference_mode():
        for _ in range(3 if bf16 else 1):  # TorchScript profiles and re-optimises on the first calls
            run(tokens)
        out = timed(lambda: run(tokens), batch, min_runs=args.upstream_batches if bf16 else 2)
        prob = run(torch.from_numpy(fidelity).to(dtype).unsqueeze(-1))
    out.update(batch=batch, prob=prob.tolist())
    return out


# ---------------------------------------------------------------------------------------------
# ONNX Runtime levers
# ---------------------------------------------------------------------------------------------
LEVERS = (  # (label, attention form, layout, spectra per run, optimisation level, extra session config)
    ("explicit MatMul/Softmax, 1 thread per core, 4/run (previous)", "explicit", "per-core", 4, "ALL", {}),
    ("fused MultiHeadAttention, 1 thread per core, 4/run (ORT only)", "fused", "per-core", 4, "ALL", {}),
    ("native forward pass in C, 32/run (default with AVX-512)", "forward", "per-core", 32, "ALL", {}),
    ("native forward pass, 8/run", "forward", "per-core", 8, "ALL", {}),
    ("native attention kernel between 2 ONNX graphs, 4/run", "native", "per-core", 4, "ALL", {}),
    ("native attention between graphs, 8/run (AVX2, no weights file)", "native", "per-core", 8, "ALL", {}),
    ("native attention between graphs, 16/run", "native", "per-core", 16, "ALL", {}),
    ("native, its AVX2 + FMA path, 8/run", "native-avx2", "per-core", 8, "ALL", {}),
    ("per-head MatMul/Softmax chains, 1 thread per core, 1/run", "per-head", "per-core", 1, "ALL", {}),
    ("per-head, 1 thread per core, 2/run", "per-head", "per-core", 2, "ALL", {}),
    ("per-head, 1 thread per core, 4/run", "per-head", "per-core", 4, "ALL", {}),
    ("fused, 1 thread per core, 16/run", "fused", "per-core", 16, "ALL", {}),
    ("fused, 1 thread per core, 64/run", "fused", "per-core", 64, "ALL", {}),
    ("fused, one session x all threads, 256/run", "fused", "intra-op", 256, "ALL", {}),
    ("explicit, one session x all threads, 256/run", "explicit", "intra-op", 256, "ALL", {}),
    ("fused, graph optimisation EXTENDED", "fused", "per-core", 4, "EXTENDED", {}),
    ("fused, graph optimisation BASIC", "fused", "per-core", 4, "BASIC", {}),
    ("fused, denormals as zero", "fused", "per-core", 4, "ALL", {"session.set_denormal_as_zero": "1"}),
    ("fused, intra-op spinning on", "fused", "intra-op", 256, "ALL", {"session.intra_op.allow_spinning": "1"}),
    ("fused, int8 weights (ONNX Runtime quantize_dynamic, QInt8)", "fused-int8", "per-core", 4, "ALL", {}),
    ("fused, float16 weights + activations (AVX512-FP16 if any)", "fused-fp16", "per-core", 4, "ALL", {}),
)


def worker_levers(args):
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np
    import onnxruntime as ort

    from spectral_transformers.training.spectf import load_weights
    from spectral_transformers.training.spectf_export import write_probability_variant

    n = 256
    x, wl, fidelity, _ = spectra(n)
    card = json.loads(MODEL.with_suffix(".json").read_text())
    tmp = Path(tempfile.mkdtemp(prefix="spectf-levers-"))
    model = load_weights(WEIGHTS)
    graphs = {form: str(write_probability_variant(MODEL, card, model, form, target=tmp / f"{form}.onnx"))
              for form in ("explicit", "fused", "per-head")}
    from onnxruntime.quantization import QuantType, quantize_dynamic  # the int8 lever: weights only

    graphs["fused-int8"] = str(tmp / "fused-int8.onnx")
    quantize_dynamic(graphs["fused"], graphs["fused-int8"], weight_type=QuantType.QInt8,
                     op_types_to_quantize=["MatMul", "Gemm"])
    from onnxruntime.transformers.float16 import convert_float_to_float16  # the fp16 lever (float32 I/O)

    import onnx
    graphs["fused-fp16"] = str(tmp / "fused-fp16.onnx")
    onnx.save(convert_float_to_float16(onnx.load(graphs["fused"]), keep_io_types=True), graphs["fused-fp16"])
    from spectral_transformers.runtime.native import attention as native_attention

    kernel = native_attention.kernel()
    split = {key: str(MODEL.parent / card["variants"][key]) for key in ("pre_attention", "post_attention")
             if key in card.get("variants", {})}
    threads = args.threads
    pool = ThreadPoolExecutor(max_workers=threads)

    def session(form, level, intra, extra):
        o = ort.SessionOptions()
        o.intra_op_num_threads, o.inter_op_num_threads, o.log_severity_level = intra, 1, 3
        o.graph_optimization_level = getattr(ort.GraphOptimizationLevel, f"ORT_ENABLE_{level}")
        o.add_session_config_entry("session.intra_op.allow_spinning", "0")
        for k, v in extra.items():
            o.add_session_config_entry(k, v)
        return ort.InferenceSession(graphs[form], o, providers=["CPUExecutionProvider"])

    class Native:  # pre-attention graph → native kernel → post-attention graph, as SpectfModel runs it
        def __init__(self, level, extra, isa):
            graphs.update(split)
            self.pre, self.post = (session(key, level, 1, extra) for key in ("pre_attention", "post_attention"))
            self.isa = isa

        def run(self, names, feeds):
            n, s = feeds["spectra"].shape
            q, k, v = (a.reshape(n, s, -1) for a in self.pre.run(["q", "k", "v"], feeds))
            return self.post.run(names, {"attention_output": kernel.run(q, k, v, card["attention_heads"], isa=self.isa)})

    class Forward:  # the whole forward pass in C (runtime/native/forward.py), as SpectfModel runs it
        def __init__(self):
            from spectral_transformers.runtime.native import forward

            self.f = forward.load(MODEL.parent / card["variants"]["native_weights"], kernel, card["attention_heads"])

        def run(self, names, feeds):
            return [self.f.run(feeds["spectra"], feeds["wavelengths"])]

    runs, reference = [], None
    for label, form, layout, chunk, level, extra in LEVERS:
        if form == "forward":
            if kernel is None or kernel.isa != 2 or "native_weights" not in card.get("variants", {}):
                print(f"lever '{label}' not run: no AVX-512 kernel or no native weights", file=sys.stderr)
                continue
            s = Forward()
        elif form.startswith("native"):
            isa = 1 if form == "native-avx2" else None
            if kernel is None or len(split) != 2 or (isa and kernel.isa < isa):
                print(f"lever '{label}' not run: {native_attention.unavailable_reason() or 'no split graphs'}",
                      file=sys.stderr)
                continue
            s = Native(level, extra, isa)
        else:
            s = session(form, level, 1 if layout == "per-core" else threads, extra)
        starts = np.arange(0, n, chunk)

        def work(part, s=s, chunk=chunk):
            for st in part:
                s.run(["probability"], {"spectra": x[st:st + chunk], "wavelengths": wl})

        if layout == "per-core":
            parts = [p for p in np.array_split(starts, threads) if len(p)]
            fn = (lambda parts=parts, work=work: [f.result() for f in [pool.submit(work, p) for p in parts]])
        else:
            fn = (lambda starts=starts, work=work: work(starts))
        p = s.run(["probability"], {"spectra": fidelity, "wavelengths": wl})[0]
        reference = p if reference is None else reference
        fn()
        runs.append({"label": label, "fn": fn, "walls": [], "cpus": [], "dp": float(np.max(np.abs(p - reference)))})
    for _ in range(args.lever_rounds):  # interleaved: load changes hit every lever alike
        for r in runs:
            t0, c0 = time.perf_counter(), time.process_time()
            r["fn"]()
            r["walls"].append(time.perf_counter() - t0)
            r["cpus"].append(time.process_time() - c0)
    shutil.rmtree(tmp, ignore_errors=True)
    return {"levers": [{"label": r["label"], "spectra_per_s": n / float(np.median(r["walls"])),
                        "spectra_per_cpu_s": n / float(np.median(r["cpus"])), "dp": r["dp"]} for r in runs]}


# ---------------------------------------------------------------------------------------------
# driver
# ---------------------------------------------------------------------------------------------
def worker_attention(args):
    """Where one core's time goes (single-threaded ONNX Runtime, µs per spectrum, S = 268): the fused
    model at 4 spectra per run, its ``MultiHeadAttention`` node alone, and the stock operators one head's
    attention is made of (QKᵀ MatMul, Softmax, Exp, PV MatMul on one (S, S) score matrix, which fits in
    L2); each median of timed windows, on random inputs of the model's shapes."""
    import numpy as np
    import onnxruntime as ort
    from onnx import TensorProto, helper

    s_, rng = 268, np.random.default_rng(0)

    def graph(nodes, inputs, outputs):
        g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(k, TensorProto.FLOAT, v.shape) for k, v in inputs.items()],
                              [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs])
        opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
        return helper.make_model(g, opset_imports=opsets).SerializeToString()

    def per_call_us(model, feeds, seconds=1.0, rounds=3):
        o = ort.SessionOptions()
        o.intra_op_num_threads, o.inter_op_num_threads, o.log_severity_level = 1, 1, 3
        sess = ort.InferenceSession(model, o, providers=["CPUExecutionProvider"])
        sess.run(None, feeds)
        return 1e6 / timed(lambda: sess.run(None, feeds), 1, seconds=seconds, min_runs=rounds)["spectra_per_s"]

    x, wl, _, _ = spectra(4)
    variant = MODEL.parent / json.loads(MODEL.with_suffix(".json").read_text())["variants"]["probability_only"]
    out = {"model": per_call_us(variant.read_bytes(), {"spectra": x[:4], "wavelengths": wl}) / 4}
    qkv = {k: rng.standard_normal((4, s_, 64)).astype(np.float32) for k in "qkv"}
    mha = helper.make_node("MultiHeadAttention", list("qkv"), ["o"], domain="com.microsoft", num_heads=8, scale=1.0)
    out["attention node"] = per_call_us(graph([mha], qkv, ["o"]), qkv) / 4
    q, kt = rng.standard_normal((1, 1, s_, 8)).astype(np.float32), rng.standard_normal((1, 1, 8, s_)).astype(np.float32)
    sc, v = rng.standard_normal((1, 1, s_, s_)).astype(np.float32), rng.standard_normal((1, 1, s_, 8)).astype(np.float32)
    per_head = {"QKᵀ MatMul": (helper.make_node("MatMul", ["q", "k"], ["o"]), {"q": q, "k": kt}),
                "Softmax": (helper.make_node("Softmax", ["s"], ["o"], axis=-1), {"s": sc}),
                "Exp": (helper.make_node("Exp", ["s"], ["o"]), {"s": sc}),
                "PV MatMul": (helper.make_node("MatMul", ["p", "v"], ["o"]), {"p": sc, "v": v})}
    for name, (node, feeds) in per_head.items():
        out[name + " x 8 heads"] = 8 * per_call_us(graph([node], feeds, ["o"]), feeds)
    from spectral_transformers.runtime.native import attention as native_attention

    kernel = native_attention.kernel()
    if kernel is not None:
        for isa in sorted({kernel.isa, 1}, reverse=True):
            o = np.empty_like(qkv["q"])
            run = (lambda isa=isa: kernel.run(qkv["q"], qkv["k"], qkv["v"], 8, out=o, isa=isa))
            run()
            out[f"native kernel ({native_attention.ISA_NAMES[isa]})"] = \
                1e6 / timed(run, 4, seconds=1.0, min_runs=3)["spectra_per_s"]
        from spectral_transformers.runtime.models.spectf import FORWARD_CHUNK, NATIVE_CHUNK, SpectfModel

        m = SpectfModel.load(str(MODEL), device="cpu", threads=1)
        xs, _, _, _ = spectra(NATIVE_CHUNK)
        split = (lambda: m._predict_split(xs, wl, m.native_attention(), 1, None))
        split()
        out["model, native attention"] = 1e6 / timed(split, NATIVE_CHUNK, seconds=1.0, min_runs=3)["spectra_per_s"]
        if m.native_forward() is not None:
            xf, _, _, _ = spectra(FORWARD_CHUNK)
            m.predict(xf, wl)
            out["model, native forward pass"] = 1e6 / timed(lambda: m.predict(xf, wl), FORWARD_CHUNK, seconds=1.0,
                                                            min_runs=3)["spectra_per_s"]
    return {"attention_us": out}


def run_worker(name, args, batch=None, extra=(), threads=None, env=None):
    threads = threads or args.threads
    cmd = [sys.executable, __file__, "--worker", name, "--threads", str(threads), "--batches", str(batch),
           "--seconds", str(args.seconds), "--upstream-batches", str(args.upstream_batches),
           "--eager-batch", str(args.eager_batch), "--lever-rounds", str(args.lever_rounds), *extra]
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads), **(env or {}))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{name} worker failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def fidelity(prob, ref, n_real):
    import numpy as np

    prob, ref = np.asarray(prob), np.asarray(ref)
    flips = (prob >= THRESHOLD) != (ref >= THRESHOLD)
    return (f"max |Δp| {np.max(np.abs(prob - ref)):.1e} (real {np.max(np.abs(prob - ref)[:n_real]):.1e}), "
            f"label flips {int(flips[:n_real].sum())}/{n_real} real, {int(flips[n_real:].sum())}/{len(ref) - n_real} constructed")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batches", default="64,1024",
                   help="plugin batch sizes (spectra per predict call; 64 is the cards' recommended_batch_size, "
                        "what the cloud mask uses by default)")
    p.add_argument("--seconds", type=float, default=4.0, help="timing window per plugin batch size")
    p.add_argument("--upstream-batches", type=int, default=3, help="timed batches of 4096 on upstream's bf16 path")
    p.add_argument("--upstream-src", default=None, help="SpecTf checkout or git directory (default: build/upstream/SpecTf, "
                                                        "else git clone)")
    p.add_argument("--eager-batch", type=int, default=1024, help="batch of upstream's float32 eager reference")
    p.add_argument("--lever-rounds", type=int, default=7, help="interleaved rounds of the lever table")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--skip-levers", action="store_true")
    p.add_argument("--gemm-coretypes", default="default,SKYLAKEX",
                   help="OpenBLAS kernels for the GEMM floor (the fastest counts; 'default' = auto-detected)")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--upstream-pkg", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        workers = {"gemm": worker_gemm, "plugin": worker_plugin, "levers": worker_levers, "attention": worker_attention,
                   "upstream": lambda a: worker_upstream(a, True), "upstream32": lambda a: worker_upstream(a, False)}
        out = workers[args.worker](args)
        out["peak_rss_mb"] = peak_rss_mb()
        print(json.dumps(out))
        return 0
    import numpy as np

    for need in (MODEL, WEIGHTS):
        if not need.exists():
            raise SystemExit(f"missing {need} (run `make setup`)")
    load = os.getloadavg()[0]
    blas_env = {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if k in os.environ}
    print(f"SpecTf CPU throughput: {args.threads} threads, {os.cpu_count()} cores, 268 bands; load average "
          f"{load:.1f} at start" + (f"; WARNING {blas_env} set (slows NumPy: see the docstring's command)" if blas_env else ""))
    flops, parts = graph_flops(MODEL)
    attn = sum(v for k, v in parts.items() if k in ("/MatMul", "/MatMul_1"))
    print(f"  FLOPs per spectrum (MatMul/Gemm of the exported graph, S = 268): {flops / 1e6:.2f} M "
          f"(attention QKᵀ + PV {attn / 1e6:.2f} M, projections/feed-forward/head {(flops - attn) / 1e6:.2f} M; "
          f"{8 * 268 * 268 / 1e3:.0f} k exponentials)")
    gemm_runs = [gemm_floor(args)]
    batches = [int(b) for b in args.batches.split(",")]
    passes = [{b: run_worker("plugin", args, b) for b in batches}]  # again after upstream: load drifts
    try:
        pkg, described = upstream_package(args.upstream_src)
        extra = ("--upstream-pkg", str(pkg))
        up = run_worker("upstream", args, extra=extra)
        up32 = run_worker("upstream32", args, extra=extra)
        print(f"  upstream code: SpecTf {described} (spectf.model.SpecTfEncoder)")
    except (UpstreamUnavailable, RuntimeError) as exc:
        up = up32 = None
        print(f"  upstream baseline not run: {exc}")
    passes.append({b: run_worker("plugin", args, b) for b in batches})
    plugin = {}
    for b in batches:  # mean of the passes before and after the upstream paths
        rs = [pas[b] for pas in passes]
        plugin[b] = dict(rs[-1], **{k: float(np.mean([r[k] for r in rs])) for k in ("spectra_per_s", "spectra_per_cpu_s")},
                         passes="/".join(f"{r['spectra_per_s']:.0f}" for r in rs), runs=sum(r["runs"] for r in rs))
    levers = None if args.skip_levers else run_worker("levers", args)["levers"]
    parts_us = None if args.skip_levers else run_worker("attention", args, threads=1)["attention_us"]
    gemm_runs.append(gemm_floor(args))
    if not all(gemm_runs):
        raise SystemExit("no GEMM measurement succeeded")
    # the fastest kernel sets the floor (mean of before/after); per CPU-second from the one-thread GEMM
    # (no OpenBLAS thread waiting for a descheduled partner)
    by_core = {c: [runs[c] for runs in gemm_runs if c in runs] for c in gemm_runs[0]}
    wall = {c: float(np.mean([r[0]["gflops"] for r in rs])) for c, rs in by_core.items()}
    cpu = {c: float(np.mean([r[1]["gflops_per_cpu_s"] for r in rs])) for c, rs in by_core.items()}
    core = max(wall, key=wall.get)
    gflops, gflops_cpu = wall[core], max(cpu.values())
    floor, floor_cpu = gflops * 1e9 / flops, gflops_cpu * 1e9 / flops
    best = max(plugin.values(), key=lambda r: r["spectra_per_s"])
    card_batch = json.loads(MODEL.with_suffix(".json").read_text()).get("recommended_batch_size")

    def line(label, r):
        print(f"  {label:<44} {r['spectra_per_s']:7.0f} spectra/s wall, {r['spectra_per_cpu_s']:6.0f} per CPU-s "
              f"(batch {r['batch']:>4}, {r.get('runs', 0)} timed)  peak RSS {r['peak_rss_mb']:6.0f} MB"
              + (f"  [passes before/after upstream: {r['passes']}/s]" if "passes" in r else ""))

    for c, rs in by_core.items():
        print(f"  GEMM {GEMM_N}² float32 (NumPy/OpenBLAS, core {c}): {args.threads} threads "
              + "/".join(f"{r[0]['gflops']:.0f}" for r in rs) + " GFLOP/s (before/after), 1 thread "
              + "/".join(f"{r[1]['gflops_per_cpu_s']:.0f}" for r in rs) + " GFLOP per CPU-s")
    print(f"  float32 floor: {floor:.0f} spectra/s ({gflops:.0f} GFLOP/s, core {core} / {flops / 1e6:.2f} MFLOP), "
          f"{floor_cpu:.0f} spectra per CPU-s")
    for b, r in plugin.items():
        line(f"plugin: float32 ({r['graph']})" if r is best else "plugin: same, other batch", r)
    print(f"    ({best['engine']})")
    if card_batch in plugin:
        print(f"    (the cloud mask's default, batch {card_batch}: {plugin[card_batch]['spectra_per_s']:.0f} spectra/s, "
              f"{100 * plugin[card_batch]['spectra_per_s'] / best['spectra_per_s']:.0f} % of the best batch)")
    if up is not None:
        line("upstream: own SpecTfEncoder, bf16 TorchScript", up)
        line("upstream: own SpecTfEncoder, float32 eager", up32)
    print("  ratios (same run):")
    print(f"    plugin / float32 floor: {100 * best['spectra_per_s'] / floor:.0f} % wall clock, "
          f"{100 * best['spectra_per_cpu_s'] / floor_cpu:.0f} % per CPU-second (target ≥ 40 %, moonshot 60 %)")
    if up is not None:
        for key, what in (("spectra_per_s", "wall clock"), ("spectra_per_cpu_s", "CPU time")):
            print(f"    plugin / upstream bf16 TorchScript ({what}): {best[key] / up[key]:.1f}x; "
                  f"/ upstream float32 eager: {best[key] / up32[key]:.1f}x")
        n_real = spectra(1)[3]
        print(f"  fidelity vs upstream float32 on {n_real} real EMIT + {len(up32['prob']) - n_real} constructed cloudy spectra "
              f"(threshold {THRESHOLD}):")
        print(f"    plugin ONNX float32: {fidelity(best['prob'], up32['prob'], n_real)}")
        print(f"    upstream bf16 path:  {fidelity(up['prob'], up32['prob'], n_real)}")
    if levers:
        base = levers[0]["spectra_per_s"]
        print(f"  levers ({args.threads} threads, 256 spectra per timing, median of {args.lever_rounds} "
              f"interleaved rounds; max |Δp| vs the first row):")
        for r in levers:
            print(f"    {r['label']:<62} {r['spectra_per_s']:6.0f}/s ({r['spectra_per_s'] / base:4.2f}x) "
                  f"{r['spectra_per_cpu_s']:6.0f}/CPU-s ({100 * r['spectra_per_cpu_s'] / floor_cpu:3.0f} % of floor)  |Δp| {r['dp']:.0e}")
    if parts_us:
        model_us, node_us = parts_us["model"], parts_us["attention node"]
        # Amdahl estimate for a hand-written fused attention kernel: the QKᵀ and PV FLOPs at the
        # one-thread GEMM rate plus the exponentials at ONNX Runtime's own Exp rate; the rest as measured
        ideal_us = attn / (gflops_cpu * 1e3) + parts_us["Exp x 8 heads"]
        est = 1e6 / (model_us - node_us + ideal_us)
        print("  one core, single-threaded ONNX Runtime, µs per spectrum (random inputs of the model's shapes):")
        for k, v in parts_us.items():
            print(f"    {k:<26} {v:7.1f}" + (f"  ({100 * node_us / model_us:.0f} % of the model)" if k == "attention node" else ""))
        print(f"    estimate with a fused attention kernel at the GEMM rate + Exp-op exponentials: {ideal_us:.0f} µs for the "
              f"attention → ≈ {est:.0f} spectra/CPU-s = {100 * est / floor_cpu:.0f} % of the floor (an estimate)")
        for key, what in (("model, native attention", "the native kernel between ONNX graphs"),
                          ("model, native forward pass", "the native forward pass")):
            if key in parts_us:
                m_us = parts_us[key]
                print(f"    measured with {what}: {m_us:.0f} µs per spectrum → {1e6 / m_us:.0f} spectra/CPU-s = "
                      f"{100 * 1e6 / m_us / floor_cpu:.0f} % of the floor, {model_us / m_us:.2f}x the fused ONNX graph")
    print(f"  load average at end {os.getloadavg()[0]:.1f} (other processes on the cores lower every figure; "
          f"ratios are from this one run)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
