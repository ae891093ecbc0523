"""Shared plumbing of the foundation-model importers (SpectralGPT, SpectralEarth).

* :func:`load_checkpoint` — ``torch.load(weights_only=True)``; the only class ever allowed beyond
  tensors and containers is :class:`argparse.Namespace` (SpectralGPT stores its training ``args``
  as one), and only when the caller asks for it.
* :func:`check_layout` — compares a state dict with the parameter names and shapes the rebuilt
  network expects and explains the first differences (a checkpoint of another architecture or size
  is refused before any export work).
* :func:`export_onnx` — the checked export of :mod:`.onnx_export` (card as ONNX metadata and
  sidecar, weights in ``<model>.onnx.data`` above 256 MB, ONNX Runtime compared with PyTorch).
* :func:`recorded_layout` — the committed names/shapes lists under ``training/layouts/`` (written
  from the upstream code by ``scripts/check_foundation_upstream.py --write-layouts``).
"""
import argparse
import json
import os

import torch

from . import onnx_export
from .onnx_export import OPSET
INPUT_NAME = "image"
OUTPUT_NAME = "logits"
#: Weights larger than this (bytes) are stored in ``<model>.onnx.data`` (protobuf limit is 2 GB).
EXTERNAL_DATA_BYTES = 256 * 1024 ** 2
LAYOUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "layouts")


class ImportFailure(Exception):
    """A checkpoint/config that cannot be imported; the message says what was expected."""


def load_checkpoint(path, allow_namespace=False):
    """The object saved in ``path`` loaded with ``weights_only=True`` (no code runs while
    unpickling). ``allow_namespace`` additionally allows exactly :class:`argparse.Namespace`."""
    if not os.path.isfile(path):
        raise ImportFailure(f"--checkpoint: file not found: {path}")
    allowed = [argparse.Namespace] if allow_namespace else []
    try:
        with torch.serialization.safe_globals(allowed):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError, RuntimeError (not a zip/pickle), EOFError …
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise ImportFailure(f"--checkpoint: {os.path.basename(path)} cannot be loaded safely with "
                            f"torch.load(weights_only=True) ({first}). Only tensors, containers"
                            + (" and argparse.Namespace" if allow_namespace else "") + " are accepted.") from None


def check_output(path):
    """Refuse an ``--output`` that is not an .onnx path in a writable folder (before any work)."""
    if not str(path).lower().endswith(".onnx"):
        raise ImportFailure(f"--output: {path} must end in .onnx (the card is written beside it as .json).")
    folder = os.path.dirname(os.path.abspath(str(path)))
    probe = folder
    while not os.path.isdir(probe):
        probe = os.path.dirname(probe)
    if not os.access(probe, os.W_OK):
        raise ImportFailure(f"--output: cannot write to {folder}.")


def shapes_of(state):
    return {k: tuple(int(s) for s in v.shape) for k, v in state.items() if torch.is_tensor(v)}


def check_layout(state, expected, what):
    """Raise ImportFailure when ``state`` (name → tensor) lacks or mis-shapes keys of ``expected``
    (name → shape). Extra keys are the caller's business (they are dropped before loading)."""
    got = shapes_of(state)
    missing = [k for k in expected if k not in got]
    wrong = [(k, got[k], tuple(expected[k])) for k in expected if k in got and got[k] != tuple(expected[k])]
    if missing or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s) (e.g. {', '.join(missing[:4])})")
        if wrong:
            parts.append(f"{len(wrong)} shape mismatch(es) (e.g. " + ", ".join(
                f"{k}: {list(g)} instead of {list(e)}" for k, g, e in wrong[:3]) + ")")
        raise ImportFailure(f"--checkpoint: not a {what} checkpoint: " + "; ".join(parts) + ".")


def recorded_layout(name):
    """``{"keys": {name: shape}, ...}`` of the committed layout ``training/layouts/<name>.json``."""
    with open(os.path.join(LAYOUT_DIR, name + ".json"), encoding="utf-8") as f:
        doc = json.load(f)
    doc["keys"] = {k: tuple(v) for k, v in doc["keys"].items()}
    return doc


def seeded_state(layout_keys, seed=0, std=0.02):
    """A random state dict with exactly ``layout_keys`` (name → shape): normal(0, std) weights,
    LayerNorm/GroupNorm/BatchNorm scales near 1, running variances 1 (for tests without upstream
    code)."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for k, shape in layout_keys.items():
        if k.endswith("num_batches_tracked"):
            state[k] = torch.zeros(shape, dtype=torch.long)
        elif k.endswith("running_var"):
            state[k] = 0.5 + torch.rand(shape, generator=g)
        elif k.endswith("running_mean"):
            state[k] = 0.1 * torch.randn(shape, generator=g)
        elif len(shape) == 1 and k.endswith("weight"):
            state[k] = 1.0 + 0.1 * torch.randn(shape, generator=g)
        else:
            state[k] = std * torch.randn(shape, generator=g)
    return state


def export_onnx(model, example, path, card, external_data=None, atol=1e-3, log=None):
    """Checked export (:func:`.onnx_export.export_checked`) with weights > 256 MB in
    ``<path>.data``; returns (max |logit difference|, argmax agreement)."""
    return onnx_export.export_checked(model, example, path, card, external_data, EXTERNAL_DATA_BYTES, OPSET, atol,
                                      "spectral_transformers.training (foundation-model import)", log,
                                      INPUT_NAME, OUTPUT_NAME)


def export_imported(model, example, output, card, external_data=None, log=None):
    """Export a rebuilt network; returns the card, ONNX-vs-PyTorch figures and the network."""
    diff, agree = export_onnx(model, example, output, card, external_data=external_data, log=log)
    return {"card": card, "max_abs_diff": diff, "argmax_agreement": agree, "model": model}


def add_card_arguments(parser, default_id):
    """The options both importers share (output, card id, class names, licence, external data)."""
    parser.add_argument("--output", required=True, help="ONNX file to write (card as <stem>.json beside it)")
    parser.add_argument("--id", default=default_id, help="model id in the card")
    parser.add_argument("--class-names", help="file with one class name per line, or comma-separated names")
    parser.add_argument("--license", help="licence of the checkpoint's weights for the card")
    parser.add_argument("--external-data", action="store_true", help="always store weights in <output>.data")


def run_command(prog, work):
    """Run ``work()``; an :class:`ImportFailure` becomes one line on stderr and exit code 2."""
    import sys

    try:
        work()
    except ImportFailure as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    return 0


def class_colour(i):
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
               "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94"]
    return palette[i % len(palette)]


def parse_class_names(text, count):
    """``--class-names``: a file with one name per line, or a comma-separated list; ``count`` names."""
    if text is None:
        return None
    if os.path.isfile(text):
        with open(text, encoding="utf-8") as f:
            names = [line.strip() for line in f if line.strip()]
    else:
        names = [n.strip() for n in str(text).split(",") if n.strip()]
    if len(names) != count:
        raise ImportFailure(f"--class-names: {len(names)} names given but the checkpoint has {count} classes.")
    return names
