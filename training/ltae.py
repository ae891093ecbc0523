"""Pixel-wise Lightweight Temporal Attention Encoder (L-TAE): the model (training in
:mod:`.ltae_train`, data in :mod:`.ltae_data`, card and ONNX export in :mod:`.ltae_export`, as for
the SpecTf and segmentation families).

Garnot & Landrieu (2020), "Lightweight Temporal Self-Attention for Classifying Satellite Image Time
Series", adapted to single-pixel time series (no pixel-set encoder):

* input ``series`` (N, T, C): C channels per date (e.g. NDVI, or 10 Sentinel-2 bands as in PASTIS),
  normalised in the graph with the per-channel mean/std stored as buffers (and in the model card);
* a 1×1 projection to ``d_model`` + LayerNorm, plus a sinusoidal positional encoding of the
  acquisition position (day of year or days since a reference, see ``DATES_POLICIES``) with
  period constant T = 1000 as in L-TAE, repeated over the ``n_head`` channel groups;
* channel-grouped multi-head attention with one learned master query per head: keys from a linear
  layer (d_model → n_head·d_k), values = the ``n_head`` channel groups of the encoded input;
  ``attention`` (N, n_head, T) is the softmax over dates;
* MLP + classifier → ``logits`` (N, n_classes).

The exported ONNX has inputs ``series`` float32 (N, T, C) and ``doy`` float32 (T,) (positions in
days, dynamic N and T) and outputs ``logits`` and ``attention``; the model card (task
``temporal-attention``) is stored in the ONNX metadata under ``model_card``.

Command line (``python -m spectral_transformers.training ltae-train|ltae-export``):
:func:`.ltae_train.main_train`, :func:`.ltae_export.main_export`.
"""
import math

import numpy as np

from ..runtime.io.dates import positions

#: How acquisition dates become positions (days) for the positional encoding.
DATES_POLICIES = ("day_of_year", "days_since_first", "days_since_reference")

#: eo-learn land-cover legend (code → name, colour) as used by its Slovenia LULC example.
EOLEARN_LULC = {
    0: ("No data", "#ffffff"), 1: ("Cultivated land", "#ffff00"), 2: ("Forest", "#054907"),
    3: ("Grassland", "#ffa500"), 4: ("Shrubland", "#806000"), 5: ("Water", "#069af3"),
    6: ("Wetland", "#95d0fc"), 7: ("Tundra", "#967bb6"), 8: ("Artificial surface", "#dc143c"),
    9: ("Bare land", "#a6a6a6"), 10: ("Snow and ice", "#000000"),
}


def _torch():
    import torch  # training only; the plugin runtime never imports torch
    return torch


# ---------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------
def build_model(in_channels, n_classes, d_model=64, n_head=8, d_k=8, mlp_hidden=64, dropout=0.2,
                period=1000.0, mean=None, std=None):
    """Return an :class:`LTAEClassifier` (a ``torch.nn.Module``)."""
    torch = _torch()
    nn = torch.nn

    class LTAEClassifier(nn.Module):
        def __init__(self):
            super().__init__()
            if d_model % n_head:
                raise ValueError("d_model must be a multiple of n_head")
            self.config = dict(in_channels=int(in_channels), n_classes=int(n_classes), d_model=int(d_model),
                               n_head=int(n_head), d_k=int(d_k), mlp_hidden=int(mlp_hidden),
                               dropout=float(dropout), period=float(period))
            m = np.zeros(in_channels, np.float32) if mean is None else np.asarray(mean, np.float32)
            s = np.ones(in_channels, np.float32) if std is None else np.asarray(std, np.float32)
            self.register_buffer("mean", torch.tensor(m).reshape(in_channels))
            self.register_buffer("std", torch.tensor(np.maximum(s, 1e-6)).reshape(in_channels))
            self.inconv = nn.Linear(in_channels, d_model)
            self.in_norm = nn.LayerNorm(d_model)
            self.query = nn.Parameter(torch.randn(n_head, d_k) * math.sqrt(2.0 / d_k))
            self.fc_k = nn.Linear(d_model, n_head * d_k)
            self.attn_dropout = nn.Dropout(dropout)
            self.mlp = nn.Sequential(nn.Linear(d_model, mlp_hidden), nn.BatchNorm1d(mlp_hidden), nn.ReLU())
            self.dropout = nn.Dropout(dropout)
            self.decoder = nn.Sequential(nn.Linear(mlp_hidden, 32), nn.BatchNorm1d(32), nn.ReLU(),
                                         nn.Linear(32, n_classes))
            d = d_model // n_head
            idx = torch.arange(d, dtype=torch.float32)
            self.register_buffer("pe_denominator", torch.pow(torch.tensor(float(period)), 2.0 * torch.floor(idx / 2) / d))
            self.register_buffer("pe_even", (idx % 2 == 0).to(torch.float32))

        def positional_encoding(self, doy):
            """(T,) positions in days → (T, d_model) sinusoidal table repeated over the heads."""
            angles = doy.to(torch.float32)[:, None] / self.pe_denominator[None, :]
            pe = self.pe_even * torch.sin(angles) + (1.0 - self.pe_even) * torch.cos(angles)
            return pe.repeat(1, n_head)

        def forward(self, series, doy):
            n, t = series.shape[0], series.shape[1]
            x = (series - self.mean) / self.std
            x = self.in_norm(self.inconv(x)) + self.positional_encoding(doy)[None]
            k = self.fc_k(x).reshape(n, t, n_head, d_k).permute(0, 2, 1, 3)          # N, H, T, dk
            scores = (k * self.query[None, :, None, :]).sum(-1) / math.sqrt(d_k)     # N, H, T
            attention = torch.softmax(scores, dim=-1)
            v = x.reshape(n, t, n_head, d_model // n_head).permute(0, 2, 1, 3)       # N, H, T, dv
            out = (self.attn_dropout(attention)[..., None] * v).sum(2).reshape(n, d_model)
            logits = self.decoder(self.dropout(self.mlp(out)))
            return logits, attention

    return LTAEClassifier()


# ---------------------------------------------------------------------------------------------
# Dates → positions
# ---------------------------------------------------------------------------------------------
def positions_for(dates, policy="day_of_year", reference=None):
    """Acquisition dates → positions in days (float32) under ``policy`` (same code as the runtime)."""
    return positions(dates, policy, reference)


# The family's other modules (data, training, export), importable from here as before.
from .ltae_data import load_eolearn, pixels, spatial_split, write_date_rasters  # noqa: E402,F401
from .ltae_export import export_onnx, load_checkpoint, make_card, save_checkpoint, main_export  # noqa: E402,F401
from .ltae_train import predict, train, train_eolearn, main_train  # noqa: E402,F401
