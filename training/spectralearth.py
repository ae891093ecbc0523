"""SpectralEarth segmentation checkpoints (Braham et al., 2024; EnMAP) → ONNX with a model card.

Command line (through ``python -m spectral_transformers.training``)::

    import-spectralearth --checkpoint last.ckpt --config RUN/.hydra/config.yaml
                         --statistics UPSTREAM/data/statistics --bands-csv UPSTREAM/data/enmap_bands_remapped.csv
                         --output spectralearth-cdl.onnx [--id ID] [--class-names names.txt]

The network is rebuilt here from the checkpoint's key layout (the upstream code is no dependency):
``ViTSegmentor`` of ``src/models/semantic_segmentation_module.py`` (``seg_model: conv_head``) with a
``SpecVisionTransformer`` backbone:

* ``model.encoder.spectral_adapter.{0,3,6}``: three Conv3d along the bands (kernels 7, 7, 5, strides
  5, 5, 3, padding 1; 1 → 32 → 64 → 128 channels), each followed by BatchNorm3d and ReLU, then the
  mean over what is left of the band axis (``AdaptiveAvgPool3d((1, None, None))``, written as a
  mean so that it exports);
* ``model.encoder.vit_core.*``: a timm-layout ViT on the 128-channel map (``patch_embed.proj``
  ``token_patch_size`` px, ``cls_token``, learnt ``pos_embed`` (1, 1 + tokens, D), fused
  ``attn.qkv``, ``norm``); heads are not in the weights and come from the backbone name
  (``spec_vit_tiny|small|base|large|huge|giant``);
* ``model.head.segmentation_conv.*``: per ×2 step a bilinear upsampling (align_corners False) and a
  3 × 3 conv (128, 64, … channels, BatchNorm + ReLU except after the last) up to full resolution.

The checkpoint (Lightning ``.ckpt``) holds no hyper-parameters: backbone, ``token_patch_size``,
``num_classes`` and the class table come from the run's composed Hydra config (``.hydra/config.yaml``
of the run; ``${…}`` references are resolved). The class table is ``data.classes`` (product codes,
e.g. CDL values) remapped as the upstream datasets do: the non-zero codes in order, then the
background code 0; ``model.num_classes`` of them are output channels.

Input: the 202 EnMAP bands of ``data/enmap_bands_remapped.csv`` (ascending centre wavelength; the
plugin matches raster bands by wavelength, never by index: in EnMAP L2A files VNIR and SWIR
interleave between 902 and 993 nm) in reflectance × 10000, standardised with the upstream
``data/statistics/mu.npy`` and ``sigma.npy``; the card carries these as ``scale`` 10000 (applied to
reflectance after the file's own scale/offset) and ``mean``/``std``; 128 px tiles.
"""
import argparse
import csv
import math
import os
import re

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from . import foundation_io as fio

PREFIX = "model."
#: Backbone name → (width, depth, heads) of the upstream SpecViT sizes.
BACKBONES = {"spec_vit_tiny": (192, 12, 3), "spec_vit_small": (384, 12, 6), "spec_vit_base": (768, 12, 12),
             "spec_vit_large": (1024, 24, 16), "spec_vit_huge": (1280, 32, 16), "spec_vit_giant": (1536, 40, 24)}
ADAPTER = ((1, 32, 7, 5), (32, 64, 7, 5), (64, 128, 5, 3))  # (in, out, kernel, stride) along the bands
#: Default card licence (``--license`` overrides it with the licence of the checkpoint's weights).
LICENSE = "unspecified (the SpectralEarth repository states no licence); weights: as stated by their source"


