"""SpecTf → ONNX: export of PyTorch weights, import of the upstream bfloat16 ONNX, model cards.

Exported graph (opset 17, dynamic N and S): inputs ``spectra`` float32 (N, S) TOA reflectance and
``wavelengths`` float32 (S,) band centres in nm; outputs ``probability`` (N,) cloud probability,
``logits`` (N, 2) and ``attention`` (N, S) = attention each band token receives, averaged over the
8 heads and the query positions. The model card (JSON) is embedded in the ONNX ``metadata_props``
under ``model_card`` and written beside the file as ``<file>.json``.
"""
import argparse
import copy
import json
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

from .spectf import (DROP_RANGES_NM, WAVELENGTH_OFFSET_NM, WAVELENGTH_SCALE_NM, SpecTfOnnx,
                     SpecTfOnnxFused, SpecTfOnnxPerHead, keep_bands, load_weights)

OPSET = 17
VARIANT_DIR = "variants"
INPUTS = ("spectra", "wavelengths")
OUTPUTS = ("probability", "logits", "attention")
#: Attention formulation of the probability-only variant the cloud mask runs: ``"fused"`` (one
#: ONNX Runtime ``com.microsoft::MultiHeadAttention`` node), ``"explicit"`` (the full graph pruned:
#: MatMul/Softmax/MatMul) or ``"per-head"`` (one MatMul/Softmax/MatMul chain per head). Chosen by
#: ``bench/spectf_speed.py``'s lever table: per-head measured within 10 % of fused on the CPUs
#: tried, fused also has a CUDA kernel, so fused stays. All match the float32 reference within 1e-4
#: in probability (tests/test_spectf_training.py).
PROBABILITY_ATTENTION = "fused"
ATTENTION_FORMS = ("fused", "explicit", "per-head")
THRESHOLDS = {"0.1.0": 0.51, "0.0.1": 0.52}
PUBLISHED_F1 = {"0.1.0": {"labelbox": 0.912, "mmgis": 0.996, "mmgis_2": 0.943, "all": 0.948}}
SOURCE = {
    "repository": "https://github.com/emit-sds/SpecTf",
    "paper": "arXiv:2501.04916",
    "authors": "Jake H. Lee, Michael Kiper, David R. Thompson, Philip G. Brodrick",
    "institution": "Jet Propulsion Laboratory, California Institute of Technology",
}


def spectf_card(version="0.1.0", wavelengths_nm=None, threshold=None, **extra):
    """Model card (dict) of a SpecTf EMIT cloud model per the plugin's shared contract."""
    card = {
        "id": f"spectf-cloud-v{version}",
        "name": f"SpecTf EMIT cloud mask v{version}",
        "version": version,
        "task": "spectral-cloud-mask",
        "architecture": "spectf",
        "source": dict(SOURCE),
        "license": "Apache-2.0",
        "description": ("Spectroscopic transformer (SpecTf) classifying each pixel's TOA reflectance "
                        "spectrum as cloud or clear, one band per token; trained on EMIT."),
        "input": "toa_reflectance",
        "wavelengths_nm": [round(float(w), 6) for w in (wavelengths_nm if wavelengths_nm is not None else [])],
        "drop_ranges_nm": [list(r) for r in DROP_RANGES_NM],
        "wavelength_offset_nm": WAVELENGTH_OFFSET_NM,
        "wavelength_scale_nm": WAVELENGTH_SCALE_NM,
        "threshold": threshold if threshold is not None else THRESHOLDS.get(version, 0.5),
        "trained_on": "EMIT",
        "inputs": {"spectra": "float32 (N, S) TOA reflectance",
                   "wavelengths": "float32 (S,) band centre wavelength, nm"},
        "outputs": {"probability": "(N,) cloud probability", "logits": "(N, 2) [clear, cloud]",
                    "attention": "(N, S) attention received per band, mean over heads and queries"},
    }
    if version in PUBLISHED_F1:
        card["published_f1"] = dict(PUBLISHED_F1[version])
    card.update(extra)
    return card


