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
                     keep_bands, load_weights)

OPSET = 17
VARIANT_DIR = "variants"
INPUTS = ("spectra", "wavelengths")
OUTPUTS = ("probability", "logits", "attention")
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

    from ..runtime.spectral import read_spectral_info

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


def export_module(model, path, card, opset=OPSET, example_bands=268):
    """Export a loaded one-layer :class:`~.spectf.SpecTf` to ONNX at ``path`` with ``card``."""
    import onnx
    import torch

    wrapper = SpecTfOnnx(model).eval()
    spectra = torch.rand(3, example_bands)
    wavelengths = torch.linspace(410.0, 2450.0, example_bands)
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = os.path.join(tmp, "spectf.onnx")
        torch.onnx.export(
            wrapper, (spectra, wavelengths), raw, dynamo=False, opset_version=opset,
            input_names=list(INPUTS), output_names=list(OUTPUTS), do_constant_folding=True,
            dynamic_axes={"spectra": {0: "N", 1: "S"}, "wavelengths": {0: "S"}, "probability": {0: "N"},
                          "logits": {0: "N"}, "attention": {0: "N", 1: "S"}})
        proto = onnx.load(raw)
    proto.producer_name = "spectral_transformers.training"
    proto.doc_string = f"{card.get('name', 'SpecTf')} (exported from PyTorch weights)"
    onnx.checker.check_model(proto)
    card = dict(card, variants={"probability_only": f"{VARIANT_DIR}/{Path(path).stem}.probability.onnx"})
    save_with_card(proto, path, card)
    write_probability_variant(path, card)
    return Path(path)


def write_probability_variant(path, card):
    """Write the graph pruned to ``probability`` + ``logits`` beside ``path`` (card key
    ``variants.probability_only``, relative to the model file).

    ONNX Runtime executes every node of a graph whatever outputs are requested, so the cloud mask,
    which needs no attention, runs this variant: it skips the reduction over the (N, 8, S, S) attention
    probabilities and lets ONNX Runtime fuse the attention (≈ 1.5–2× faster on CPU)."""
    import onnx
    from onnx import utils

    path = Path(path)
    target = path.parent / card["variants"]["probability_only"]
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        pruned = os.path.join(tmp, "pruned.onnx")
        utils.extract_model(str(path), pruned, list(INPUTS), ["probability", "logits"])
        proto = onnx.load(pruned)
    variant_card = {k: v for k, v in card.items() if k != "variants"}
    variant_card["variant_of"] = card.get("id")
    proto.producer_name = "spectral_transformers.training"
    return save_with_card(proto, target, variant_card)


def export_weights(weights_path, path, card):
    """Load the state dict at ``weights_path`` and export it to ``path``."""
    return export_module(load_weights(weights_path), path, card)


def import_upstream_onnx(src, dst, card):
    """Convert the upstream bfloat16, fixed-batch SpecTf ONNX (input (4096, S, 2) tokens, output
    (4096, 2) logits) into float32 with a dynamic batch and the card embedded.

    Only the numeric type and the batch dimension change: bf16 initializers/constants become
    float32, Cast-to-bf16 nodes cast to float32, and Reshape shape constants that hard-code the
    batch (4096 or 4096·heads) get 0/-1 placeholders. Inputs/outputs keep upstream's layout
    (``tokens`` → ``logits``), so it is a reference, not a drop-in plugin model."""
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
    model.producer_name = "spectral_transformers.training (imported upstream bf16 ONNX)"
    onnx.checker.check_model(model)
    card = copy.deepcopy(card)
    card["import"] = {"from": os.path.basename(str(src)), "original_dtype": "bfloat16",
                      "original_batch": batch, "inputs": {"tokens": "float32 (N, S, 2)"},
                      "outputs": {"logits": "(N, 2)"}}
    card.pop("inputs", None)
    card.pop("outputs", None)
    return save_with_card(model, dst, card)


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
    args = p.parse_args(argv)
    wl = emit_training_wavelengths(args.emit_header) if args.emit_header else None
    card = spectf_card(args.version, wl)
    card["id"] = card["id"] + "-upstream"
    out = import_upstream_onnx(args.source, args.output, card)
    print(f"wrote {out}")
    return 0