class _Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        w = torch.softmax((q * (d // self.heads) ** -0.5) @ k.transpose(-2, -1), dim=-1)
        return self.proj((w @ v).transpose(1, 2).reshape(b, n, d))


class _Block(nn.Module):
    def __init__(self, dim, heads, mlp_ratio=4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = _Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Module()
        self.mlp.fc1 = nn.Linear(dim, int(dim * mlp_ratio))
        self.mlp.fc2 = nn.Linear(int(dim * mlp_ratio), dim)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp.fc2(F.gelu(self.mlp.fc1(self.norm2(x))))


class _ViT(nn.Module):
    def __init__(self, in_chans, width, depth, heads, tile, patch):
        super().__init__()
        self.patch = patch
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(in_chans, width, patch, stride=patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + (tile // patch) ** 2, width))
        self.blocks = nn.ModuleList([_Block(width, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(width, eps=1e-6)

    def forward(self, x):
        """(N, C, H, W) → normalised patch tokens as a map (N, D, H/p, W/p)."""
        n = x.shape[0]
        t = self.patch_embed.proj(x)
        gh, gw = t.shape[-2:]
        t = t.flatten(2).transpose(1, 2)
        t = torch.cat([self.cls_token.expand(n, -1, -1), t], dim=1) + self.pos_embed
        for blk in self.blocks:
            t = blk(t)
        t = self.norm(t)[:, 1:]
        return t.transpose(1, 2).reshape(n, -1, gh, gw)


class _Encoder(nn.Module):
    def __init__(self, width, depth, heads, tile, patch):
        super().__init__()
        layers = []
        for cin, cout, k, s in ADAPTER:
            layers += [nn.Conv3d(cin, cout, (k, 1, 1), stride=(s, 1, 1), padding=(1, 0, 0)), nn.BatchNorm3d(cout),
                       nn.ReLU()]
        self.spectral_adapter = nn.Sequential(*layers)
        self.vit_core = _ViT(ADAPTER[-1][1], width, depth, heads, tile, patch)

    def forward(self, x):
        y = self.spectral_adapter(x.unsqueeze(1))   # (N, 128, bands', H, W)
        return self.vit_core(y.mean(dim=2))          # AdaptiveAvgPool3d((1, None, None)) + squeeze


def _head_layers(width, classes, patch):
    steps = int(math.log2(patch))
    if 2 ** steps != patch:
        raise fio.ImportFailure(f"token_patch_size {patch} is not a power of 2 (the conv head doubles per step).")
    filters = [128 // (2 ** i) for i in range(steps - 1)] + [classes]
    layers, cin = [], width
    for i, cout in enumerate(filters):
        layers += [nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False), nn.Conv2d(cin, cout, 3, padding=1)]
        if i < steps - 1:
            layers += [nn.BatchNorm2d(cout), nn.ReLU()]
        cin = cout
    return layers


class SpectralEarthSegmenter(nn.Module):
    """(N, bands, tile, tile) standardised EnMAP reflectance → logits (N, classes, tile, tile)."""

    def __init__(self, width=384, depth=12, heads=6, classes=14, tile=128, patch=4, bands=202):
        super().__init__()
        self.bands, self.tile, self.classes = bands, tile, classes
        self.encoder = _Encoder(width, depth, heads, tile, patch)
        self.head = nn.Module()
        self.head.segmentation_conv = nn.Sequential(*_head_layers(width, classes, patch))

    def forward(self, x):
        return self.head.segmentation_conv(self.encoder(x))


# -- config -----------------------------------------------------------------------------------

def load_config(path):
    """The composed Hydra config (YAML) as a dict with ``${a.b}`` references resolved."""
    import yaml

    if not os.path.isfile(path):
        raise fio.ImportFailure(f"--config: file not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            cfg = yaml.safe_load(f)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise fio.ImportFailure(f"--config: {os.path.basename(path)} is not readable YAML ({exc}).") from None
    if not isinstance(cfg, dict) or not isinstance(cfg.get("model"), dict):
        raise fio.ImportFailure("--config: expected the run's composed Hydra config (with 'model:' and 'data:' "
                                "sections, e.g. <run>/.hydra/config.yaml).")
    return cfg


def _lookup(cfg, dotted):
    node = cfg
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise fio.ImportFailure(f"--config: cannot resolve '${{{dotted}}}'.")
        node = node[part]
    return node


def cfg_value(cfg, dotted, default=None, depth=0):
    try:
        value = _lookup(cfg, dotted)
    except fio.ImportFailure:
        return default
    if isinstance(value, str):
        m = re.fullmatch(r"\$\{([A-Za-z0-9_.]+)\}", value.strip())
        if m and depth < 10:
            return cfg_value(cfg, m.group(1), default, depth + 1)
    return default if value is None else value


def class_table(cfg, num_classes):
    """[(output channel, code)]: ``data.classes`` without 0, in order, then 0 (as the datasets'
    ordinal map); generic codes when the config names none."""
    codes = cfg_value(cfg, "data.classes")
    if isinstance(codes, list) and codes:
        ordered = [int(c) for c in codes if int(c) != 0] + ([0] if 0 in [int(c) for c in codes] else [])
        if len(ordered) < num_classes:
            raise fio.ImportFailure(f"--config: data.classes has {len(ordered)} classes but the checkpoint "
                                    f"outputs {num_classes}.")
        return list(enumerate(ordered[:num_classes]))
    return [(i, None) for i in range(num_classes)]


def read_band_csv(path):
    """(names, centre nm, FWHM nm) of the model's bands from ``enmap_bands_remapped.csv``."""
    if not path or not os.path.isfile(path):
        raise fio.ImportFailure(f"--bands-csv: file not found: {path} (the upstream data/enmap_bands_remapped.csv).")
    with open(path, encoding="utf-8", newline="") as f:
        rows = [{k.strip(): (v or "").strip() for k, v in r.items()} for r in csv.DictReader(f)]
    try:
        order = sorted(rows, key=lambda r: int(r["idx"]))
        centres = [float(r["center_nm"]) for r in order]
        fwhm = [float(r["fwhm_nm"]) for r in order]
    except (KeyError, ValueError):
        raise fio.ImportFailure("--bands-csv: expected columns idx, center_nm, fwhm_nm.") from None
    return centres, fwhm


def read_statistics(folder, bands):
    arrays = []
    for name in ("mu.npy", "sigma.npy"):
        p = os.path.join(folder or "", name)
        if not os.path.isfile(p):
            raise fio.ImportFailure(f"--statistics: {p} not found (the upstream data/statistics folder).")
        a = np.load(p, allow_pickle=False).astype(np.float64).ravel()
        if a.size != bands:
            raise fio.ImportFailure(f"--statistics: {name} has {a.size} values; the model has {bands} bands.")
        arrays.append(a)
    if not np.all(np.isfinite(arrays[0])) or not np.all(arrays[1] > 0):
        raise fio.ImportFailure("--statistics: mu must be finite and sigma > 0.")
    return arrays


# -- checkpoint -------------------------------------------------------------------------------

def model_state(ckpt):
    """``model.*`` tensors of a Lightning checkpoint (``{'state_dict': …}``) with the prefix removed."""
    state = ckpt.get("state_dict") if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise fio.ImportFailure("--checkpoint: no 'state_dict' (expected a Lightning .ckpt of the SpectralEarth "
                                "SemanticSegmentationModule).")
    out = {k[len(PREFIX):]: v for k, v in state.items() if k.startswith(PREFIX) and torch.is_tensor(v)}
    if not any(k.startswith("encoder.vit_core.") for k in out):
        what = "a ResNet/FCN run" if any(k.startswith(("encoder.resnet", "classifier.")) for k in out) else \
            "not a SpectralEarth ViT segmentation checkpoint"
        raise fio.ImportFailure(f"--checkpoint: no 'model.encoder.vit_core.*' keys ({what}); the importer supports "
                                "seg_model 'conv_head' with spec_vit_* backbones.")
    return out


def architecture(cfg, state, overrides=None):
    """dict(width, depth, heads, classes, tile, patch, bands, backbone) from config + weights."""
    o = overrides or {}
    backbone = o.get("backbone") or cfg_value(cfg, "model.backbone")
    if backbone not in BACKBONES:
        raise fio.ImportFailure(f"--config: model.backbone is {backbone!r}; supported: {', '.join(BACKBONES)}.")
    seg = cfg_value(cfg, "model.seg_model", "conv_head")
    if seg != "conv_head":
        raise fio.ImportFailure(f"--config: model.seg_model is {seg!r}; only 'conv_head' (ViTSegmentor) is supported.")
    width, depth, heads = BACKBONES[backbone]
    w = state.get("encoder.vit_core.patch_embed.proj.weight")
    if w is None:
        raise fio.ImportFailure("--checkpoint: no model.encoder.vit_core.patch_embed.proj.weight.")
    patch = int(o.get("token_patch_size") or cfg_value(cfg, "model.token_patch_size", 4))
    if int(w.shape[-1]) != patch:
        raise fio.ImportFailure(f"--config: model.token_patch_size is {patch} but the checkpoint's patch "
                                f"embedding is {int(w.shape[-1])} px.")
    classes = int(o.get("num_classes") or cfg_value(cfg, "model.num_classes", 0) or 0)
    last = max((k for k in state if k.startswith("head.segmentation_conv.") and k.endswith(".weight")),
               key=lambda k: int(k.split(".")[2]), default=None)
    if last is None:
        raise fio.ImportFailure("--checkpoint: no model.head.segmentation_conv.* (conv head) weights.")
    if classes and int(state[last].shape[0]) != classes:
        raise fio.ImportFailure(f"--config: model.num_classes is {classes} but the checkpoint's head outputs "
                                f"{int(state[last].shape[0])} channels.")
    classes = int(state[last].shape[0])
    tile = int(cfg_value(cfg, "data.patch_size", 0) or cfg_value(cfg, "model.img_size", 128) or 128)
    tokens = int(state["encoder.vit_core.pos_embed"].shape[1]) - 1
    if (tile // patch) ** 2 != tokens:
        tile = int(round(math.sqrt(tokens))) * patch
    bands = int(cfg_value(cfg, "data.num_bands", 202) or 202)
    return {"backbone": backbone, "width": width, "depth": depth, "heads": heads, "classes": classes,
            "tile": tile, "patch": patch, "bands": bands}


def build(arch):
    return SpectralEarthSegmenter(arch["width"], arch["depth"], arch["heads"], arch["classes"], arch["tile"],
                                  arch["patch"], arch["bands"])


def expected_layout(model):
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def build_from_state(cfg, state, overrides=None):
    arch = architecture(cfg, state, overrides)
    model = build(arch)
    expected = expected_layout(model)
    fio.check_layout(state, expected, f"SpectralEarth {arch['backbone']} conv_head")
    model.load_state_dict({k: state[k] for k in expected})
    return model.eval(), arch


def make_card(arch, cfg, centres, fwhm, mu, sigma, model_id, class_names=None, source_path="", license=None):
    if len(centres) != arch["bands"]:
        raise fio.ImportFailure(f"--bands-csv: {len(centres)} bands listed; the model has {arch['bands']}.")
    product = cfg_value(cfg, "data.product") or cfg_value(cfg, "experiment_setup") or "class"
    table = class_table(cfg, arch["classes"])
    classes = []
    for (i, code), name in zip(table, class_names or [None] * len(table)):
        label = name or (f"{product} {code}" if code is not None else f"class {i}")
        if code == 0 and not name:
            label = f"{product} 0 (background)"
        classes.append({"value": i, "name": label, "color": fio.class_colour(i)})
    return {
        "id": model_id,
        "name": f"SpectralEarth {arch['backbone']} segmentation ({product}, {arch['classes']} classes)",
        "version": "1",
        "task": "segmentation",
        "source": {"repository": "https://github.com/AABNassim/spectral_earth",
                   "paper": "Braham et al., SpectralEarth: Training Hyperspectral Foundation Models at Scale, 2024",
                   "checkpoint": os.path.basename(source_path)},
        "license": license or LICENSE,
        "description": f"SpectralEarth spectral adapter + ViT ({arch['backbone']}, token patch {arch['patch']} px) "
                       "with the conv_head segmentation head, imported by import-spectralearth. EnMAP bands are "
                       "matched by centre wavelength.",
        "input": {
            "tensor": fio.INPUT_NAME, "layout": "NCHW", "tile_size": [arch["tile"], arch["tile"]],
            "bands": [{"name": f"EnMAP-{i + 1}", "wavelength_nm": c, "fwhm_nm": w}
                      for i, (c, w) in enumerate(zip(centres, fwhm))],
            "scale": 10000.0, "offset": 0.0, "mean": [float(v) for v in mu], "std": [float(v) for v in sigma],
            "nodata": "mask", "fill_value": 0.0,
        },
        "output": {"tensor": fio.OUTPUT_NAME, "kind": "logits", "classes": classes},
        "tiling": {"overlap": 0.25, "crop": 4, "scheme": "edge"},
        "spectralearth": {"backbone": arch["backbone"], "token_patch_size": arch["patch"],
                          "class_codes": [code for _, code in table]},
    }


def import_checkpoint(checkpoint, config, statistics, bands_csv, output, model_id="spectralearth-segmentation",
                      class_names=None, overrides=None, external_data=None, log=print, license=None):
    fio.check_output(output)
    cfg = load_config(config)
    centres, fwhm = read_band_csv(bands_csv)
    state = model_state(fio.load_checkpoint(checkpoint))
    model, arch = build_from_state(cfg, state, overrides)
    mu, sigma = read_statistics(statistics, arch["bands"])
    names = fio.parse_class_names(class_names, arch["classes"])
    card = make_card(arch, cfg, centres, fwhm, mu, sigma, model_id, names, checkpoint, license)
    log(f"rebuilt SpectralEarth {arch['backbone']} (width {arch['width']}, depth {arch['depth']}, heads "
        f"{arch['heads']}, token patch {arch['patch']} px, tile {arch['tile']} px) with {arch['classes']} classes: "
        + ", ".join(c["name"] for c in card["output"]["classes"]))
    example = torch.randn(2, arch["bands"], arch["tile"], arch["tile"], generator=torch.Generator().manual_seed(0))
    return fio.export_imported(model, example, output, card, external_data, log)


def main(argv=None):
    p = argparse.ArgumentParser(prog="import-spectralearth", description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", required=True, help="Lightning .ckpt of a SpectralEarth segmentation run")
    p.add_argument("--config", required=True, help="the run's composed Hydra config (.hydra/config.yaml)")
    p.add_argument("--statistics", required=True, help="folder with mu.npy and sigma.npy (upstream data/statistics)")
    p.add_argument("--bands-csv", required=True, help="upstream data/enmap_bands_remapped.csv (band centres)")
    p.add_argument("--backbone", choices=sorted(BACKBONES), help="override model.backbone")
    fio.add_card_arguments(p, "spectralearth-segmentation")
    a = p.parse_args(argv)
    return fio.run_command("import-spectralearth", lambda: import_checkpoint(
        a.checkpoint, a.config, a.statistics, a.bands_csv, a.output, a.id, a.class_names, {"backbone": a.backbone},
        a.external_data or None, license=a.license))
