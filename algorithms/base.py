"""Shared plumbing for the Processing algorithms: parameters from the table, feedback adapter, errors.

Each algorithm subclasses :class:`SpectralAlgorithm` and names its :class:`~..runtime.parameters.Task`
(``TASK = "cloudmask"``): the QGIS parameter definitions, the help text and the value parsing all
come from that one declaration; :meth:`SpectralAlgorithm.execute` reads the values, runs the task's
QGIS-free entry point with a :class:`FeedbackMonitor` and lets the subclass style its outputs
(:meth:`SpectralAlgorithm.style_outputs`). Anticipated problems
(:class:`~..runtime.errors.SpectralError`, renamed from the runtime's argument to the parameter name),
cancellation, out of memory and file-system errors such as a full disk become one-line
``QgsProcessingException`` messages, never a traceback. Each run gets the
:class:`~..runtime.config.RuntimeConfig` built from the provider settings (``self.runtime_config``).

Raster inputs given as file paths (the usual case headless and from the file browser) are opened by
the runtime itself, read-only, instead of being loaded as QGIS layers first: loading a layer makes
QGIS compute statistics that GDAL then saves beside the input (``.aux.xml``, or inside a ``.vrt``).
"""
import errno
import os

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProperty,
)
from qgis.PyQt.QtGui import QIcon

from ..qgis_compat import (
    FILE_BEHAVIOR_FILE,
    NUMBER_DOUBLE,
    NUMBER_INTEGER,
    PARAMETER_FLAG_ADVANCED,
    SOURCE_RASTER,
)
from ..runtime import deps
from ..runtime import parameters as table
from ..runtime.config import RuntimeConfig
from ..runtime.errors import Cancelled, InputError, SpectralError
from ..runtime.monitor import Monitor

PLUGIN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ICON = os.path.join(PLUGIN_DIR, "resources", "icon.svg")

#: Dotted name of the MODEL dialog widget (GUI code, imported by Processing only when a dialog is built).
MODEL_WIDGET = __name__.split(".algorithms.")[0] + ".gui.model_widget.ModelWidgetWrapper"

