"""Prithvi-compatible ViT encoder (MAE encoder half), token-to-map neck and FCN head.

The encoder reproduces the parameter names and shapes of the encoder of NASA/IBM Prithvi-100M
(``MaskedAutoencoderViT`` in ``Prithvi.py`` / hls-foundation-os ``TemporalViTEncoder``, built on
timm's ``Block``), so a Prithvi checkpoint loads with ``torch.load(..., weights_only=True)`` and
:func:`load_prithvi_weights`:

``cls_token`` (1, 1, D), ``pos_embed`` (1, 1 + T·h·w, D) fixed 3-D sin-cos (not trained),
``patch_embed.proj.weight`` (D, C, tubelet, p, p) Conv3d, ``patch_embed.proj.bias``,
``blocks.{i}.norm1.*``, ``blocks.{i}.attn.qkv.*`` (3D, D), ``blocks.{i}.attn.proj.*``,
``blocks.{i}.norm2.*``, ``blocks.{i}.mlp.fc1.*`` (4D, D), ``blocks.{i}.mlp.fc2.*``, ``norm.*``.
MAE decoder keys (``mask_token``, ``decoder_*``) are ignored when loading for fine-tuning.

Input: (B, C, T, H, W) reflectance normalised per band ((x − mean) / std); default bands are the
six HLS bands Blue, Green, Red, Narrow NIR, SWIR1, SWIR2 (HLS B02–B07 = Sentinel-2 B02, B03,
B04, B8A, B11, B12). Output of :class:`PrithviSegmenter`: logits (B, classes, H, W).
"""
import math
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

#: HLS / Sentinel-2 band names and centre wavelengths (nm) of Prithvi's six input bands.
PRITHVI_BANDS = ("Blue", "Green", "Red", "Narrow NIR", "SWIR 1", "SWIR 2")
PRITHVI_WAVELENGTHS_NM = (490.0, 560.0, 665.0, 865.0, 1610.0, 2190.0)


