"""Processing provider ``spectraltf`` ("Spectral Transformers")."""
import os

from qgis.core import QgsApplication, QgsMessageLog, QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from ..algorithms import algorithm_classes
from ..algorithms.base import set_config_source
from ..qgis_compat import MESSAGE_INFO
from ..runtime import deps
from . import settings

ICON = os.path.join(os.path.dirname(os.path.dirname(__file__)), "resources", "icon.svg")


class SpectralTransformersProvider(QgsProcessingProvider):
    def __init__(self):
        super().__init__()
        # Packages installed by "Install dependencies" live in the QGIS profile, outside the plugin folder.
        deps.set_profile_dir(QgsApplication.qgisSettingsDirPath())
        deps.add_deps_to_path()

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
        from ..runtime.models import onnx_backend
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
        from .workflows import workflow_algorithms

        self._workflows = workflow_algorithms()
        for alg in self._workflows:
            self.addAlgorithm(alg)
        registry = QgsApplication.processingRegistry()
        if self._workflows and registry.providerById(self.id()) is self:
            self._reload_workflows(self.id())
        elif self._workflows:  # first load: the provider is added to the registry after this returns
            registry.providerAdded.connect(self._reload_workflows)

    def _reload_workflows(self, provider_id):
        if provider_id != self.id():
            return
        try:
            QgsApplication.processingRegistry().providerAdded.disconnect(self._reload_workflows)
        except (TypeError, RuntimeError):
            pass
        for alg in getattr(self, "_workflows", []):
            alg.reload()