GROUPS = {
    "radiometry": "Radiometry",
    "cloudmasking": "Cloud masking",
    "segmentation": "Segmentation",
    "explainability": "Explainability",
    "models": "Models",
    "batch": "Batch processing",
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


def model_choices(param):
    """Registered model ids of the tasks ``param`` offers, the default first (listed even when it is not
    installed, so scripts and the dialog agree on the default; the run then says how to get it)."""
    from ..runtime.models import registry

    ids = []
    try:
        for entry in registry.list_models(include_invalid=False):
            if not param.model_tasks or (entry.card or {}).get("task") in param.model_tasks:
                ids.append(entry.id)
    except Exception:  # noqa: BLE001 - a broken model folder must not break the dialog
        pass
    default = [param.default] if param.default else []
    return default + sorted(set(ids) - set(default))


def definition_for(param):
    """The QGIS parameter definition of one :class:`~..runtime.parameters.Param`."""
    kind, name, label, opt = param.kind, param.name, param.label, param.optional
    if kind == "raster":
        d = RasterParameter(name, label, optional=opt)  # files are not loaded as layers first
    elif kind == "rasters":
        d = RastersParameter(name, label, SOURCE_RASTER, optional=opt)
    elif kind == "file":
        d = QgsProcessingParameterFile(name, label, FILE_BEHAVIOR_FILE, optional=opt,
                                       fileFilter=param.file_filter or "All files (*.*)")
    elif kind in ("number", "integer"):
        d = QgsProcessingParameterNumber(name, label, NUMBER_INTEGER if kind == "integer" else NUMBER_DOUBLE,
                                         defaultValue=param.default, optional=opt)
        if param.minimum is not None:
            d.setMinimum(param.minimum)
        if param.maximum is not None:
            d.setMaximum(param.maximum)
    elif kind == "enum":
        d = static_enum(name, label, param.options, param.default, optional=opt)
    elif kind == "model":
        # a string (scripts, batch runs and the modeler pass any id or .onnx path) shown in dialogs as
        # a drop-down of the registered models of the task (gui/model_widget.py)
        d = QgsProcessingParameterString(name, label, defaultValue=param.default, optional=opt)
        d.setMetadata({"widget_wrapper": {"class": MODEL_WIDGET, "choices": model_choices(param)}})
    elif kind == "bool":
        d = QgsProcessingParameterBoolean(name, label, defaultValue=bool(param.default), optional=opt)
    elif kind == "string":
        d = QgsProcessingParameterString(name, label, defaultValue=param.default, optional=opt)
    elif kind == "output_raster":
        d = QgsProcessingParameterRasterDestination(name, label, optional=opt,
                                                    createByDefault=param.create_by_default)
    elif kind == "output_file":
        d = QgsProcessingParameterFileDestination(name, label, param.file_filter, optional=opt,
                                                  createByDefault=param.create_by_default)
    elif kind == "output_folder":
        d = QgsProcessingParameterFolderDestination(name, label, optional=opt,
                                                    createByDefault=param.create_by_default)
    else:
        raise ValueError(f"unknown parameter kind {kind!r} for {name}")
    if param.advanced:
        d.setFlags(d.flags() | PARAMETER_FLAG_ADVANCED)
    if hasattr(d, "setHelp"):
        d.setHelp(param.help)
    return d


def output_for(param):
    cls = QgsProcessingOutputNumber if param.kind == "number" else QgsProcessingOutputString
    return cls(param.name, param.label)


def _emit_path(value):
    """``value`` when it is the path of an EMIT netCDF product (``file.nc`` / ``file.nc|var``), else None."""
    if not isinstance(value, str) or not value.lower().split("|")[0].endswith((".nc", ".nc4")):
        return None
    from ..runtime.io.emit_netcdf import emit_source

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
    from ..runtime.io import raster_io

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
    task = getattr(alg, "task", None)
    if task is not None:
        for name, value in parameters.items():  # numbers and choices: the table's one parser
            param = task.by_name.get(name)
            if (only and name != only) or param is None or param.kind not in ("number", "integer", "enum") \
                    or isinstance(value, QgsProperty):
                continue
            try:
                table.parse_value(param, value)
            except InputError as exc:
                return str(exc)
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
    """Base class: subclasses set ``TASK`` (a key of :data:`~..runtime.parameters.TASKS`) and may
    override :meth:`style_outputs`. Parameters, help and value parsing come from the task's table."""

    TASK = ""
    #: Runs a model: without ONNX Runtime the run stops with how to install it, before anything else.
    NEEDS_ONNXRUNTIME = False

    @property
    def task(self):
        return table.TASKS[self.TASK]

    def createInstance(self):  # noqa: N802
        return type(self)()

    def name(self):
        return self.task.name

    def displayName(self):  # noqa: N802
        return self.task.display

    def group(self):
        return GROUPS[self.task.group]

    def groupId(self):  # noqa: N802
        return self.task.group

    def initAlgorithm(self, config=None):  # noqa: N802
        for param in self.task.params:
            self.addParameter(definition_for(param))
        for param in self.task.outputs:
            self.addOutput(output_for(param))

    def shortHelpString(self):  # noqa: N802
        return self.task.help_html()

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
    # EMIT netCDF path (file.nc or file.nc|variable); runtime.io.raster_io.open_raster reads it.
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
        parameters = table.split_series(self.task, parameters)
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
        deps.add_deps_to_path()
        monitor = FeedbackMonitor(feedback)
        try:
            if self.NEEDS_ONNXRUNTIME:  # say that first, before any model or input error
                from ..runtime.models import onnx_backend

                onnx_backend.import_onnxruntime()
            # Processing ▸ Options ▸ Providers ▸ Spectral Transformers, read once per run
            self.runtime_config = runtime_config()
            parameters = table.split_series(self.task, parameters)
            results = self.execute(parameters, context, monitor)
            from .output_styles import name_after_input

            name_after_input(context, results, self.input_name(parameters, context))
            return results
        except Cancelled as exc:
            raise QgsProcessingException(str(exc)) from None
        except SpectralError as exc:
            raise QgsProcessingException(str(self.task.rename_error(exc))) from None
        except MemoryError:
            raise QgsProcessingException(
                "Out of memory; reduce BATCH_SIZE or the block size (SPECTRALTF_BLOCK_MB).") from None
        except OSError as exc:  # full disk, permissions, … outside the runtime's own checks
            raise QgsProcessingException(os_error_message(exc)) from None

    # -- one way to read values and run ------------------------------------------------------
    def raw_value(self, param, parameters, context):
        """The value of ``param`` as the table's parser takes it: layer sources and destination paths
        resolved by QGIS, scalars as given (expressions evaluated)."""
        name, value = param.name, parameters.get(param.name)
        if isinstance(value, QgsProperty):
            value = self.parameterAsString(parameters, name, context)
        blank = value is None or (isinstance(value, str) and not value.strip()) or value == []
        if param.kind == "raster":
            if blank:
                return None
            layer = self.parameterAsRasterLayer(parameters, name, context)
            if layer is None:
                raise InputError(f"cannot open {value} as a raster.", name)
            return layer.source()
        if param.kind == "rasters":
            return [] if blank else [layer.source() for layer in self.parameterAsLayerList(parameters, name, context)]
        if param.kind == "file":
            return None if blank else self.parameterAsFile(parameters, name, context) or None
        if param.kind == "output_raster":
            if blank and param.optional:
                return None
            return self.parameterAsOutputLayer(parameters, name, context) or None
        if param.kind in ("output_file", "output_folder"):
            return self.parameterAsFileOutput(parameters, name, context) or None
        return value

    def values(self, parameters, context):
        """Runtime keyword arguments of this run (see :func:`~..runtime.parameters.parse_values`)."""
        raw = {p.name: self.raw_value(p, parameters, context) for p in self.task.params}
        return table.parse_values(self.task, raw)

    def input_name(self, parameters, context):
        """Name of the main input (``INPUT``: its layer name, or file name), used in output layer names."""
        raw = (parameters or {}).get("INPUT")
        if isinstance(raw, (list, tuple)):
            raw = raw[0] if raw else None
        if raw in (None, ""):
            return None
        if isinstance(raw, str):
            from qgis.core import QgsProcessingUtils

            # never load a file as a layer here: that computes statistics GDAL saves beside the input
            layer = QgsProcessingUtils.mapLayerFromString(raw, context, False) if context is not None \
                and "|" not in raw \
                and not raw.lower().endswith((".nc", ".nc4")) else None
            if layer is not None:
                return layer.name()
            return os.path.splitext(os.path.basename(raw.split("|")[0]))[0] or None
        name = getattr(raw, "name", None)
        return name() if callable(name) else None

    def execute(self, parameters, context, monitor):
        """Read the values, run the task's QGIS-free entry point, style the outputs, return them.
        (Not named ``run``: that is QGIS's own entry point, used by processing.run and the dialog.)"""
        kwargs = self.values(parameters, context)
        results = self.task.run(self.runtime_config, monitor, **kwargs)
        self.style_outputs(context, results, kwargs)
        return {k: v for k, v in results.items() if not k.startswith("_")}

    def style_outputs(self, context, results, kwargs):
        """Give loaded outputs a name and style (subclasses; ``results`` holds the runtime's ``_result``)."""

