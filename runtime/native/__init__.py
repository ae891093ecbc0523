"""Native kernels the runtime may use beside ONNX Runtime (optional: the runtime works without them).

:mod:`.attention`: fused 8-wide-head self-attention for SpecTf on x86-64 CPUs (C, built by
``scripts/build_native.sh`` into ``lib/<platform>/``; absent on other platforms, where ONNX Runtime's
own attention runs)."""
