"""L-TAE model card, checkpoints and ONNX export (inputs ``series``, ``doy``; outputs ``logits``,
``attention``), and the ``ltae-export`` command line."""
import argparse
import json
import os
import warnings

from .ltae import EOLEARN_LULC, _torch, build_model


def make_card(model, info, model_id, channels, dates_policy="day_of_year", reference_date=None,
              class_names=None, class_colors=None, name=None, version="0.1.0", source="", license="MIT",
              description="", extra=None):
    """Model card (task ``temporal-attention``, architecture ``ltae``) for an exported L-TAE."""
    cfg = model.config
    class_values = info["class_values"]
    classes = []
    for i, v in enumerate(class_values):
        label, colour = EOLEARN_LULC.get(int(v), (f"class {v}", "#808080"))
        classes.append({"index": i, "value": int(v),
                        "name": (class_names or {}).get(int(v), label) if isinstance(class_names, dict)
                        else (class_names[i] if class_names else label),
                        "color": (class_colors[i] if class_colors else colour)})
    card = {
        "id": model_id, "name": name or model_id, "version": version, "task": "temporal-attention",
        "architecture": "ltae", "source": source, "license": license,
        "description": description or "Pixel-wise Lightweight Temporal Attention Encoder (Garnot & Landrieu 2020).",
        "inputs": {"series": "float32 (N, T, C): per pixel, per date, channels in 'bands' order",
                   "doy": "float32 (T,): acquisition positions in days (see dates_policy)"},
        "outputs": {"logits": "(N, n_classes)", "attention": "(N, heads, T) softmax over dates"},
        "bands": list(channels), "channels": len(channels),
        "stack_order": "date-major: band index = date_index * channels + channel_index",
        "normalisation": {"mean": [float(v) for v in info["mean"]], "std": [float(v) for v in info["std"]],
                          "applied_in_graph": True},
        "dates_policy": {"kind": dates_policy, "reference_date": reference_date,
                         "positional_encoding": "sinusoidal", "period": cfg["period"]},
        "classes": classes, "n_classes": len(classes),
        "heads": cfg["n_head"], "d_model": cfg["d_model"], "d_k": cfg["d_k"], "mlp_hidden": cfg["mlp_hidden"],
    }
    if extra:
        card.update(extra)
    return card


def save_checkpoint(path, model, card):
    torch = _torch()
    torch.save({"config": model.config, "state_dict": model.state_dict(), "card": card}, path)


def load_checkpoint(path):
    torch = _torch()
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    cfg = ckpt["config"]
    model = build_model(cfg["in_channels"], cfg["n_classes"], cfg["d_model"], cfg["n_head"], cfg["d_k"],
                        cfg["mlp_hidden"], cfg["dropout"], cfg["period"])
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    return model, ckpt["card"]


def export_onnx(model, path, card=None, opset=18):
    """Export to ONNX (inputs ``series`` (N, T, C), ``doy`` (T,); outputs ``logits``, ``attention``;
    dynamic N and T) and embed ``card`` as metadata ``model_card``. Returns ``path``."""
    import onnx

    torch = _torch()
    model.eval()
    c = model.config["in_channels"]
    example = (torch.zeros(3, 5, c), torch.arange(5, dtype=torch.float32) * 10.0)
    tmp = f"{path}.tmp-{os.getpid()}"
    n, t = torch.export.Dim("N"), torch.export.Dim("T")
    # torch.export-based exporter (the TorchScript one is deprecated). T shared by both inputs makes
    # the exporter say it keeps one name for the two axes: expected, not worth a warning.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*axis name", category=UserWarning)
        prog = torch.onnx.export(model, example, None, dynamo=True, opset_version=opset,
                                 input_names=["series", "doy"], output_names=["logits", "attention"],
                                 dynamic_shapes={"series": {0: n, 1: t}, "doy": {0: t}},
                                 optimize=True, verbose=False)
    prog.save(tmp)
    proto = onnx.load(tmp)
    if card is not None:
        entry = proto.metadata_props.add()
        entry.key, entry.value = "model_card", json.dumps(card)
    onnx.checker.check_model(proto)
    onnx.save(proto, path)
    os.remove(tmp)
    if card is not None:
        with open(os.path.splitext(path)[0] + ".json", "w") as fh:
            json.dump(card, fh, indent=2)
    return path


def main_export(argv=None):
    """``ltae-export``: checkpoint (.pt from ltae-train) → ONNX with the model card embedded."""
    p = argparse.ArgumentParser(prog="ltae-export", description=main_export.__doc__)
    p.add_argument("checkpoint")
    p.add_argument("onnx")
    a = p.parse_args(argv)
    model, card = load_checkpoint(a.checkpoint)
    export_onnx(model, a.onnx, card)
    print(a.onnx)
    return 0
