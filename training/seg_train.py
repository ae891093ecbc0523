"""Fine-tune a Prithvi-style segmenter (or the hyperspectral adapter + ViT) on chips and export ONNX.

Command line (through ``python -m spectral_transformers.training``)::

    seg-train --layout sen1floods11 --images CHIPS_DIR_OR_FILES --preset tiny --tile 64 --steps 200 \
              --out models/prithvi-tiny-sen1floods11.onnx [--checkpoint run.pt] [--pretrained Prithvi_100M.pt]
    seg-train --layout hyperspectral --images enmap_tile.tif --masks enmap_tile_labels.tif --tile 32 ...
    seg-export --checkpoint run.pt --out model.onnx [--external-data]

The ONNX model takes ``image`` float32 (N, C, H, W) (or (N, C, T, H, W) for T > 1 frames) of
normalised reflectance — the plugin applies ``scale`` and ``mean``/``std`` from the model card — and
returns ``logits`` (N, classes, H, W). N is dynamic, H = W = the tile size. The card (task
``segmentation``) is stored in the ONNX metadata ``model_card`` and as a sidecar ``<model>.json``;
ONNX Runtime output is checked against PyTorch after export.
"""
import argparse
import json
import os
import sys
import time
from dataclasses import asdict

import numpy as np
import torch
from torch.nn import functional as F

from . import onnx_export, seg_data
from .prithvi import PRESETS, PrithviSegmenter, ViTConfig, load_prithvi_weights, preset
from .spectral_adapter import HyperspectralSegmenter, tiny_hyperspectral_config

OPSET = 18
INPUT_NAME = "image"
OUTPUT_NAME = "logits"
#: Models larger than this (bytes of parameters) are saved with an external-data file.
EXTERNAL_DATA_BYTES = int(1.5 * 1024 ** 3)
#: Colours for classes beyond those a layout names (RGBA hex).
_PALETTE = ["#1f77b4ff", "#ff7f0eff", "#2ca02cff", "#d62728ff", "#9467bdff", "#8c564bff",
            "#e377c2ff", "#7f7f7fff", "#bcbd22ff", "#17becfff"]


# -- model construction -----------------------------------------------------------------------

def build_model(spec):
    """Model from a spec dict: ``kind`` ('prithvi' | 'hyperspectral'), ``vit`` (ViTConfig fields),
    ``num_classes``, and for 'hyperspectral' ``adapter_channels``."""
    cfg = ViTConfig(**spec["vit"])
    if spec["kind"] == "hyperspectral":
        return HyperspectralSegmenter(cfg, spec["num_classes"], spec["in_bands"],
                                      spec.get("adapter_channels", cfg.in_chans), spec.get("adapter_hidden", 8))
    if spec["kind"] == "prithvi":
        return PrithviSegmenter(cfg, spec["num_classes"])
    raise ValueError(f"unknown model kind {spec['kind']!r}")


def model_spec(model):
    """The spec dict that :func:`build_model` turns back into ``model``'s architecture."""
    if isinstance(model, HyperspectralSegmenter):
        return {"kind": "hyperspectral", "vit": asdict(model.cfg), "num_classes": model.num_classes,
                "in_bands": model.in_bands, "adapter_channels": model.adapter.out_channels,
                "adapter_hidden": model.adapter.hidden}
    return {"kind": "prithvi", "vit": asdict(model.cfg), "num_classes": model.num_classes}


# -- training ---------------------------------------------------------------------------------

