"""Models on ONNX Runtime: the one model base (:mod:`.base`), model cards and ONNX metadata, session
creation (:mod:`.onnx_backend`), the registry that resolves a model id or file, tiling and per-tile
normalisation kernels, and the three model families (SpecTf per-pixel, segmentation, L-TAE)."""
