"""Spectral Transformers QGIS plugin.

The package root is the plugin folder (installed as ``spectral_transformers``). Importing it must
not import QGIS: the numerical core in :mod:`runtime` is used without QGIS by tests, benchmarks and
``training/``.
"""


def classFactory(iface):  # noqa: N802 (QGIS API name)
    """QGIS entry point: return the plugin instance (``iface`` is ``None`` under qgis_process)."""
    from .plugin import SpectralTransformersPlugin

    return SpectralTransformersPlugin(iface)