def emit_training_wavelengths(header_path):
    """The bands SpecTf uses (nm): the wavelengths of an EMIT raster/header minus the drop ranges."""
    from osgeo import gdal

    from ..runtime.io.spectral import read_spectral_info

    path = str(header_path)
    if path.endswith(".hdr"):
        path = path[:-4] + ".img" if os.path.exists(path[:-4] + ".img") else path[:-4]
    ds = gdal.Open(path)
    if ds is None:
        raise ValueError(f"cannot open {header_path} with GDAL")
    info = read_spectral_info(ds)
    if not info.has_wavelengths:
        raise ValueError(f"{header_path} has no band wavelengths")
    wl = info.wavelength_nm[keep_bands(info.wavelength_nm)]
    return wl.astype(np.float64)


def sidecar_path(onnx_path):
    """``models/x.onnx`` → ``models/x.json``."""
    path = Path(onnx_path)
    return path.with_suffix(".json") if path.suffix == ".onnx" else Path(str(path) + ".json")


def _write_card(model_proto, path, card):
    del model_proto.metadata_props[:]
    entry = model_proto.metadata_props.add()
    entry.key, entry.value = "model_card", json.dumps(card, sort_keys=True)
    return sidecar_path(path)


def save_with_card(model_proto, path, card):
    """Embed ``card`` in ``model_proto`` and write it atomically to ``path`` plus sidecar ``<stem>.json``."""
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sidecar = _write_card(model_proto, path, card)
    tmp = path.with_name(path.name + ".partial")
    onnx.save(model_proto, str(tmp))
    os.replace(tmp, path)
    tmp_card = sidecar.with_name(sidecar.name + ".partial")
    tmp_card.write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")
    os.replace(tmp_card, sidecar)
    return path


def _export(wrapper, outputs, example_bands=268, opset=OPSET, custom_opsets=None):
    """torch.onnx.export of ``wrapper(spectra, wavelengths)`` with dynamic N and S; returns the proto."""
    import onnx
    import torch

    spectra = torch.rand(3, example_bands)
    wavelengths = torch.linspace(410.0, 2450.0, example_bands)
    axes = {"spectra": {0: "N", 1: "S"}, "wavelengths": {0: "S"}, "probability": {0: "N"},
            "logits": {0: "N"}, "attention": {0: "N", 1: "S"}}
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = os.path.join(tmp, "spectf.onnx")
        torch.onnx.export(
            wrapper.eval(), (spectra, wavelengths), raw, dynamo=False, opset_version=opset,
            input_names=list(INPUTS), output_names=list(outputs), do_constant_folding=True,
            custom_opsets=custom_opsets or {}, dynamic_axes={k: v for k, v in axes.items() if k in INPUTS + tuple(outputs)})
        return onnx.load(raw)


def export_module(model, path, card, opset=OPSET, example_bands=268, probability_attention=None):
    """Export a loaded one-layer :class:`~.spectf.SpecTf` to ONNX at ``path`` with ``card``, plus
    its probability-only variant (``probability_attention``: one of :data:`ATTENTION_FORMS`, default
    :data:`PROBABILITY_ATTENTION`)."""
    import onnx

    proto = _export(SpecTfOnnx(model), OUTPUTS, example_bands, opset)
    proto.producer_name = "spectral_transformers.training"
    proto.doc_string = f"{card.get('name', 'SpecTf')} (exported from PyTorch weights)"
    onnx.checker.check_model(proto)
    stem, form = Path(path).stem, probability_attention or PROBABILITY_ATTENTION
    variants = {"probability_only": f"{VARIANT_DIR}/{stem}.probability.onnx"}
    if form == "fused":
        variants.update(pre_attention=f"{VARIANT_DIR}/{stem}.pre-attention.onnx",
                        post_attention=f"{VARIANT_DIR}/{stem}.post-attention.onnx",
                        native_weights=f"{VARIANT_DIR}/{stem}.native.npz")
        card = dict(card, attention_heads=int(model.layers[0].attention.attention.num_heads))
    card = dict(card, variants=variants)
    save_with_card(proto, path, card)
    variant = write_probability_variant(path, card, model, form)
    if form == "fused":
        write_attention_split(variant, card, Path(path).parent)
    return Path(path)


