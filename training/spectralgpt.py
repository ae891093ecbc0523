"""SpectralGPT segmentation checkpoints (Hong et al., IEEE TPAMI 2024) → ONNX with a model card.

Command line (through ``python -m spectral_transformers.training``)::

    import-spectralgpt --checkpoint best_model.pth --output spectralgpt-seg.onnx
                       [--class-names names.txt] [--id ID] [--external-data]

The network is rebuilt here from the checkpoint's key layout (the upstream code is no dependency);
it is the SegMunich segmenter of the official repository (``VisionTransformer`` of
``downstream_tasks/SegMunich/src/models_vit_tensor_CD_2.py``, ``vit_base_patch8``):

* spectral-spatial tokens: a Conv3d over (3 bands × 8 × 8 px) of the 12-band, 128 × 128 tile
  (``patch_embed.proj.weight`` (D, 1, 3, 8, 8)) → 4 band groups × 16 × 16 tokens, plus a spatial
  (``pos_embed_spatial`` (1, 256, D)) and a band-group (``pos_embed_temporal`` (1, 4, D)) embedding;
* ``depth`` pre-norm transformer blocks with separate ``attn.q/k/v`` projections (heads are not
  stored in the weights: 12 for D = 768, 16 for D = 1024, or ``--num-heads``); the final ``norm`` is
  stored but not applied by the segmenter;
* ``fc`` (Linear 4 → 1) merges the band groups per token; ``conv0–3`` turn the 16 × 16 × D map into a
  256 × 128², 512 × 64², 1024 × 32², 2048 × 16² pyramid; ``decoder`` is a PPM (max-pooling to
  1, 2, 3, 6 bins) + FPN head, ``cls_seg`` a 3 × 3 conv to the classes at full resolution.

Input: Sentinel-2 B1, B2, B3, B4, B5, B6, B7, B8, B8A, B9, B11, B12 (no B10) in that order, each band
scaled per image by min–max: ``(x − min) / (max − min + 1e-9)``. The card asks the plugin's tile
loop for exactly that per tile (``input.normalization = "tile-minmax"``, computed over the tile's
valid pixels), so one tile-sized chip gives the upstream result; on a larger scene every 128 px
window is scaled by its own minimum and maximum (see models/README.md).

ONNX: ``AdaptiveMaxPool2d(3)``/``(6)`` on a 16 × 16 grid have no exporter support; the rebuild
takes the maximum over the same bins explicitly (bin ``i`` of ``n`` spans
``floor(i·L/n) … ceil((i+1)·L/n)``), which is exact.
"""
import argparse
import math
import os

import torch
from torch import nn
from torch.nn import functional as F

from . import foundation_io as fio

#: Model bands (Sentinel-2 MSI names, centre wavelengths nm, FWHM nm), in model channel order.
S2_BANDS = (("B01", 443.0, 20.0), ("B02", 490.0, 65.0), ("B03", 560.0, 35.0), ("B04", 665.0, 30.0),
            ("B05", 705.0, 15.0), ("B06", 740.0, 15.0), ("B07", 783.0, 20.0), ("B08", 842.0, 115.0),
            ("B8A", 865.0, 20.0), ("B09", 945.0, 20.0), ("B11", 1610.0, 90.0), ("B12", 2190.0, 180.0))
TILE = 128
PATCH = 8
BAND_GROUP = 3
#: Attention heads per width (the official sizes: vit_base_patch8, vit_large_patch8_128).
HEADS_BY_WIDTH = {768: 12, 1024: 16, 1280: 16}
#: Default card licence (``--license`` overrides it with the licence of the checkpoint's weights).
LICENSE = "GPL-3.0-only (SpectralGPT code, per its README); weights: as stated by their source"


