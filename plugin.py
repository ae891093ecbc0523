"""QGIS plugin object: registers the Processing provider.

``qgis_process`` loads plugins with ``iface=None`` and only calls :meth:`initProcessing`, so nothing
here may depend on the GUI being present.
"""
from qgis.core import QgsApplication


class SpectralTransformersPlugin:
    def __init__(self, iface):
        self.iface = iface
        self.provider = None
        self.menu = None

    def initProcessing(self):  # noqa: N802 (QGIS API name)
        from .processing_provider.provider import SpectralTransformersProvider

        if self.provider is None:
            self.provider = SpectralTransformersProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self):  # noqa: N802 (QGIS API name)
        self.initProcessing()
        if self.iface is not None:
            from .gui import dependency_check
            from .gui.menu import PluginMenu

            self.menu = PluginMenu(self.iface)
            self.menu.add()
            dependency_check.check_once(self.iface)

    def unload(self):
        if self.menu is not None:
            self.menu.remove()
            self.menu = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