@dataclass
class ViTConfig:
    """Size of a Prithvi-style encoder (``img_size`` and ``patch_size`` in pixels)."""

    img_size: int = 224
    patch_size: int = 16
    num_frames: int = 1
    tubelet_size: int = 1
    in_chans: int = 6
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    qkv_bias: bool = True

    @property
    def grid(self):
        """Token grid (t, h, w)."""
        return (self.num_frames // self.tubelet_size, self.img_size // self.patch_size,
                self.img_size // self.patch_size)

    @property
    def num_patches(self):
        t, h, w = self.grid
        return t * h * w

    def to_dict(self):
        return asdict(self)


#: Encoder sizes: Prithvi-100M (v1) and the Prithvi-EO-2.0 sizes, plus tiny variants for tests.
PRESETS = {
    "prithvi-100m": ViTConfig(embed_dim=768, depth=12, num_heads=12, patch_size=16),
    "prithvi-eo2-300m": ViTConfig(embed_dim=1024, depth=24, num_heads=16, patch_size=16),
    "prithvi-eo2-600m": ViTConfig(embed_dim=1280, depth=32, num_heads=16, patch_size=14),
    "tiny": ViTConfig(img_size=64, embed_dim=64, depth=2, num_heads=4, patch_size=16),
    "small": ViTConfig(img_size=224, embed_dim=128, depth=4, num_heads=4, patch_size=16),
}


def preset(name, **overrides):
    """A copy of the preset ``name`` with ``overrides`` (e.g. ``num_frames=3``)."""
    if name not in PRESETS:
        raise KeyError(f"unknown preset '{name}'; expected one of {', '.join(PRESETS)}")
    return replace(PRESETS[name], **overrides)


# -- fixed positional embedding ---------------------------------------------------------------

def get_1d_sincos_pos_embed_from_grid(embed_dim, pos):
    """(len(pos), embed_dim) sin-cos embedding of positions ``pos`` (MAE convention)."""
    assert embed_dim % 2 == 0
    omega = np.arange(embed_dim // 2, dtype=np.float64) / (embed_dim / 2.0)
    omega = 1.0 / 10000 ** omega
    out = np.einsum("m,d->md", np.asarray(pos, dtype=np.float64).reshape(-1), omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)


def get_3d_sincos_pos_embed(embed_dim, grid_size, cls_token=False):
    """Prithvi's 3-D sin-cos embedding, (1? + t·h·w, embed_dim): 6/16 of the channels encode the
    column, 6/16 the row and 4/16 the frame; token order is frame-major, then row, then column."""
    if embed_dim % 16 != 0:
        raise ValueError(f"embed_dim must be a multiple of 16 (got {embed_dim})")
    t_size, h_size, w_size = grid_size
    w_dim = embed_dim // 16 * 6
    h_dim = embed_dim // 16 * 6
    t_dim = embed_dim // 16 * 4
    w_pe = get_1d_sincos_pos_embed_from_grid(w_dim, np.arange(w_size))
    h_pe = get_1d_sincos_pos_embed_from_grid(h_dim, np.arange(h_size))
    t_pe = get_1d_sincos_pos_embed_from_grid(t_dim, np.arange(t_size))
    w_pe = np.tile(w_pe, (t_size * h_size, 1))
    h_pe = np.tile(np.repeat(h_pe, w_size, axis=0), (t_size, 1))
    t_pe = np.repeat(t_pe, h_size * w_size, axis=0)
    pe = np.concatenate((w_pe, h_pe, t_pe), axis=1)
    if cls_token:
        pe = np.concatenate([np.zeros([1, embed_dim]), pe], axis=0)
    return pe


# -- encoder ----------------------------------------------------------------------------------

class PatchEmbed(nn.Module):
    """(B, C, T, H, W) → (B, T'·h·w, D) with a Conv3d of kernel = stride = (tubelet, p, p)."""

    def __init__(self, cfg):
        super().__init__()
        self.proj = nn.Conv3d(cfg.in_chans, cfg.embed_dim,
                              kernel_size=(cfg.tubelet_size, cfg.patch_size, cfg.patch_size),
                              stride=(cfg.tubelet_size, cfg.patch_size, cfg.patch_size), bias=True)

    def forward(self, x):
        x = self.proj(x)                      # (B, D, T', h, w)
        return x.flatten(2).transpose(1, 2)   # (B, T'·h·w, D)


class Attention(nn.Module):
    """timm multi-head self-attention (``qkv``, ``proj``)."""

    def __init__(self, dim, num_heads, qkv_bias=True):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q * self.scale) @ k.transpose(-2, -1)
        attn = attn.softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(b, n, c)
        return self.proj(x)


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """timm pre-norm transformer block (``norm1``, ``attn``, ``norm2``, ``mlp``), LayerNorm eps 1e-6."""

    def __init__(self, dim, num_heads, mlp_ratio=4.0, qkv_bias=True):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads, qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PrithviEncoder(nn.Module):
    """Prithvi MAE encoder without masking: (B, C, T, H, W) → tokens (B, 1 + T'·h·w, D), cls first."""

    def __init__(self, cfg=None):
        super().__init__()
        cfg = cfg or ViTConfig()
        if cfg.img_size % cfg.patch_size or cfg.num_frames % cfg.tubelet_size:
            raise ValueError("img_size must be a multiple of patch_size and num_frames of tubelet_size")
        self.cfg = cfg
        self.patch_embed = PatchEmbed(cfg)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.embed_dim))
        # A Parameter (as in Prithvi) so that checkpoints load strictly, but never trained.
        pe = get_3d_sincos_pos_embed(cfg.embed_dim, cfg.grid, cls_token=True)
        self.pos_embed = nn.Parameter(torch.from_numpy(pe).float().unsqueeze(0), requires_grad=False)
        self.blocks = nn.ModuleList(
            Block(cfg.embed_dim, cfg.num_heads, cfg.mlp_ratio, cfg.qkv_bias) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.embed_dim, eps=1e-6)
        self._init_weights()

    def _init_weights(self):
        w = self.patch_embed.proj.weight.data
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.normal_(self.cls_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        if x.dim() == 4:                      # (B, C, H, W) single frame
            x = x.unsqueeze(2)
        x = self.patch_embed(x) + self.pos_embed[:, 1:, :]
        cls = (self.cls_token + self.pos_embed[:, :1, :]).expand(x.shape[0], -1, -1)
        x = torch.cat((cls, x), dim=1)
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x)


# -- neck and head ----------------------------------------------------------------------------

