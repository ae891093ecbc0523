"""Shared plumbing for the Processing algorithms: feedback adapter, error translation, parameters.

Each algorithm subclasses :class:`SpectralAlgorithm`, declares its parameter names once as class
constants, and implements :meth:`execute`, which calls the QGIS-free runtime with a
:class:`FeedbackMonitor` and the run's :class:`~..runtime.config.RuntimeConfig`
(``self.runtime_config``, built per run from the provider settings). Anticipated problems
(:class:`~..runtime.errors.SpectralError`, cancellation, out of memory, file-system errors such as
a full disk) become one-line ``QgsProcessingException`` messages, never a traceback.

Raster inputs given as file paths (the usual case headless and from the file browser) are opened by
the runtime itself, read-only, instead of being loaded as QGIS layers first: loading a layer makes
QGIS compute statistics that GDAL then saves beside the input (``.aux.xml``, or inside a ``.vrt``).
"""
import errno
import os

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingParameterEnum,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterRasterLayer,
)
from qgis.PyQt.QtGui import QIcon

from ..runtime import deps
from ..runtime.config import RuntimeConfig
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


#: Builds the RuntimeConfig of a run; the provider installs one reading its settings.
_config_source = [RuntimeConfig.from_environment]


def set_config_source(factory):
    """Install ``factory() -> RuntimeConfig`` (the provider passes its settings reader)."""
    _config_source[0] = factory


def runtime_config():
    return _config_source[0]()


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


_RASTER_KINDS = ("raster", "multilayer")


def _file_value(value, context=None):
    """``value`` when it names a raster file (a path, ``path|option``, a GDAL virtual path or an EMIT
    netCDF) rather than a layer of the project; else None."""
    if not isinstance(value, str) or not value.strip():
        return None
    value = value.strip()
    project = context.project() if context is not None else None
    if project is not None and (project.mapLayer(value) is not None or project.mapLayersByName(value)):
        return None
    local = value.split("|")[0]
    if value.startswith(("/vsi", "NETCDF:", "HDF5:")) or os.sep in local or "/" in local or os.path.exists(local):
        return value
    return None


def _file_problem(name, value):
    """A one-line problem with the raster file ``value`` of parameter ``name``, or None."""
    from ..runtime import raster_io

    if value.startswith("/vsi"):
        return None  # opened (and judged) by GDAL in the runtime
    local = value.split("|")[0]
    if local.upper().startswith(("NETCDF:", "HDF5:")):
        return None
    kind = raster_io.special_file_kind(local)
    if kind:
        return f"{name}: {local} is {kind}, not a raster file; give a regular file."
    if not os.path.exists(local):
        return f"{name}: file not found: {local}"
    if os.path.isdir(local):
        return f"{name}: {local} is a folder; expected a raster file."
    return None


def os_error_message(exc):
    """One line for an anticipated file-system error (full disk, permission, read-only, …)."""
    path = getattr(exc, "filename", None) or ""
    where = f" ({path})" if path else ""
    code = getattr(exc, "errno", None)
    if code in (errno.ENOSPC, errno.EDQUOT):
        return f"The disk is full{where}: no space left on the device; free some space or choose another folder."
    if code in (errno.EACCES, errno.EPERM):
        return f"Permission denied{where}; choose files and folders you can read and write."
    if code == errno.EROFS:
        return f"Read-only file system{where}; choose another folder for the outputs."
    if code == errno.EISDIR:
        return f"{path or 'The path'} is a folder; expected a file name."
    return f"{exc.strerror or type(exc).__name__}{where}."


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


