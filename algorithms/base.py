"""Shared plumbing for the Processing algorithms: feedback adapter, error translation, parameters.

Each algorithm subclasses :class:`SpectralAlgorithm`, declares its parameter names once as class
constants, and implements :meth:`run`, which calls the QGIS-free runtime with a
:class:`FeedbackMonitor`. Anticipated problems (:class:`~..runtime.errors.SpectralError`) and
cancellation become ``QgsProcessingException`` with the runtime's message.
"""
import os

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingParameterEnum,
)
from qgis.PyQt.QtGui import QIcon

from ..runtime import deps
from ..runtime.errors import Cancelled, SpectralError
from ..runtime.monitor import Monitor

PLUGIN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ICON = os.path.join(PLUGIN_DIR, "resources", "icon.svg")

GROUPS = {
    "radiometry": "Radiometry",
    "cloudmasking": "Cloud masking",
    "segmentation": "Segmentation",
    "explainability": "Explainability",
    "models": "Models",
}


class FeedbackMonitor(Monitor):
    """Runtime monitor over a ``QgsProcessingFeedback`` (thread-safe: feedback is designed for
    use from the algorithm's worker thread)."""

    def __init__(self, feedback):
        self.feedback = feedback

    def info(self, message):
        if self.feedback is not None:
            self.feedback.pushInfo(message)

    def warn(self, message):
        if self.feedback is not None:
            self.feedback.reportError(f"Warning: {message}", fatalError=False)

    def progress(self, fraction):
        if self.feedback is not None:
            self.feedback.setProgress(max(0.0, min(100.0, 100.0 * float(fraction))))

    def cancelled(self):
        return self.feedback is not None and self.feedback.isCanceled()


def static_enum(name, description, options, default, optional=False):
    """Enum parameter whose values are passed and returned by name (``DEVICE=cpu``)."""
    param = QgsProcessingParameterEnum(name, description, options=list(options),
                                       defaultValue=default, optional=optional)
    param.setUsesStaticStrings(True)
    return param


def enum_value(alg, parameters, name, context, options):
    """Read a static-string enum; also accepts an index (older scripts/models) and any case."""
    value = alg.parameterAsEnumString(parameters, name, context)
    if value in (None, ""):
        raw = parameters.get(name)
        value = raw if raw not in (None, "") else alg.parameterDefinition(name).defaultValue()
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        idx = int(value)
        if 0 <= idx < len(options):
            return options[idx]
    value = str(value).strip().lower()
    if value not in options:
        raise QgsProcessingException(f"{name}: '{value}' is not a valid choice; expected one of {', '.join(options)}.")
    return value


class SpectralAlgorithm(QgsProcessingAlgorithm):
    """Base class: subclasses set ``NAME``, ``DISPLAY``, ``GROUP`` and implement ``initAlgorithm``,
    ``shortHelpString`` and :meth:`run`."""

    NAME = ""
    DISPLAY = ""
    GROUP = ""

    def createInstance(self):  # noqa: N802
        return type(self)()

    def name(self):
        return self.NAME

    def displayName(self):  # noqa: N802
        return self.DISPLAY

    def group(self):
        return GROUPS[self.GROUP]

    def groupId(self):  # noqa: N802
        return self.GROUP

    def icon(self):
        return QIcon(ICON)

    def helpUrl(self):  # noqa: N802
        return "https://github.com/spectral-transformers/spectral-transformers#algorithms"

    def flags(self):
        # Runs in a background task; no GUI access from run().
        return super().flags()

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        deps.add_ext_libs_to_path()
        monitor = FeedbackMonitor(feedback)
        try:
            return self.run(parameters, context, monitor)
        except Cancelled as exc:
            raise QgsProcessingException(str(exc)) from None
        except SpectralError as exc:
            raise QgsProcessingException(str(exc)) from None
        except MemoryError:
            raise QgsProcessingException(
                "Out of memory; reduce BATCH_SIZE or the block size (SPECTRALTF_BLOCK_MB).") from None

    def run(self, parameters, context, monitor):
        raise NotImplementedError
