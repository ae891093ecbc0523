"""SpectralEarth-style spectral adapter: hyperspectral cube → fixed number of channels for a ViT.

Each pixel spectrum (S bands) passes through 1-D convolutions along the band axis (BN + ReLU,
max-pooling by 2 between them), is collapsed to one feature per spectral position and adaptively
average-pooled to ``out_channels`` positions, so any band count ≥ ~75 (EnMAP 224, EMIT 285,
AVIRIS-NG 425) gives the same (B, out_channels, H, W) map. The ViT after it is the Prithvi
encoder of :mod:`.prithvi` with ``in_chans = out_channels``.

Input: (B, S, H, W) surface reflectance (unitless, e.g. EnMAP L2A × 0.0001), normalised per band;
output of :class:`HyperspectralSegmenter`: logits (B, classes, H, W).
"""
from dataclasses import replace

from torch import nn
from torch.nn import functional as F

from .prithvi import FCNHead, PrithviEncoder, TokensToMapNeck, ViTConfig

#: Fewest bands the adapter is meant for (two pooling stages and a kernel of 7 still fit).
MIN_BANDS = 32


class SpectralAdapter(nn.Module):
    """(B, S, H, W) → (B, out_channels, H, W) by 1-D convolutions along the S (band) axis."""

    def __init__(self, out_channels=32, hidden=8, kernel_sizes=(7, 5, 3)):
        super().__init__()
        self.out_channels = out_channels
        self.hidden = hidden
        layers = []
        ch = 1
        for i, k in enumerate(kernel_sizes):
            layers += [nn.Conv1d(ch, hidden, k, padding=k // 2, bias=False), nn.BatchNorm1d(hidden),
                       nn.ReLU(inplace=True)]
            if i < len(kernel_sizes) - 1:
                layers.append(nn.MaxPool1d(2))
            ch = hidden
        self.convs = nn.Sequential(*layers)
        self.collapse = nn.Conv1d(hidden, 1, 1)

    def forward(self, x):
        b, s, h, w = x.shape
        if s < MIN_BANDS:
            raise ValueError(f"the spectral adapter needs at least {MIN_BANDS} bands (got {s})")
        spectra = x.permute(0, 2, 3, 1).reshape(b * h * w, 1, s)       # one spectrum per pixel
        f = self.collapse(self.convs(spectra))                         # (N, 1, S')
        f = F.adaptive_avg_pool1d(f, self.out_channels)                # (N, 1, out)
        return f.reshape(b, h, w, self.out_channels).permute(0, 3, 1, 2)


class HyperspectralSegmenter(nn.Module):
    """Spectral adapter + Prithvi-style ViT + neck + FCN head: (B, S, H, W) → logits (B, K, H, W)."""

    def __init__(self, cfg, num_classes, in_bands, adapter_channels=32, adapter_hidden=8):
        super().__init__()
        if in_bands < MIN_BANDS:
            raise ValueError(f"the spectral adapter needs at least {MIN_BANDS} bands (got {in_bands})")
        self.in_bands = int(in_bands)   # fixed per exported model (the card lists these bands)
        cfg = replace(cfg, in_chans=adapter_channels, num_frames=1, tubelet_size=1)
        self.cfg = cfg
        self.num_classes = num_classes
        self.adapter = SpectralAdapter(adapter_channels, adapter_hidden)
        self.encoder = PrithviEncoder(cfg)
        self.neck = TokensToMapNeck(cfg)
        self.head = FCNHead(self.neck.out_channels, num_classes)

    def forward(self, x):
        return self.head(self.neck(self.encoder(self.adapter(x).unsqueeze(2))))


def tiny_hyperspectral_config(tile=32, patch=8):
    """Tiny ViT for tests and demos on 32 × 32 hyperspectral tiles."""
    return ViTConfig(img_size=tile, patch_size=patch, embed_dim=64, depth=2, num_heads=4, in_chans=32)
