"""QGIS-free numerical core of Spectral Transformers.

Everything here works with GDAL, numpy and (lazily) ONNX Runtime only, so it can be tested and
reused outside QGIS. Processing algorithms in :mod:`..algorithms` are thin adapters over it.
"""
import os

#: The plugin's root folder (holds ``resources/`` and ``models/``), wherever the plugin is installed.
PLUGIN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