def train(model, images, labels, tile, steps, batch=4, lr=1e-3, seed=0, log=None, class_weights=None):
    """Train ``model`` for ``steps`` AdamW steps on random tiles of normalised ``images`` (list of
    (C, H, W)) with ``labels`` (list of (H, W), −1 ignored). Returns the per-step losses."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    if steps < 1:
        raise ValueError("steps must be >= 1")
    # one-cycle schedule (warm-up 20 %); constant rate for very short runs
    sched = (torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.2)
             if steps >= 20 else None)
    weight = torch.as_tensor(class_weights, dtype=torch.float32) if class_weights is not None else None
    losses = []
    model.train()
    for step in range(steps):
        x, y = seg_data.random_tiles(images, labels, tile, batch, rng)
        x = torch.from_numpy(x)
        logits = model(x)
        loss = F.cross_entropy(logits, torch.from_numpy(y), weight=weight, ignore_index=seg_data.IGNORE)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
        losses.append(loss.item())
        if log and (step % 10 == 0 or step == steps - 1):
            log(f"step {step + 1}/{steps} loss {losses[-1]:.4f}")
    model.eval()
    return losses


@torch.no_grad()
def predict(model, image, tile):
    """Class map (H, W) of a normalised image (C, H, W) by non-overlapping tiles (edge tiles flush)."""
    model.eval()
    c, h, w = image.shape
    out = np.zeros((h, w), dtype=np.int64)
    rows = sorted({min(r, h - tile) for r in range(0, h, tile)})
    cols = sorted({min(q, w - tile) for q in range(0, w, tile)})
    for r in rows:
        for q in cols:
            x = torch.from_numpy(np.ascontiguousarray(image[None, :, r:r + tile, q:q + tile]))
            out[r:r + tile, q:q + tile] = model(x).argmax(1)[0].numpy()
    return out


def scores(pred, label, num_classes):
    """Pixel accuracy and per-class IoU over labelled pixels (label ≥ 0)."""
    ok = label >= 0
    p, t = pred[ok], label[ok]
    iou = []
    for k in range(num_classes):
        inter = np.sum((p == k) & (t == k))
        union = np.sum((p == k) | (t == k))
        iou.append(float(inter / union) if union else float("nan"))
    return {"accuracy": float(np.mean(p == t)) if t.size else float("nan"), "iou": iou}


# -- model card -------------------------------------------------------------------------------

def segmentation_card(model_id, *, bands, scale, mean, std, class_names, class_colors=None, tile,
                      frames=1, name=None, version="0.1.0", source="", license="", description="",
                      overlap=0.25, training=None):
    """A ``segmentation`` model card (schema of ``runtime/models/model_card.py``).

    ``bands``: list of dicts {name, wavelength_nm[, fwhm_nm, aliases]}; ``scale``: stored value →
    reflectance factor(s); ``mean``/``std``: per band in reflectance units (after ``scale``)."""
    colors = list(class_colors or [])
    classes = [{"value": i, "name": n, "color": colors[i] if i < len(colors) else _PALETTE[i % len(_PALETTE)]}
               for i, n in enumerate(class_names)]
    card = {
        "id": model_id,
        "name": name or model_id,
        "version": version,
        "task": "segmentation",
        "source": source,
        "license": license,
        "description": description,
        "architecture": "prithvi-vit",
        "input": {
            "tensor": INPUT_NAME,
            "layout": "NCHW" if frames == 1 else "NCTHW",
            "tile_size": [int(tile), int(tile)],
            "frames": int(frames),
            "stacking": "date-major",
            "bands": bands,
            "scale": scale,
            "mean": [float(v) for v in mean],
            "std": [float(v) for v in std],
            "nodata": "mask",
            "fill_value": 0.0,
        },
        "output": {"tensor": OUTPUT_NAME, "kind": "logits", "classes": classes},
        "tiling": {"overlap": overlap},
    }
    if training:
        card["training"] = training
    return card


# -- export -----------------------------------------------------------------------------------

class _Export(torch.nn.Module):
    """Wraps a segmenter so that the ONNX input is 4-D (T = 1) or (N, C, T, H, W)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, image):
        return self.model(image)


