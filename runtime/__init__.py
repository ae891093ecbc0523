"""QGIS-free numerical core of Spectral Transformers.

Everything here works with GDAL, numpy and (lazily) ONNX Runtime only, so it can be tested and
reused outside QGIS. Processing algorithms in :mod:`..algorithms` are thin adapters over it.
"""
