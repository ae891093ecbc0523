"""SpecTf: the spectroscopic transformer cloud model (Lee, Kiper, Thompson, Brodrick; arXiv 2501.04916).

Each band of a spectrum is one token ``[reflectance, (wavelength_nm - 1440) / 600]``. One encoder
layer with pre-LayerNorm and *no* residual connections (``x = MHA(LN1(x)); x = FF(LN2(x))``), max
aggregation over the band tokens and a linear head giving two logits (clear, cloud). The module's
parameter names match the published state dicts (``spectf_cloud_v0.1.0_weights.pt``), which are
loaded with ``torch.load(..., weights_only=True)`` only.

:class:`SpecTf` is the reference (nn.MultiheadAttention, as upstream); :class:`SpecTfOnnx` wraps the
same parameters in an explicit MatMul/Softmax formulation that exports to a lean ONNX graph with the
inputs/outputs of the plugin's model contract.
"""
import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

# Band selection is the plugin runtime's: one definition for training, export and inference.
from ..runtime.models.spectf import DEFAULT_DROP_RANGES_NM as DROP_RANGES_NM
from ..runtime.models.spectf import keep_bands  # noqa: F401 (re-exported)

WAVELENGTH_OFFSET_NM = 1440.0
WAVELENGTH_SCALE_NM = 600.0
DIM, HEADS, DIM_FF = 64, 8, 64

def encode_wavelengths(wavelength_nm):
    """Wavelength token channel: (λ_nm − 1440) / 600."""
    return (wavelength_nm - WAVELENGTH_OFFSET_NM) / WAVELENGTH_SCALE_NM


class SpectralEmbed(nn.Module):
    def __init__(self, dim=DIM):
        super().__init__()
        self.linear = nn.Linear(2, dim)
        self.activation = nn.Tanh()

    def forward(self, tokens):
        return self.activation(self.linear(tokens))


class _Attention(nn.Module):
    """Holds ``attention`` (nn.MultiheadAttention) so the key names match upstream."""

    def __init__(self, dim=DIM, heads=HEADS):
        super().__init__()
        self.attention = nn.MultiheadAttention(dim, heads, dropout=0.0, bias=True, batch_first=True)

    def forward(self, x, need_weights=False):
        out, weights = self.attention(x, x, x, need_weights=need_weights, average_attn_weights=False)
        return out, weights


class FeedForward(nn.Module):
    def __init__(self, dim=DIM, dim_ff=DIM_FF):
        super().__init__()
        self.linear1 = nn.Linear(dim, dim_ff)
        self.gelu = nn.GELU()  # exact (erf)
        self.linear2 = nn.Linear(dim_ff, dim)

    def forward(self, x):
        return self.linear2(self.gelu(self.linear1(x)))


class EncoderLayer(nn.Module):
    """Pre-LN encoder layer without residual connections (as published)."""

    def __init__(self, dim=DIM, heads=HEADS, dim_ff=DIM_FF):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attention = _Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim, dim_ff)

    def forward(self, x, need_weights=False):
        x, weights = self.attention(self.norm1(x), need_weights=need_weights)
        return self.ff(self.norm2(x)), weights


class SpecTf(nn.Module):
    """Reference SpecTf. ``forward(tokens)`` takes (B, S, 2) tokens and returns (B, 2) logits."""

    def __init__(self, dim=DIM, heads=HEADS, dim_ff=DIM_FF, layers=1):
        super().__init__()
        self.spectral_embed = SpectralEmbed(dim)
        self.layers = nn.ModuleList([EncoderLayer(dim, heads, dim_ff) for _ in range(layers)])
        self.head = nn.Linear(dim, 2)

    def forward(self, tokens, return_attention=False):
        """Logits (B, 2); with ``return_attention`` also a list (one per layer) of per-head
        attention probabilities (B, heads, S, S) (query, key)."""
        x = self.spectral_embed(tokens)
        attentions = []
        for layer in self.layers:
            x, w = layer(x, need_weights=return_attention)
            attentions.append(w)
        logits = self.head(x.max(dim=1).values)
        return (logits, attentions) if return_attention else logits

    @staticmethod
    def tokens(spectra, wavelength_nm):
        """(B, S, 2) tokens from spectra (B, S) reflectance and wavelengths (S,) nm (tensors)."""
        spectra = torch.as_tensor(spectra, dtype=torch.float32)
        wl = encode_wavelengths(torch.as_tensor(wavelength_nm, dtype=torch.float32))
        return torch.stack([spectra, wl.expand_as(spectra)], dim=-1)

    def predict(self, spectra, wavelength_nm):
        """Cloud probability (B,) numpy float32 for spectra (B, S) and wavelengths (S,) nm."""
        with torch.no_grad():
            logits = self(self.tokens(spectra, wavelength_nm))
            return torch.softmax(logits, dim=-1)[:, 1].numpy()


