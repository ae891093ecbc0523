"""One checked ONNX export for the segmentation exporters of ``training/`` (seg-train/seg-export,
import-spectralgpt, import-spectralearth).

:func:`export_checked` exports a module with the dynamo exporter and a dynamic batch (the example
batch should be 2: a batch of 1 is fixed by the exporter), puts the card into the ONNX metadata
``model_card`` and the sidecar ``<stem>.json``, writes the weights to ``<model>.onnx.data`` when
``external_data`` (default: more than ``threshold`` bytes of weights), renames the files into place
only when complete, and compares ONNX Runtime with PyTorch on the example; a difference above
``atol`` removes the files and raises RuntimeError.
"""
import json
import os
import shutil
import tempfile

import numpy as np
import torch

OPSET = 18


def export_checked(module, example, path, card, external_data=None, threshold=256 * 1024 ** 2, opset=OPSET,
                   atol=1e-4, producer="spectral_transformers.training", log=None, input_name="image",
                   output_name="logits"):
    """Export ``module`` for inputs shaped like ``example``; returns (max |output difference|,
    share of pixels whose argmax over axis 1 agrees)."""
    import onnxruntime as ort

    module.eval()
    path = os.path.abspath(str(path))
    folder, base = os.path.dirname(path), os.path.basename(path)
    os.makedirs(folder, exist_ok=True)
    nbytes = sum(p.numel() * p.element_size() for p in module.parameters())
    if external_data is None:
        external_data = nbytes > threshold
    batch = torch.export.Dim("batch", min=1, max=4096)
    with torch.no_grad():
        prog = torch.onnx.export(module, (example,), None, dynamo=True, opset_version=opset,
                                 input_names=[input_name], output_names=[output_name],
                                 dynamic_shapes=({0: batch},), optimize=True, verbose=False)
    # Card and producer go on the IR model, so models > 2 GB never pass through a protobuf in memory.
    prog.model.metadata_props["model_card"] = json.dumps(card)
    prog.model.producer_name = producer
    sidecar = os.path.splitext(path)[0] + ".json"
    for p in (path, path + ".data", sidecar):
        if os.path.exists(p):
            os.remove(p)
    staging = tempfile.mkdtemp(prefix=".export-", dir=folder)   # same file names, renamed when complete
    try:
        prog.save(os.path.join(staging, base), external_data=bool(external_data))
        for name in sorted(os.listdir(staging), key=lambda n: n == base):   # the .onnx last
            os.replace(os.path.join(staging, name), os.path.join(folder, name))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    with open(sidecar, "w", encoding="utf-8") as f:
        json.dump(card, f, indent=2)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    with torch.no_grad():
        ref = module(example).numpy()
    got = sess.run([output_name], {input_name: example.numpy()})[0]
    diff = float(np.max(np.abs(ref - got)))
    agree = float(np.mean(ref.argmax(1) == got.argmax(1))) if ref.ndim == 4 else float("nan")
    if log:
        log(f"exported {path} ({nbytes / 1e6:.1f} MB of weights{', external data' if external_data else ''}); "
            f"ONNX Runtime vs PyTorch max |diff| = {diff:.2e}, argmax agreement {100 * agree:.3f} %")
    if not diff <= atol:
        for p in (path, path + ".data", sidecar):
            if os.path.exists(p):
                os.remove(p)
        raise RuntimeError(f"ONNX Runtime output differs from PyTorch by {diff:.3g} (> {atol})")
    return diff, agree