class RasterParameter(QgsProcessingParameterRasterLayer):
    """A raster-layer parameter that accepts a raster *file* without loading it as a QGIS layer.

    QGIS (``qgis_process``, before the algorithm starts) checks a raster parameter by loading its
    value as a layer, and loading computes statistics that GDAL saves beside the input (``.aux.xml``)
    or writes into a ``.vrt``; a FIFO blocks it forever. File values are judged here instead (the
    algorithm's :meth:`SpectralAlgorithm.checkParameterValues` says what is wrong) and opened by the
    runtime, read-only. Project layers and layer objects are checked by QGIS as before."""

    def checkValueIsAcceptable(self, value, context=None):  # noqa: N802
        if _file_value(value, context):
            return True
        return super().checkValueIsAcceptable(value, context)

    def clone(self):
        other = RasterParameter(self.name(), self.description(), self.defaultValue())
        other.setFlags(self.flags())  # optional / advanced
        other.setHelp(self.help())
        return other


class RastersParameter(QgsProcessingParameterMultipleLayers):
    """Multiple raster layers; file values are accepted without loading them (see RasterParameter)."""

    def checkValueIsAcceptable(self, value, context=None):  # noqa: N802
        items = value if isinstance(value, (list, tuple)) else [value]
        if value not in (None, "") and items and all(_file_value(v, context) for v in items):
            return True
        return super().checkValueIsAcceptable(value, context)

    def clone(self):
        other = RastersParameter(self.name(), self.description(), self.layerType(), self.defaultValue())
        other.setFlags(self.flags())  # optional / advanced
        other.setMinimumNumberInputs(self.minimumNumberInputs())
        other.setHelp(self.help())
        return other


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
    def _file_parameters(self, parameters, context):
        """Raster / multi-layer parameters whose values are all raster files (not project layers)."""
        files = {}
        for definition in self.parameterDefinitions():
            name = definition.name()
            if definition.type() not in _RASTER_KINDS or name not in (parameters or {}):
                continue
            value = parameters[name]
            items = value if isinstance(value, (list, tuple)) else [value]
            paths = [_file_value(v, context) for v in items]
            if items and all(paths):
                files[name] = paths
        return files

    def checkParameterValues(self, parameters, context):  # noqa: N802
        files = self._file_parameters(parameters, context)
        if not files:
            ok, message = super().checkParameterValues(parameters, context)
            return (ok, message) if ok else (False, _invalid_value_message(self, parameters, context) or message)
        for definition in self.parameterDefinitions():
            name = definition.name()
            if name in files:
                for path in files[name]:
                    problem = _file_problem(name, path)
                    if problem:
                        return False, problem
            elif not definition.checkValueIsAcceptable(parameters.get(name), context):
                return False, (_invalid_value_message(self, parameters, context, name)
                               or f"Incorrect parameter value for {name}")
        return True, ""

    def parameterAsRasterLayer(self, parameters, name, context):  # noqa: N802
        path = _file_value((parameters or {}).get(name), context)
        if path:
            return FileRasterSource(path)
        return super().parameterAsRasterLayer(parameters, name, context)

    def parameterAsLayerList(self, parameters, name, context):  # noqa: N802
        value = (parameters or {}).get(name)
        items = value if isinstance(value, (list, tuple)) else [value]
        paths = [_file_value(v, context) for v in items] if value not in (None, "") else []
        if paths and all(paths):
            return [FileRasterSource(p) for p in paths]
        return super().parameterAsLayerList(parameters, name, context)

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        deps.add_ext_libs_to_path()
        monitor = FeedbackMonitor(feedback)
        try:
            # Processing ▸ Options ▸ Providers ▸ Spectral Transformers, read once per run
            self.runtime_config = runtime_config()
            return self.execute(parameters, context, monitor)
        except Cancelled as exc:
            raise QgsProcessingException(str(exc)) from None
        except SpectralError as exc:
            raise QgsProcessingException(str(exc)) from None
        except MemoryError:
            raise QgsProcessingException(
                "Out of memory; reduce BATCH_SIZE or the block size (SPECTRALTF_BLOCK_MB).") from None
        except OSError as exc:  # full disk, permissions, … outside the runtime's own checks
            raise QgsProcessingException(os_error_message(exc)) from None

    def execute(self, parameters, context, monitor):
        """Run the algorithm: read parameters, call the runtime with ``monitor``, return the outputs.
        (Not named ``run``: that is QGIS's own entry point, used by processing.run and the dialog.)"""
        raise NotImplementedError