def load_weights(path, model=None):
    """SpecTf with the state dict at ``path`` loaded (``weights_only=True``, mapped to CPU), eval mode."""
    path = Path(path)
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    layers = 1 + max((int(k.split(".")[1]) for k in state if k.startswith("layers.")), default=0)
    model = model or SpecTf(layers=layers)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"{path}: not a SpecTf state dict (missing keys {missing}, unexpected {unexpected})")
    return model.eval()


class SpecTfOnnx(nn.Module):
    """Export form of a one-layer :class:`SpecTf`: ``forward(spectra (N,S), wavelengths (S,) nm)``
    → ``probability`` (N,), ``logits`` (N,2), ``attention`` (N,S) (attention each band token
    receives, mean over heads and query positions).

    Written with explicit MatMul/Softmax over a flattened (N·S, 64) token matrix so ONNX Runtime
    fuses bias adds into Gemm and needs only the transposes multi-head attention requires; the
    wavelength part of the embedding is computed once per call (S, 64), not per spectrum, and the
    1/sqrt(head_dim) scale is folded into the query projection.
    """

    def __init__(self, model: SpecTf):
        super().__init__()
        if len(model.layers) != 1:
            raise ValueError("SpecTfOnnx supports the published one-layer SpecTf only")
        layer = model.layers[0]
        mha = layer.attention.attention
        d, h = mha.embed_dim, mha.num_heads
        self.heads, self.head_dim = h, d // h
        emb = model.spectral_embed.linear
        self.register_buffer("w_refl", emb.weight[:, 0].detach().clone())          # (64,)
        self.register_buffer("w_wave", emb.weight[:, 1].detach().clone() / WAVELENGTH_SCALE_NM)
        self.register_buffer("b_embed", (emb.bias - emb.weight[:, 1] * WAVELENGTH_OFFSET_NM /
                                         WAVELENGTH_SCALE_NM).detach().clone())
        self.norm1 = layer.norm1
        self.norm2 = layer.norm2
        scale = 1.0 / math.sqrt(self.head_dim)
        w, b = mha.in_proj_weight.detach(), mha.in_proj_bias.detach()
        self.q = nn.Linear(d, d)
        self.k = nn.Linear(d, d)
        self.v = nn.Linear(d, d)
        with torch.no_grad():
            self.q.weight.copy_(w[:d] * scale)
            self.q.bias.copy_(b[:d] * scale)
            self.k.weight.copy_(w[d:2 * d])
            self.k.bias.copy_(b[d:2 * d])
            self.v.weight.copy_(w[2 * d:])
            self.v.bias.copy_(b[2 * d:])
        self.out_proj = mha.out_proj
        self.ff = layer.ff
        self.head = model.head

    def embed(self, spectra, wavelengths):
        """Band tokens tanh(r · w_r + λ · w_λ + b') (N, S, 64); the λ part (S, 64) once per call."""
        wave = wavelengths.unsqueeze(1) * self.w_wave + self.b_embed                    # (S, 64)
        return torch.tanh(spectra.unsqueeze(2) * self.w_refl + wave)                    # (N, S, 64)

    def forward(self, spectra, wavelengths):
        n, s = spectra.shape[0], spectra.shape[1]
        d, h, hd = self.w_refl.shape[0], self.heads, self.head_dim
        x = self.norm1(self.embed(spectra, wavelengths).reshape(n * s, d))              # (N·S, 64)
        q = self.q(x).reshape(n, s, h, hd).transpose(1, 2)                              # (N, h, S, hd)
        k = self.k(x).reshape(n, s, h, hd).permute(0, 2, 3, 1)                          # (N, h, hd, S)
        v = self.v(x).reshape(n, s, h, hd).transpose(1, 2)                              # (N, h, S, hd)
        p = torch.softmax(torch.matmul(q, k), dim=-1)                                   # (N, h, S, S)
        attention = p.mean(dim=(1, 2))                                                  # (N, S)
        o = torch.matmul(p, v).transpose(1, 2).reshape(n * s, d)                        # (N·S, 64)
        x = self.ff(self.norm2(self.out_proj(o)))
        pooled = x.reshape(n, s, d).max(dim=1).values                                   # (N, 64)
        logits = self.head(pooled)
        probability = torch.softmax(logits, dim=-1)[:, 1]
        return probability, logits, attention