def write_attention_split(fused_path, card, model_dir):
    """Cut the fused probability variant at its ``MultiHeadAttention`` node into the graphs the native
    attention kernel runs between (card ``variants.pre_attention`` / ``post_attention``, relative to
    ``model_dir``): ``spectra, wavelengths → q, k, v`` (N·S, 64) and ``attention output (N, S, 64) →
    probability, logits``. ONNX Runtime runs both; :mod:`~..runtime.native.attention` the middle."""
    import onnx
    from onnx import utils

    proto = onnx.load(str(fused_path))
    nodes = [n for n in proto.graph.node if n.op_type == "MultiHeadAttention" and n.domain == "com.microsoft"]
    if len(nodes) != 1 or len(nodes[0].input) < 3:
        raise ValueError(f"{fused_path}: expected one MultiHeadAttention node with q, k, v inputs")
    node = nodes[0]
    q, k, v, out = *node.input[:3], node.output[0]
    # q, k, v as the projections' own (N·S, 64) outputs, not the (N, S, 64) Reshapes of them: a Reshape
    # that makes a graph output copies (3 × ≈ 14 µs per spectrum); the runtime reshapes them as views
    producers = {o: n for n in proto.graph.node for o in n.output}
    q, k, v = (producers[t].input[0] if t in producers and producers[t].op_type == "Reshape" else t
               for t in (q, k, v))
    # (graph inputs, graph outputs, stable names for the tensors the exporter named)
    cuts = {"pre_attention": (list(INPUTS), [q, k, v], {q: "q", k: "k", v: "v"}),
            "post_attention": ([out], ["probability", "logits"], {out: "attention_output"})}
    written, parts = [], {}
    for key, (inputs, outputs, names) in cuts.items():
        target = Path(model_dir) / card["variants"][key]
        with tempfile.TemporaryDirectory() as tmp:
            cut = os.path.join(tmp, "cut.onnx")
            utils.extract_model(str(fused_path), cut, inputs, outputs)
            part = onnx.load(cut)
        for old, new in names.items():
            _rename(part.graph, old, new)
        onnx.checker.check_model(part)
        part_card = {k: v for k, v in card.items() if k != "variants"}
        part_card.update(variant_of=card.get("id"), attention_form=key.replace("_", "-"))
        part.producer_name = "spectral_transformers.training"
        written.append(save_with_card(part, target, part_card))
        parts[key] = part
    if "native_weights" in card["variants"]:
        target = Path(model_dir) / card["variants"]["native_weights"]
        write_native_weights(parts["pre_attention"], parts["post_attention"], target)
        written.append(target)
    return written


#: The compute nodes (shape plumbing left out) of the graphs the C forward pass reproduces
#: (runtime/native/spectf_forward.c), in graph order.
NATIVE_PRE_OPS = ("Mul", "Add", "Mul", "Add", "Tanh", "LayerNormalization", "Gemm", "Gemm", "Gemm")
NATIVE_POST_OPS = ("Gemm", "LayerNormalization", "Gemm", "Div", "Erf", "Add", "Mul", "Mul", "Gemm", "ReduceMax",
                   "Gemm", "Softmax")
_PLUMBING = {"Shape", "Constant", "Gather", "Unsqueeze", "Concat", "Reshape"}


