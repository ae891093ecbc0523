"""Processing provider ``spectraltf`` ("Spectral Transformers")."""
import os

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from ..algorithms import algorithm_classes
from ..runtime import deps

ICON = os.path.join(os.path.dirname(os.path.dirname(__file__)), "resources", "icon.svg")


class SpectralTransformersProvider(QgsProcessingProvider):
    def __init__(self):
        super().__init__()
        deps.add_ext_libs_to_path()

    def id(self):  # noqa: A003 (QGIS API name)
        return "spectraltf"

    def name(self):
        return "Spectral Transformers"

    def longName(self):  # noqa: N802
        return "Spectral Transformers: transformer models for imaging spectroscopy and Earth observation"

    def icon(self):
        return QIcon(ICON)

    def svgIconPath(self):  # noqa: N802
        return ICON

    def loadAlgorithms(self):  # noqa: N802
        for cls in algorithm_classes():
            self.addAlgorithm(cls())
