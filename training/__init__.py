"""Model training and conversion (PyTorch side; not needed by the plugin at run time).

Run as ``python -m spectral_transformers.training <command> ...``; see :mod:`.__main__` for the
commands. Everything here needs torch/onnx (requirements-dev.txt); the plugin itself only loads the
resulting ONNX files through :mod:`..runtime.onnx_backend`.
"""
