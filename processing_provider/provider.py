"""Processing provider ``spectraltf`` ("Spectral Transformers")."""
import os

from qgis.core import QgsMessageLog, QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from ..qgis_compat import MESSAGE_INFO
from ..algorithms import algorithm_classes
from ..algorithms.base import set_config_source
from ..runtime import deps
from . import settings

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
        try:
            import onnxruntime

            runtime = f"ONNX Runtime {onnxruntime.__version__}"
        except ImportError:
            runtime = "ONNX Runtime not installed"
        return f"Spectral Transformers: transformer models for imaging spectroscopy and Earth observation ({runtime})"

    def versionInfo(self):  # noqa: N802 (shown in each algorithm's log)
        """ONNX Runtime version and execution providers, or that it is missing."""
        from ..runtime import onnx_backend
        from ..runtime.errors import DependencyError

        try:
            return onnx_backend.runtime_summary()
        except DependencyError:
            return "ONNX Runtime not installed"

    def load(self):
        """Register the settings under Processing ▸ Options ▸ Providers, log the runtime, load algorithms."""
        if settings.register(self.name()):
            try:
                from processing.core.ProcessingConfig import ProcessingConfig

                ProcessingConfig.settingIcons[self.name()] = self.icon()
            except ImportError:
                pass
        QgsMessageLog.logMessage(f"Spectral Transformers: {self.versionInfo()}", "Processing", MESSAGE_INFO)
        self.refreshAlgorithms()
        return True

    def unload(self):
        settings.unregister()

    def icon(self):
        return QIcon(ICON)

    def svgIconPath(self):  # noqa: N802
        return ICON

    def loadAlgorithms(self):  # noqa: N802
        set_config_source(settings.runtime_config)  # algorithms build each run's RuntimeConfig with it
        for cls in algorithm_classes():
            self.addAlgorithm(cls())
