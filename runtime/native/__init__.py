"""Native kernels the runtime may use beside ONNX Runtime (optional: the runtime works without them).

One C library (``scripts/build_native.sh`` builds it into ``lib/<platform>/`` on Linux x86-64; absent
elsewhere, where ONNX Runtime runs everything):

- :mod:`.attention`: fused 8-wide-head self-attention for SpecTf (AVX-512 or AVX2 + FMA), between
  ONNX Runtime's pre- and post-attention graphs;
- :mod:`.forward`: SpecTf's whole forward pass around that attention (AVX-512), from the weights file
  the card names (``variants.native_weights``)."""