class TokensToMapNeck(nn.Module):
    """hls-foundation-os style ``ConvTransformerTokensToEmbeddingNeck``: drop the cls token, reshape
    the tokens to a (D·T', h, w) map and upsample ×2 per ConvTranspose2d stage (BN + ReLU after each)
    until the patch size is undone; a final bilinear resize handles patch sizes that are not powers
    of two (e.g. 14)."""

    def __init__(self, cfg, out_channels=None):
        super().__init__()
        t, self.h, self.w = cfg.grid
        in_ch = cfg.embed_dim * t
        out_channels = out_channels or max(16, cfg.embed_dim // 2)
        self.out_channels = out_channels
        self.img_size = cfg.img_size
        stages = max(1, int(round(math.log2(cfg.patch_size))))
        layers = []
        for i in range(stages):
            layers += [nn.ConvTranspose2d(in_ch if i == 0 else out_channels, out_channels, 2, stride=2),
                       nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]
        self.up = nn.Sequential(*layers)
        self.upsampled = self.h * 2 ** stages

    def forward(self, tokens):
        x = tokens[:, 1:, :]
        b, n, d = x.shape
        x = x.permute(0, 2, 1).reshape(b, -1, self.h, self.w)   # (B, D·T', h, w)
        x = self.up(x)
        if self.upsampled != self.img_size:
            x = F.interpolate(x, size=(self.img_size, self.img_size), mode="bilinear", align_corners=False)
        return x


class FCNHead(nn.Module):
    """FCN head: conv3×3-BN-ReLU, dropout, 1×1 classifier → logits (B, classes, H, W)."""

    def __init__(self, in_channels, num_classes, channels=None, dropout=0.1):
        super().__init__()
        channels = channels or in_channels
        self.conv = nn.Sequential(nn.Conv2d(in_channels, channels, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(channels), nn.ReLU(inplace=True))
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, x):
        return self.classifier(self.dropout(self.conv(x)))


class PrithviSegmenter(nn.Module):
    """Encoder + neck + FCN head. ``forward(x)`` with x (B, C, T, H, W) or (B, C, H, W) → logits."""

    def __init__(self, cfg=None, num_classes=2, neck_channels=None, head_channels=None):
        super().__init__()
        cfg = cfg or ViTConfig()
        self.cfg = cfg
        self.num_classes = num_classes
        self.encoder = PrithviEncoder(cfg)
        self.neck = TokensToMapNeck(cfg, neck_channels)
        self.head = FCNHead(self.neck.out_channels, num_classes, head_channels)

    def forward(self, x):
        return self.head(self.neck(self.encoder(x)))


# -- checkpoint loading -----------------------------------------------------------------------

_IGNORED_PREFIXES = ("decoder", "mask_token")


def encoder_state_dict(checkpoint):
    """Encoder entries of a Prithvi checkpoint (a state dict, or a dict holding one under
    ``model``/``state_dict``); strips ``encoder.``/``backbone.``/``model.`` prefixes and drops the MAE
    decoder (``decoder_*``, ``mask_token``)."""
    sd = checkpoint
    for key in ("model", "state_dict"):
        if isinstance(sd, dict) and key in sd and isinstance(sd[key], dict):
            sd = sd[key]
    out = {}
    for k, v in sd.items():
        for prefix in ("module.", "model.", "backbone.", "encoder."):
            if k.startswith(prefix):
                k = k[len(prefix):]
        if k.startswith(_IGNORED_PREFIXES):
            continue
        out[k] = v
    return out


def load_prithvi_weights(encoder, checkpoint, strict=True):
    """Load Prithvi encoder weights into ``encoder`` (a :class:`PrithviEncoder`).

    ``checkpoint`` is a path (read with ``weights_only=True``) or an already loaded dict. A
    ``pos_embed`` of another grid (e.g. Prithvi-100M's 3 frames for a 1-frame model) is replaced by
    the encoder's own fixed sin-cos table, as it is not learned. A ``patch_embed`` with more frames
    per tubelet is not adapted. Returns the (missing, unexpected) key lists."""
    if isinstance(checkpoint, (str, bytes)) or hasattr(checkpoint, "__fspath__"):
        checkpoint = torch.load(checkpoint, map_location="cpu", weights_only=True)
    sd = encoder_state_dict(checkpoint)
    pe = sd.get("pos_embed")
    if pe is not None and tuple(pe.shape) != tuple(encoder.pos_embed.shape):
        sd["pos_embed"] = encoder.pos_embed.detach().clone()
    result = encoder.load_state_dict(sd, strict=strict)
    return list(result.missing_keys), list(result.unexpected_keys)