def write_native_weights(pre, post, target):
    """The weights of the pre/post-attention graphs (ONNX protos) as the native forward pass reads them
    (``variants.native_weights``, :func:`~..runtime.native.forward.write_weights`); raises ValueError
    when the graphs are not the one-layer SpecTf that pass computes."""
    from onnx import numpy_helper

    from ..runtime.native.forward import write_weights

    for name, proto, expected in (("pre", pre, NATIVE_PRE_OPS), ("post", post, NATIVE_POST_OPS)):
        shape_values, ops = set(), []  # tensors computed from shapes and constants only (e.g. N·S)
        for n in proto.graph.node:
            if n.op_type in ("Shape", "Constant") or (n.input and all(i in shape_values for i in n.input)):
                shape_values.update(n.output)
            elif n.op_type not in _PLUMBING:
                ops.append(n.op_type)
        ops = tuple(ops)
        if ops != expected:
            raise ValueError(f"the {name}-attention graph computes {ops}, not the native forward pass's {expected}")
    arrays = {i.name: numpy_helper.to_array(i) for g in (pre.graph, post.graph) for i in g.initializer}
    for proto, key in ((pre, "norm1.epsilon"), (post, "norm2.epsilon")):
        node = next(n for n in proto.graph.node if n.op_type == "LayerNormalization")
        eps = [a.f for a in node.attribute if a.name == "epsilon"]
        arrays[key] = eps[0] if eps else 1e-5  # ONNX's default
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    write_weights(target, arrays)


def write_probability_variant(path, card, model=None, attention="explicit", target=None):
    """Write the probability-only graph (outputs ``probability`` + ``logits``) to ``target``
    (default: beside ``path`` at the card's ``variants.probability_only``, relative to the model file).

    ONNX Runtime executes every node of a graph whatever outputs are requested, so the cloud mask,
    which needs no attention, runs this variant: it skips the reduction over the (N, 8, S, S) attention
    probabilities (≈ 1.5–2× faster on CPU). ``attention="explicit"`` prunes the model at ``path``;
    ``"fused"`` exports ``model`` (a :class:`~.spectf.SpecTf`) as :class:`~.spectf.SpecTfOnnxFused`,
    one ``com.microsoft::MultiHeadAttention`` node (ONNX Runtime CPU/CUDA kernel); ``"per-head"``
    as :class:`~.spectf.SpecTfOnnxPerHead`."""
    import onnx
    from onnx import utils

    if attention not in ATTENTION_FORMS:
        raise ValueError(f"attention must be one of {ATTENTION_FORMS}, not {attention!r}")
    path = Path(path)
    target = Path(target) if target is not None else path.parent / card["variants"]["probability_only"]
    target.parent.mkdir(parents=True, exist_ok=True)
    if attention in ("fused", "per-head"):
        if model is None:
            raise ValueError(f"the {attention} probability variant is exported from the PyTorch model: pass model")
        if attention == "fused":
            proto = _export(SpecTfOnnxFused(model), ("probability", "logits"), custom_opsets={"com.microsoft": 1})
        else:
            proto = _export(SpecTfOnnxPerHead(model), ("probability", "logits"))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            pruned = os.path.join(tmp, "pruned.onnx")
            utils.extract_model(str(path), pruned, list(INPUTS), ["probability", "logits"])
            proto = onnx.load(pruned)
    onnx.checker.check_model(proto)
    variant_card = {k: v for k, v in card.items() if k != "variants"}
    variant_card["variant_of"] = card.get("id")
    variant_card["attention_form"] = attention
    proto.producer_name = "spectral_transformers.training"
    return save_with_card(proto, target, variant_card)


def export_weights(weights_path, path, card):
    """Load the state dict at ``weights_path`` and export it to ``path``."""
    return export_module(load_weights(weights_path), path, card)