class _FusedSelfAttention(torch.autograd.Function):
    """Multi-head scaled-dot-product attention that exports as one ONNX Runtime contrib node
    ``com.microsoft::MultiHeadAttention`` (q, k, v (N, S, 64) → (N, S, 64)); the 1/sqrt(head_dim)
    scale is already folded into q, hence ``scale = 1``. The PyTorch forward is the same arithmetic,
    so the module stays a reference for its own export."""

    @staticmethod
    def forward(ctx, q, k, v, heads):  # noqa: D102 (torch.autograd.Function protocol)
        n, s, d = q.shape
        hd = d // heads

        def split(t):
            return t.reshape(n, s, heads, hd).transpose(1, 2)

        p = torch.softmax(torch.matmul(split(q), split(k).transpose(-1, -2)), dim=-1)
        return torch.matmul(p, split(v)).transpose(1, 2).reshape(n, s, d)

    @staticmethod
    def symbolic(g, q, k, v, heads):  # noqa: D102
        out = g.op("com.microsoft::MultiHeadAttention", q, k, v, num_heads_i=int(heads), scale_f=1.0)
        out.setType(q.type())
        return out


class SpecTfOnnxFused(SpecTfOnnx):
    """Probability-only export form of :class:`SpecTfOnnx`: ``forward(spectra, wavelengths)`` →
    ``probability`` (N,), ``logits`` (N, 2), with the attention as one fused ONNX Runtime
    ``MultiHeadAttention`` node (CPU and CUDA kernels; no (N, 8, S, S) tensor between nodes).
    There is no ``attention`` output: the cloud mask's pruned variant is built from it."""

    def forward(self, spectra, wavelengths):
        # the linear layers take the flattened (N·S, 64) tokens, so ONNX Runtime fuses their bias adds
        # into Gemm (on (N, S, 64) they stay MatMul + Add: ≈ 20 % of the non-attention time)
        n, s = spectra.shape[0], spectra.shape[1]
        d = self.heads * self.head_dim  # a Python int: the graph's q, k, v get a static width
        x = self.norm1(self.embed(spectra, wavelengths).reshape(n * s, d))              # (N·S, 64)
        q, k, v = (proj(x).reshape(n, s, d) for proj in (self.q, self.k, self.v))       # (N, S, 64)
        o = _FusedSelfAttention.apply(q, k, v, self.heads)                             # (N, S, 64)
        # shapes from o, not from the inputs: the post-attention graph cut here starts at o
        x = self.ff(self.norm2(self.out_proj(o.reshape(-1, d))))                        # (N·S, 64)
        logits = self.head(x.reshape(o.shape[0], o.shape[1], d).max(dim=1).values)
        return torch.softmax(logits, dim=-1)[:, 1], logits


class SpecTfOnnxPerHead(SpecTfOnnx):
    """Probability-only export form of :class:`SpecTfOnnx` for CPUs: the attention written head by
    head (MatMul → Softmax → MatMul on one 8-wide head at a time), outputs ``probability`` (N,) and
    ``logits`` (N, 2).

    The (S, S) scores of one head of one spectrum are 287 kB at S = 268, so a run of a few spectra
    keeps each head's scores in the core's L2 cache between the three nodes, where one batched
    MatMul/Softmax/MatMul over all heads streams the (N, 8, S, S) tensor through memory three times
    and ONNX Runtime's fused ``MultiHeadAttention`` spends its time in tiny blocked GEMMs. The linear
    layers take the flattened (N·S, 64) tokens, so ONNX Runtime fuses their bias adds into ``Gemm``.
    Same arithmetic as :class:`SpecTfOnnx`, in the same order per head."""

    def forward(self, spectra, wavelengths):
        n, s = spectra.shape[0], spectra.shape[1]
        d, hd = self.w_refl.shape[0], self.head_dim
        x = self.norm1(self.embed(spectra, wavelengths).reshape(n * s, d))              # (N·S, 64)
        h = self.heads
        # head-major layouts, split once into one (N, 1, S, 8) block per head (contiguous copies)
        qs = torch.split(self.q(x).reshape(n, s, h, hd).transpose(1, 2), 1, dim=1)     # (N, 1, S, 8)
        ks = torch.split(self.k(x).reshape(n, s, h, hd).permute(0, 2, 3, 1), 1, dim=1)  # (N, 1, 8, S)
        vs = torch.split(self.v(x).reshape(n, s, h, hd).transpose(1, 2), 1, dim=1)     # (N, 1, S, 8)
        # exported as one MatMul/Softmax/MatMul chain per head, which ONNX Runtime runs chain by chain
        heads = [torch.matmul(torch.softmax(torch.matmul(qh, kh), dim=-1), vh) for qh, kh, vh in zip(qs, ks, vs)]
        o = torch.cat(heads, dim=1).transpose(1, 2).reshape(n * s, d)
        x = self.ff(self.norm2(self.out_proj(o)))
        logits = self.head(x.reshape(n, s, d).max(dim=1).values)
        return torch.softmax(logits, dim=-1)[:, 1], logits