def _example_input(model, tile, batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    if isinstance(model, HyperspectralSegmenter):
        return torch.randn(batch, model.in_bands, tile, tile, generator=g)
    c, t = model.cfg.in_chans, model.cfg.num_frames
    shape = (batch, c, tile, tile) if t == 1 else (batch, c, t, tile, tile)
    return torch.randn(*shape, generator=g)


def export_onnx(model, path, card, external_data=None, opset=OPSET, atol=1e-4, log=None):
    """Export ``model`` (eval mode, batch dynamic, tile fixed) to ``path`` with ``card`` embedded as
    metadata ``model_card`` and written as the sidecar ``<path stem>.json``; verifies ONNX Runtime
    against PyTorch on a batch of 2 (max abs diff ≤ ``atol``, else RuntimeError). Weights go to
    ``<path>.data`` when ``external_data`` is True (default: when larger than ~1.5 GB).
    Returns the max abs difference."""
    model.eval()
    example = _example_input(model, int(card["input"]["tile_size"][0]))
    diff, _ = onnx_export.export_checked(_Export(model).eval(), example, path, card, external_data,
                                         EXTERNAL_DATA_BYTES, opset, atol, "spectral_transformers.training.seg_train",
                                         log, INPUT_NAME, OUTPUT_NAME)
    return diff


# -- checkpoints ------------------------------------------------------------------------------

def save_checkpoint(path, model, card):
    """Save weights + architecture spec + card (loadable with ``weights_only=True``)."""
    torch.save({"spec": model_spec(model), "state_dict": model.state_dict(), "card": json.dumps(card)}, path)


def load_checkpoint(path):
    """(model, card) from a :func:`save_checkpoint` file (``torch.load(weights_only=True)``)."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    model = build_model(ckpt["spec"])
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    return model, json.loads(ckpt["card"])


# -- end-to-end recipes -----------------------------------------------------------------------

def train_multispectral(pairs, lay, model_id, *, preset_name="tiny", tile=64, steps=100, batch=4,
                        lr=1e-3, seed=0, pretrained=None, log=None, **vit_overrides):
    """Fine-tune a Prithvi-style segmenter on chip ``pairs`` of layout ``lay``.

    Returns (model, card, report): report has the loss history and accuracy/IoU on the training
    chips (labelled pixels)."""
    chips = [seg_data.load_chip(i, m, lay) for i, m in pairs]
    mean, std = seg_data.band_stats(chips)
    images = [seg_data.normalise(c.image, mean, std) for c in chips]
    labels = [c.label for c in chips]
    torch.manual_seed(seed)          # reproducible initialisation
    cfg = preset(preset_name, img_size=tile, in_chans=len(lay.band_indices), **vit_overrides)
    model = PrithviSegmenter(cfg, num_classes=len(lay.class_names))
    if pretrained:
        missing, unexpected = load_prithvi_weights(model.encoder, pretrained, strict=False)
        if log:
            log(f"loaded {pretrained}: {len(missing)} missing, {len(unexpected)} unexpected keys")
    t0 = time.time()
    losses = train(model, images, labels, tile, steps, batch, lr, seed, log)
    fit = [scores(predict(model, im, tile), lab, model.num_classes) for im, lab in zip(images, labels)]
    bands = [{"name": n, "wavelength_nm": w, "aliases": list(a)}
             for n, w, a in zip(lay.band_names, lay.wavelengths_nm, lay.aliases or [()] * len(lay.band_names))]
    report = {"steps": steps, "tile": tile, "batch": batch, "lr": lr, "seed": seed,
              "seconds": round(time.time() - t0, 1), "loss_first": losses[0], "loss_last": losses[-1],
              "train_accuracy": float(np.mean([f["accuracy"] for f in fit])),
              "train_iou": [float(np.nanmean([f["iou"][k] for f in fit])) for k in range(model.num_classes)],
              "chips": [os.path.basename(i) for i, _ in pairs]}
    card = segmentation_card(
        model_id, bands=bands, scale=lay.scale, mean=mean, std=std, class_names=list(lay.class_names),
        class_colors=list(lay.class_colors), tile=tile, frames=cfg.num_frames,
        name=f"Prithvi-style ViT ({preset_name}) fine-tuned on {lay.name}",
        source="trained with spectral_transformers.training seg-train" + (f" from {os.path.basename(str(pretrained))}" if pretrained else " from scratch"),
        license=(f"derived from the {lay.name} training data; see its licence"
                 + ("; encoder initialised from Prithvi weights (Apache-2.0)" if pretrained else "")),
        description=(f"{lay.description}: {len(pairs)} chip(s), {steps} steps, tile {tile}. "
                     "Demonstration model: trained on very little data, not for operational use."),
        overlap=0.25, training=report)
    return model, card, report


def train_hyperspectral(image_path, label_path, model_id, *, tile=32, patch=8, steps=60, batch=2, lr=2e-3,
                        seed=0, scale_in_card=1.0, class_names=None, log=None):
    """Train the spectral adapter + tiny ViT on one labelled hyperspectral tile.

    ``scale_in_card``: factor from the values the plugin reads to reflectance (1.0 when the reader
    applies the raster's GDAL scale, as for EnMAP's 0.0001). Returns (model, card, report)."""
    chip = seg_data.load_hyperspectral_chip(image_path, label_path)
    mean, std = seg_data.band_stats([chip])
    image = seg_data.normalise(chip.image, mean, std)
    num_classes = int(chip.label.max()) + 1
    torch.manual_seed(seed)
    cfg = tiny_hyperspectral_config(tile, patch)
    model = HyperspectralSegmenter(cfg, num_classes, image.shape[0], adapter_channels=cfg.in_chans)
    t0 = time.time()
    counts = np.bincount(chip.label[chip.label >= 0], minlength=num_classes).astype(np.float64)
    weights = (counts.sum() / np.maximum(counts, 1)) ** 0.5
    weights = weights / weights.mean()
    losses = train(model, [image], [chip.label], tile, steps, batch, lr, seed, log, class_weights=weights)
    fit = scores(predict(model, image, tile), chip.label, num_classes)
    bands = [{"name": n, "wavelength_nm": w, **({"fwhm_nm": f} if f else {})}
             for n, w, f in zip(chip.band_names, chip.wavelengths_nm, chip.fwhm_nm or [None] * len(chip.wavelengths_nm))]
    names = list(class_names or [f"class {k}" for k in range(num_classes)])
    report = {"steps": steps, "tile": tile, "patch": patch, "seconds": round(time.time() - t0, 1),
              "loss_first": losses[0], "loss_last": losses[-1], "train_accuracy": fit["accuracy"],
              "train_iou": fit["iou"], "bands_used": len(bands), "bands_dropped": chip.extra["dropped_bands"],
              "source_bands": list(chip.source_bands)}
    card = segmentation_card(
        model_id, bands=bands, scale=scale_in_card, mean=mean, std=std, class_names=names, tile=tile,
        name="Spectral adapter + tiny ViT (hyperspectral)",
        source="trained with spectral_transformers.training seg-train --layout hyperspectral",
        license=f"derived from the training data ({os.path.basename(str(image_path))}); see its licence",
        description=(f"SpectralEarth-style 1-D spectral adapter ({len(bands)} bands → {cfg.in_chans} channels) "
                     f"+ Prithvi-style ViT, trained on {os.path.basename(str(image_path))} for {steps} steps. "
                     "Demonstration model."),
        overlap=0.25, training=report)
    card["architecture"] = "spectral-adapter-vit"
    return model, card, report


# -- command line -----------------------------------------------------------------------------

def _add_train_args(p):
    p.add_argument("--layout", default="sen1floods11", choices=list(seg_data.LAYOUTS) + ["hyperspectral"])
    p.add_argument("--images", nargs="+", required=True, help="chip files or folders (searched recursively)")
    p.add_argument("--masks", help="label raster (hyperspectral layout only)")
    p.add_argument("--preset", default="tiny", choices=sorted(PRESETS), help="encoder size")
    p.add_argument("--tile", type=int, default=None, help="tile edge in pixels (default 64; 32 hyperspectral)")
    p.add_argument("--patch", type=int, default=None, help="patch size (default: preset's; 8 hyperspectral)")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    p.add_argument("--pretrained", help="Prithvi encoder checkpoint (.pt, loaded with weights_only=True)")
    p.add_argument("--id", dest="model_id", help="model id (default: the output file name)")
    p.add_argument("--class-names", nargs="+", help="class names (hyperspectral layout)")
    p.add_argument("--out", required=True, help="ONNX file to write (sidecar card .json beside it)")
    p.add_argument("--checkpoint", help="also save a PyTorch checkpoint here (for seg-export)")
    p.add_argument("--external-data", action="store_true", help="store weights in <out>.data")


def seg_train_main(argv=None):
    p = argparse.ArgumentParser(prog="seg-train", description=__doc__.split("\n\n")[0])
    _add_train_args(p)
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    log = lambda m: print(m, flush=True)  # noqa: E731
    model_id = a.model_id or os.path.splitext(os.path.basename(a.out))[0]
    if a.layout == "hyperspectral":
        if not a.masks or len(a.images) != 1:
            p.error("--layout hyperspectral needs one --images raster and --masks")
        model, card, report = train_hyperspectral(
            a.images[0], a.masks, model_id, tile=a.tile or 32, patch=a.patch or 8, steps=a.steps,
            batch=a.batch, lr=a.lr, seed=a.seed, class_names=a.class_names, log=log)
    else:
        lay = seg_data.layout(a.layout)
        pairs = seg_data.find_pairs(a.images, lay)
        overrides = {}
        if a.patch:
            overrides["patch_size"] = a.patch
        model, card, report = train_multispectral(
            pairs, lay, model_id, preset_name=a.preset, tile=a.tile or 64, steps=a.steps, batch=a.batch,
            lr=a.lr, seed=a.seed, pretrained=a.pretrained, log=log, **overrides)
    log(json.dumps({k: v for k, v in report.items() if k != "source_bands"}))
    if a.checkpoint:
        save_checkpoint(a.checkpoint, model, card)
        log(f"checkpoint {a.checkpoint}")
    export_onnx(model, a.out, card, external_data=a.external_data or None, log=log)
    return 0


def seg_export_main(argv=None):
    p = argparse.ArgumentParser(prog="seg-export", description="Export a seg-train checkpoint to ONNX + card.")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--id", dest="model_id", help="override the card's id")
    p.add_argument("--external-data", action="store_true")
    p.add_argument("--opset", type=int, default=OPSET)
    a = p.parse_args(argv)
    model, card = load_checkpoint(a.checkpoint)
    if a.model_id:
        card["id"] = a.model_id
    export_onnx(model, a.out, card, external_data=a.external_data or None, opset=a.opset,
                log=lambda m: print(m, flush=True))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(seg_train_main())