def import_upstream_onnx(src, dst, card, tokens_only=False):
    """Convert the upstream bfloat16, fixed-batch SpecTf ONNX (input (4096, S, 2) tokens, output
    (4096, 2) logits) into a float32 plugin model with a dynamic batch and the card embedded.

    The numeric type and the batch dimension change: bf16 initializers/constants become float32,
    Cast-to-bf16 nodes cast to float32, and Reshape shape constants that hard-code the batch (4096
    or 4096·heads) get -1. The result then gets the plugin's own signature, so it runs as ``MODEL``
    of the cloud mask: inputs ``spectra`` (N, S) TOA reflectance and ``wavelengths`` (S,) nm, built
    into upstream's tokens ``[reflectance, (λ − offset)/scale]`` inside the graph (offset/scale from
    the card: 1440 and 600 nm), outputs ``probability`` (N,) = softmax(logits)[:, 1] and ``logits``.
    There is no ``attention`` output (upstream's graph does not compute it). ``tokens_only`` keeps
    upstream's layout (``tokens`` → ``logits``), a reference for comparisons."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    bf16, f32 = TensorProto.BFLOAT16, TensorProto.FLOAT
    batch = None
    for vi in graph.input:
        dims = vi.type.tensor_type.shape.dim
        if dims and dims[0].HasField("dim_value"):
            batch = dims[0].dim_value

    def to_f32(tensor):
        if tensor.data_type != bf16:
            return tensor
        arr = numpy_helper.to_array(tensor)  # onnx returns bf16 as float32-convertible array
        arr = np.asarray(arr, dtype=np.float32)
        return numpy_helper.from_array(arr, tensor.name)

    for i, init in enumerate(graph.initializer):
        if init.data_type == bf16:
            graph.initializer[i].CopyFrom(to_f32(init))
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.TENSOR and attr.t.data_type == bf16:
                attr.t.CopyFrom(to_f32(attr.t))
            if node.op_type == "Cast" and attr.name == "to" and attr.i == bf16:
                attr.i = f32
    # Reshape targets: replace the hard-coded batch by -1 (the only batch-carrying dimension)
    consts = {}
    for node in graph.node:
        if node.op_type == "Constant":
            consts[node.output[0]] = node
    inits = {t.name: t for t in graph.initializer}
    for node in graph.node:
        if node.op_type != "Reshape" or batch is None:
            continue
        name = node.input[1]
        holder = consts.get(name)
        tensor = holder.attribute[0].t if holder is not None else inits.get(name)
        if tensor is None:
            continue
        shape = numpy_helper.to_array(tensor).astype(np.int64).copy()
        hits = [j for j, v in enumerate(shape) if v % batch == 0 and v >= batch]
        if len(hits) != 1:
            raise ValueError(f"cannot make Reshape {node.name} batch-dynamic (shape {shape.tolist()})")
        shape[hits[0]] = -1
        tensor.CopyFrom(numpy_helper.from_array(shape, tensor.name))
    for vi in list(graph.input) + list(graph.output) + list(graph.value_info):
        tt = vi.type.tensor_type
        if tt.elem_type == bf16:
            tt.elem_type = f32
        if tt.shape.dim and tt.shape.dim[0].HasField("dim_value") and tt.shape.dim[0].dim_value == batch:
            tt.shape.dim[0].dim_param = "N"
    del graph.value_info[:]
    _rename(graph, graph.input[0].name, "tokens")
    _rename(graph, graph.output[0].name, "logits")
    card = copy.deepcopy(card)
    card["import"] = {"from": os.path.basename(str(src)), "original_dtype": "bfloat16", "original_batch": batch}
    if tokens_only:
        card["import"].update(inputs={"tokens": "float32 (N, S, 2)"}, outputs={"logits": "(N, 2)"})
        card.pop("inputs", None)
        card.pop("outputs", None)
    else:
        _plugin_signature(graph, float(card.get("wavelength_offset_nm", WAVELENGTH_OFFSET_NM)),
                          float(card.get("wavelength_scale_nm", WAVELENGTH_SCALE_NM)))
        card["outputs"] = {"probability": "(N,) cloud probability", "logits": "(N, 2) [clear, cloud]"}
    model.producer_name = "spectral_transformers.training (imported upstream bf16 ONNX)"
    onnx.checker.check_model(model)
    return save_with_card(model, dst, card)


def _plugin_signature(graph, offset_nm, scale_nm):
    """Put the plugin's inputs (spectra (N,S), wavelengths (S,)) in front of a ``tokens`` (N,S,2) graph
    and add ``probability`` (N,) = softmax(logits)[:, 1]."""
    from onnx import TensorProto, helper, numpy_helper

    tokens_in = [vi for vi in graph.input if vi.name == "tokens"][0]
    bands = tokens_in.type.tensor_type.shape.dim[1]
    s_dim = bands.dim_value if bands.HasField("dim_value") else "S"
    graph.input.remove(tokens_in)
    graph.input.extend([helper.make_tensor_value_info("spectra", TensorProto.FLOAT, ["N", s_dim]),
                        helper.make_tensor_value_info("wavelengths", TensorProto.FLOAT, [s_dim])])
    consts = {"_wl_offset": np.array(offset_nm, np.float32), "_wl_scale": np.array(scale_nm, np.float32),
              "_axes_last": np.array([-1], np.int64), "_axes_first": np.array([0], np.int64),
              "_cloud_index": np.array(1, np.int64)}
    graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in consts.items())
    pre = [
        helper.make_node("Sub", ["wavelengths", "_wl_offset"], ["_wl_shift"]),
        helper.make_node("Div", ["_wl_shift", "_wl_scale"], ["_wl_norm"]),
        helper.make_node("Unsqueeze", ["_wl_norm", "_axes_first"], ["_wl_row"]),
        helper.make_node("Shape", ["spectra"], ["_spectra_shape"]),
        helper.make_node("Expand", ["_wl_row", "_spectra_shape"], ["_wl_grid"]),
        helper.make_node("Unsqueeze", ["spectra", "_axes_last"], ["_tok_rfl"]),
        helper.make_node("Unsqueeze", ["_wl_grid", "_axes_last"], ["_tok_wl"]),
        helper.make_node("Concat", ["_tok_rfl", "_tok_wl"], ["tokens"], axis=-1),
    ]
    post = [
        helper.make_node("Softmax", ["logits"], ["_softmax"], axis=-1),
        helper.make_node("Gather", ["_softmax", "_cloud_index"], ["probability"], axis=1),
    ]
    nodes = pre + list(graph.node) + post
    del graph.node[:]
    graph.node.extend(nodes)
    logits = [vi for vi in graph.output if vi.name == "logits"][0]
    graph.output.remove(logits)
    graph.output.extend([helper.make_tensor_value_info("probability", TensorProto.FLOAT, ["N"]), logits])


def _rename(graph, old, new):
    for vi in list(graph.input) + list(graph.output):
        if vi.name == old:
            vi.name = new
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new
        for i, name in enumerate(node.output):
            if name == old:
                node.output[i] = new


def main_export(argv=None):
    """CLI: ``export WEIGHTS OUT.onnx [--version 0.1.0] [--threshold T] [--emit-header HDR]``."""
    p = argparse.ArgumentParser(prog="spectral_transformers.training export",
                                description="Export SpecTf PyTorch weights to ONNX with a model card.")
    p.add_argument("weights", help="state dict (.pt) with the SpecTf keys")
    p.add_argument("output", help="ONNX file to write (a <stem>.json card is written beside it)")
    p.add_argument("--version", default="0.1.0")
    p.add_argument("--threshold", type=float, default=None)
    p.add_argument("--emit-header", default=None, help="EMIT raster/.hdr giving the band wavelengths")
    args = p.parse_args(argv)
    wl = emit_training_wavelengths(args.emit_header) if args.emit_header else None
    out = export_weights(args.weights, args.output, spectf_card(args.version, wl, args.threshold))
    print(f"wrote {out}")
    return 0


def main_import(argv=None):
    """CLI: ``import-onnx UPSTREAM_BF16.onnx OUT.onnx [--version 0.1.0] [--emit-header HDR]``."""
    p = argparse.ArgumentParser(prog="spectral_transformers.training import-onnx",
                                description="Convert the upstream bf16 fixed-batch SpecTf ONNX to float32, "
                                            "dynamic batch, with a model card.")
    p.add_argument("source")
    p.add_argument("output")
    p.add_argument("--version", default="0.1.0")
    p.add_argument("--emit-header", default=None)
    p.add_argument("--tokens", action="store_true",
                   help="keep upstream's tokens (N,S,2) -> logits signature (a reference, not a plugin MODEL)")
    args = p.parse_args(argv)
    wl = emit_training_wavelengths(args.emit_header) if args.emit_header else None
    card = spectf_card(args.version, wl)
    card["id"] = card["id"] + "-upstream"
    card["name"] = card["name"] + " (upstream bf16 release, imported)"
    out = import_upstream_onnx(args.source, args.output, card, tokens_only=args.tokens)
    print(f"wrote {out}")
    return 0