class _Block(nn.Module):
    """Pre-norm transformer block with separate q/k/v projections (keys ``norm1``, ``attn.q|k|v|proj``,
    ``norm2``, ``mlp.fc1|fc2``)."""

    def __init__(self, dim, heads, mlp_ratio=4.0, eps=1e-6):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = nn.Module()
        for name in ("q", "k", "v", "proj"):
            setattr(self.attn, name, nn.Linear(dim, dim))
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = nn.Module()
        self.mlp.fc1 = nn.Linear(dim, int(dim * mlp_ratio))
        self.mlp.fc2 = nn.Linear(int(dim * mlp_ratio), dim)

    def forward(self, x):
        b, n, d = x.shape
        h = self.norm1(x)
        q, k, v = (getattr(self.attn, name)(h).reshape(b, n, self.heads, d // self.heads).transpose(1, 2)
                   for name in ("q", "k", "v"))
        w = torch.softmax((q @ k.transpose(-2, -1)) * (d // self.heads) ** -0.5, dim=-1)
        x = x + self.attn.proj((w @ v).transpose(1, 2).reshape(b, n, d))
        return x + self.mlp.fc2(F.gelu(self.mlp.fc1(self.norm2(x))))


def _adaptive_max(x, n):
    """``F.adaptive_max_pool2d(x, n)`` as explicit maxima over the adaptive bins (exportable)."""
    h, w = x.shape[-2:]
    rows = []
    for i in range(n):
        r0, r1 = (i * h) // n, math.ceil((i + 1) * h / n)
        cols = [x[..., r0:r1, (j * w) // n:math.ceil((j + 1) * w / n)].amax(dim=(-2, -1), keepdim=True)
                for j in range(n)]
        rows.append(torch.cat(cols, dim=-1))
    return torch.cat(rows, dim=-2)


def _seq(**mods):
    """nn.Sequential whose children are named by position, with Identity placeholders (GELU,
    Dropout …) so parameter names match ``conv0.0``, ``conv0.1``, ``conv0.3`` …"""
    s = nn.Sequential()
    for idx, mod in sorted(((int(k[1:]), m) for k, m in mods.items())):
        while len(s) < idx:
            s.append(nn.Identity())
        s.append(mod)
    return s


def _conv_gn(cin, cout, groups=16):
    return _seq(m0=nn.Conv2d(cin, cout, 1), m1=nn.GroupNorm(groups, cout))


def _up(x, size):
    return F.interpolate(x, size=size, mode="bilinear", align_corners=True)


class _PyramidHead(nn.Module):
    """PPM over the 2048-channel 16² map + FPN fusion of the pyramid (keys ``decoder.*``)."""

    POOLS = (1, 2, 3, 6)

    def __init__(self, channels=2048, out=256):
        super().__init__()
        self.PPMHead = nn.Module()
        self.PPMHead.psp_modules = nn.ModuleList(
            [_seq(m1=nn.Conv2d(channels, out, 1)) for _ in self.POOLS])
        self.PPMHead.final = _conv_gn(channels + len(self.POOLS) * out, out)
        self.Conv_fuse1, self.Conv_fuse1_ = _conv_gn(channels // 2, out), _conv_gn(out, out)
        self.Conv_fuse2, self.Conv_fuse2_ = _conv_gn(channels // 4, out), _conv_gn(out, out)
        self.Conv_fuse3, self.Conv_fuse3_ = _conv_gn(channels // 8, out), _conv_gn(out, out)
        self.fuse_all = _conv_gn(out * 4, out)
        self.conv_x1 = nn.Conv2d(out, out, 1)

    @staticmethod
    def _cgg(block, x):  # conv → group norm → GELU (dropout is identity at inference)
        return F.gelu(block[1](block[0](x)))

    def forward(self, feats):
        f0, f1, f2, f3 = feats
        size = f3.shape[-2:]
        pooled = [_up(m[1](_adaptive_max(f3, n)), size) for m, n in zip(self.PPMHead.psp_modules, self.POOLS)]
        x1 = self._cgg(self.PPMHead.final, torch.cat(pooled + [f3], dim=1))
        x = self.conv_x1(_up(x1, f2.shape[-2:])) + self._cgg(self.Conv_fuse1, f2)
        x2 = self._cgg(self.Conv_fuse1_, x)
        x3 = self._cgg(self.Conv_fuse2_, _up(x2, f1.shape[-2:]) + self._cgg(self.Conv_fuse2, f1))
        x4 = self._cgg(self.Conv_fuse3_, _up(x3, f0.shape[-2:]) + self._cgg(self.Conv_fuse3, f0))
        size = x4.shape[-2:]
        return self._cgg(self.fuse_all, torch.cat([_up(x1, size), _up(x2, size), _up(x3, size), x4], dim=1))


class SpectralGPTSegmenter(nn.Module):
    """(N, 12, 128, 128) min–max scaled Sentinel-2 → logits (N, classes, 128, 128)."""

    def __init__(self, width=768, depth=12, heads=12, classes=13, bands=12, tile=TILE, patch=PATCH,
                 group=BAND_GROUP, mlp_ratio=4.0):
        super().__init__()
        self.bands, self.tile, self.patch, self.group = bands, tile, patch, group
        self.t, self.g = bands // group, tile // patch
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv3d(1, width, (group, patch, patch), stride=(group, patch, patch))
        self.pos_embed_spatial = nn.Parameter(torch.zeros(1, self.g * self.g, width))
        self.pos_embed_temporal = nn.Parameter(torch.zeros(1, self.t, width))
        self.blocks = nn.ModuleList([_Block(width, heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(width, eps=1e-6)  # stored, unused by the segmenter
        self.fc = _seq(m0=nn.Linear(self.t, 1))
        self.conv0 = _seq(m0=nn.Conv2d(width, 512, 1), m1=nn.GroupNorm(32, 512), m3=nn.ConvTranspose2d(512, 256, 8, 8))
        self.conv1 = _seq(m0=nn.Conv2d(width, 512, 1), m1=nn.GroupNorm(32, 512), m3=nn.ConvTranspose2d(512, 512, 4, 4))
        self.conv2 = _seq(m0=nn.Conv2d(width, 1024, 1), m1=nn.GroupNorm(32, 1024),
                          m3=nn.ConvTranspose2d(1024, 1024, 2, 2))
        self.conv3 = _seq(m0=nn.Conv2d(width, 2048, 1), m1=nn.GroupNorm(32, 2048))
        self.decoder = _PyramidHead()
        self.cls_seg = _seq(m0=nn.Conv2d(256, classes, 3, padding=1))

    @property
    def num_classes(self):
        return self.cls_seg[0].out_channels

    def forward(self, x):
        n = x.shape[0]
        tok = self.patch_embed.proj(x.unsqueeze(1))             # (N, D, t, g, g)
        d = tok.shape[1]
        tok = tok.flatten(3).permute(0, 2, 3, 1)                 # (N, t, g², D): band group major
        pos = self.pos_embed_spatial.unsqueeze(1) + self.pos_embed_temporal.unsqueeze(2)  # (1, t, g², D)
        h = (tok + pos).reshape(n, self.t * self.g * self.g, d)
        for blk in self.blocks:
            h = blk(h)
        h = self.fc[0](h.reshape(n, self.t, self.g * self.g, d).permute(0, 2, 3, 1))  # (N, g², D, 1)
        fmap = h.reshape(n, self.g, self.g, d).permute(0, 3, 1, 2)                    # (N, D, g, g)

        def branch(seq):
            y = F.gelu(seq[1](seq[0](fmap)))
            return seq[3](y) if len(seq) > 3 else y

        feats = [branch(self.conv0), branch(self.conv1), branch(self.conv2), branch(self.conv3)]
        return self.cls_seg[0](self.decoder(feats))


def infer_architecture(state, num_heads=None):
    """(width, depth, heads, classes) from a SpectralGPT segmentation state dict."""
    w = state.get("patch_embed.proj.weight")
    if w is None or w.ndim != 5:
        raise fio.ImportFailure("--checkpoint: no 'patch_embed.proj.weight' (D, 1, 3, 8, 8) Conv3d weight: not a "
                                "SpectralGPT (models_vit_tensor) checkpoint.")
    width = int(w.shape[0])
    if tuple(w.shape[1:]) != (1, BAND_GROUP, PATCH, PATCH):
        raise fio.ImportFailure(f"--checkpoint: patch_embed.proj.weight is {list(w.shape)}; the importer "
                                f"supports the SegMunich layout ({width}, 1, {BAND_GROUP}, {PATCH}, {PATCH}).")
    if "cls_seg.0.weight" not in state:
        what = "an MAE pre-training checkpoint" if any(k.startswith("decoder_") or k == "mask_token" for k in state) \
            else "not a segmentation checkpoint"
        raise fio.ImportFailure(f"--checkpoint: no segmentation head ('cls_seg.0.weight'): {what}. Fine-tune "
                                "SpectralGPT for segmentation (SegMunich recipe) first, then import that checkpoint.")
    depth = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
    heads = num_heads or HEADS_BY_WIDTH.get(width)
    if not heads or width % heads:
        raise fio.ImportFailure(f"--num-heads: width {width} has no known head count; give --num-heads.")
    return width, depth, heads, int(state["cls_seg.0.weight"].shape[0])


def expected_layout(model):
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def model_state(ckpt):
    """The model state dict of a checkpoint: ``{'model': …}`` (official training scripts) or a bare
    state dict; a ``module.`` prefix (DistributedDataParallel) is removed."""
    state = ckpt.get("model", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not any(torch.is_tensor(v) for v in state.values()):
        raise fio.ImportFailure("--checkpoint: no state dict found (expected {'model': state_dict, ...}).")
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def build_from_state(state, num_heads=None):
    width, depth, heads, classes = infer_architecture(state, num_heads)
    model = SpectralGPTSegmenter(width, depth, heads, classes)
    expected = expected_layout(model)
    fio.check_layout(state, expected, f"SpectralGPT segmentation (width {width}, depth {depth})")
    model.load_state_dict({k: state[k] for k in expected})
    return model.eval()


def make_card(model, model_id="spectralgpt-segmentation", class_names=None, source_path="", license=LICENSE):
    k = model.num_classes
    names = class_names or [f"class {i}" for i in range(k)]
    return {
        "id": model_id,
        "name": f"SpectralGPT segmentation ({k} classes)",
        "version": "1",
        "task": "segmentation",
        "source": {"repository": "https://github.com/danfenghong/IEEE_TPAMI_SpectralGPT",
                   "paper": "Hong et al., SpectralGPT: Spectral Remote Sensing Foundation Model, IEEE TPAMI 2024",
                   "checkpoint": os.path.basename(source_path)},
        "license": license or LICENSE,
        "description": "SpectralGPT ViT (3-D spectral-spatial tokens) with the SegMunich PPM/FPN head, imported by "
                       "import-spectralgpt. Input bands are scaled per 128 px tile by min-max.",
        "input": {
            "tensor": fio.INPUT_NAME, "layout": "NCHW", "tile_size": [TILE, TILE],
            "bands": [{"name": n, "wavelength_nm": wl, "fwhm_nm": fw} for n, wl, fw in S2_BANDS],
            "normalization": "tile-minmax", "minmax_epsilon": 1e-9, "nodata": "mask", "fill_value": 0.0,
        },
        "output": {"tensor": fio.OUTPUT_NAME, "kind": "logits",
                   "classes": [{"value": i, "name": n, "color": fio.class_colour(i)} for i, n in enumerate(names)]},
        "tiling": {"overlap": 0.25, "crop": 8, "scheme": "edge"},
    }


def import_checkpoint(checkpoint, output, model_id="spectralgpt-segmentation", class_names=None, num_heads=None,
                      external_data=None, log=print, license=None):
    fio.check_output(output)
    ckpt = fio.load_checkpoint(checkpoint, allow_namespace=True)
    state = model_state(ckpt)
    model = build_from_state(state, num_heads)
    names = fio.parse_class_names(class_names, model.num_classes)
    card = make_card(model, model_id, names, checkpoint, license)
    log(f"rebuilt SpectralGPT segmenter: width {model.patch_embed.proj.out_channels}, {len(model.blocks)} blocks, "
        f"{model.num_classes} classes; bands {', '.join(b[0] for b in S2_BANDS)}; per-tile min-max")
    example = torch.rand(2, model.bands, TILE, TILE, generator=torch.Generator().manual_seed(0))
    return fio.export_imported(model, example, output, card, external_data, log)


def main(argv=None):
    p = argparse.ArgumentParser(prog="import-spectralgpt", description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", required=True, help="SpectralGPT segmentation checkpoint (.pth, {'model': ...})")
    p.add_argument("--num-heads", type=int, help="attention heads (default: 12 for width 768, 16 for 1024)")
    fio.add_card_arguments(p, "spectralgpt-segmentation")
    a = p.parse_args(argv)
    return fio.run_command("import-spectralgpt", lambda: import_checkpoint(
        a.checkpoint, a.output, a.id, a.class_names, a.num_heads, a.external_data or None, license=a.license))
