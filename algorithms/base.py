"""Shared plumbing for the Processing algorithms: feedback adapter, error translation, parameters.

Each algorithm subclasses :class:`SpectralAlgorithm`, declares its parameter names once as class
constants, and implements :meth:`execute`, which calls the QGIS-free runtime with a
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


def _emit_path(value):
    """``value`` when it is the path of an EMIT netCDF product (``file.nc`` / ``file.nc|var``), else None."""
    if not isinstance(value, str) or not value.lower().split("|")[0].endswith((".nc", ".nc4")):
        return None
    from ..runtime.emit_netcdf import emit_source

    return value if emit_source(value) else None


def _invalid_value_message(alg, parameters, context, only=None):
    """A message saying what is wrong and what is expected for the first parameter value QGIS's own
    check rejects (it says only "Incorrect parameter value for X"): a missing input file, a number out
    of range or not a number, an unknown choice. None when there is nothing more specific to say."""
    parameters = parameters or {}
    for definition in alg.parameterDefinitions():
        name, kind = definition.name(), definition.type()
        value = parameters.get(name)
        if (only and name != only) or definition.isDestination() or value in (None, ""):
            continue
        if kind in ("raster", "multilayer", "file", "layer"):
            for item in value if isinstance(value, (list, tuple)) else [value]:
                local = item.split("|")[0] if isinstance(item, str) else ""
                if os.sep in local and not local.startswith(("/vsi", "NETCDF:", "HDF5:")) and not os.path.exists(local):
                    return f"{name}: file not found: {local}"
        elif kind in ("number", "enum") and not definition.checkValueIsAcceptable(value, context):
            if kind == "enum":
                return f"{name}: '{value}' is not a valid choice; expected one of {', '.join(definition.options())}."
            try:
                number = float(value)
            except (TypeError, ValueError):
                return f"{name}: '{value}' is not a number."
            lo, hi = definition.minimum(), definition.maximum()
            expected = (f"from {lo:g} to {hi:g}" if lo > -1e300 and hi < 1e300 else
                        f"of at least {lo:g}" if lo > -1e300 else f"of at most {hi:g}")
            return f"{name}: {number:g} is out of range; expected a value {expected}."
    return None


class FileRasterSource:
    """Stands in for a ``QgsRasterLayer`` (``source()``, ``name()``, ``isValid()``) for raster files QGIS
    cannot load as layers (EMIT netCDF swaths); the runtime opens ``source()`` itself."""

    def __init__(self, path):
        self._path = path

    def source(self):
        return self._path

    def name(self):
        return os.path.basename(self._path.split("|")[0])

    def isValid(self):  # noqa: N802
        return True


class SpectralAlgorithm(QgsProcessingAlgorithm):
    """Base class: subclasses set ``NAME``, ``DISPLAY``, ``GROUP`` and implement ``initAlgorithm``,
    ``shortHelpString`` and :meth:`execute`."""

    NAME = ""
    DISPLAY = ""
    GROUP = ""
    #: Runs a model: without ONNX Runtime the run stops with how to install it, before anything else.
    NEEDS_ONNXRUNTIME = False

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

    # -- EMIT netCDF swaths as raster inputs ---------------------------------------------------
    # QGIS cannot load EMIT netCDF files as raster layers, so its parameter check would reject them
    # ("Could not load source layer"). These two overrides let every raster-layer parameter take an
    # EMIT netCDF path (file.nc or file.nc|variable); runtime.raster_io.open_raster reads it.
    def checkParameterValues(self, parameters, context):  # noqa: N802
        emit = {n for n in (parameters or {}) if _emit_path(parameters.get(n))}
        if not emit:
            ok, message = super().checkParameterValues(parameters, context)
            return (ok, message) if ok else (False, _invalid_value_message(self, parameters, context) or message)
        for definition in self.parameterDefinitions():
            name = definition.name()
            if name not in emit and not definition.checkValueIsAcceptable(parameters.get(name), context):
                return False, (_invalid_value_message(self, parameters, context, name)
                               or f"Incorrect parameter value for {name}")
        return True, ""

    def parameterAsRasterLayer(self, parameters, name, context):  # noqa: N802
        path = _emit_path((parameters or {}).get(name))
        if path:
            return FileRasterSource(path)
        return super().parameterAsRasterLayer(parameters, name, context)

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        deps.add_deps_to_path()
        from ..processing_provider.settings import apply_settings

        apply_settings()  # Processing ▸ Options ▸ Providers ▸ Spectral Transformers → runtime env
        monitor = FeedbackMonitor(feedback)
        try:
            if self.NEEDS_ONNXRUNTIME:  # say that first, before any model or input error
                from ..runtime import onnx_backend

                onnx_backend.import_onnxruntime()
            results = self.execute(parameters, context, monitor)
            from .output_styles import name_after_input

            name_after_input(context, results, self.input_name(parameters, context))
            return results
        except Cancelled as exc:
            raise QgsProcessingException(str(exc)) from None
        except SpectralError as exc:
            raise QgsProcessingException(str(exc)) from None
        except MemoryError:
            raise QgsProcessingException(
                "Out of memory; reduce BATCH_SIZE or the block size (SPECTRALTF_BLOCK_MB).") from None

    def input_name(self, parameters, context):
        """Name of the main input (``INPUT``: its layer name, or file name), used in output layer names."""
        raw = (parameters or {}).get("INPUT")
        if isinstance(raw, (list, tuple)):
            raw = raw[0] if raw else None
        if raw in (None, ""):
            return None
        if isinstance(raw, str):
            from qgis.core import QgsProcessingUtils

            layer = QgsProcessingUtils.mapLayerFromString(raw, context) if context is not None and "|" not in raw \
                and not raw.lower().endswith((".nc", ".nc4")) else None
            if layer is not None:
                return layer.name()
            return os.path.splitext(os.path.basename(raw.split("|")[0]))[0] or None
        name = getattr(raw, "name", None)
        return name() if callable(name) else None

    def execute(self, parameters, context, monitor):
        """Run the algorithm: read parameters, call the runtime with ``monitor``, return the outputs.
        (Not named ``run``: that is QGIS's own entry point, used by processing.run and the dialog.)"""
        raise NotImplementedError

