"""One declaration per parameter of every task (QGIS-free).

Each Processing algorithm, its dialog, its help text, its error names and the headless batch runner
come from the :data:`TASKS` table below: a :class:`Param` states name, label, help, bounds and the
runtime argument once. ``algorithms/`` builds the QGIS parameter definitions and the help from it;
:func:`parse_values` turns raw values (command-line strings, JSON numbers, dialog values) into the
runtime's keyword arguments in one place; :meth:`Task.rename_error` turns an error the runtime raised
under its own argument name (``solar_zenith``, other parameters as ``«arg»`` markers, see
:mod:`.errors`) into one naming the parameters (``SOLAR_ZENITH``), and :attr:`Task.run` does that for
errors, log messages and result keys of a run. This module is the only place in ``runtime/`` that
spells Processing names (``tests/test_error_names.py``).

Help strings may name another parameter of the same task as ``{NAME}``; the generated help shows
its visible label there, never the key.
"""
import math
import re
from dataclasses import dataclass, field
from typing import Callable, Optional

from .errors import InputError, SpectralError
from .monitor import RenamingMonitor
from .models.onnx_backend import DEVICES
from .physics.toa import EARTH_SUN_DISTANCE_RANGE_AU, RADIANCE_UNITS, SOLAR_ZENITH_RANGE_DEG

#: Parameter kinds. Inputs: raster, rasters, file, number, integer, enum, bool, string, model.
#: Destinations: output_raster, output_file, output_folder. Results (Task.outputs): number, string.
INPUT_KINDS = ("raster", "rasters", "file", "number", "integer", "enum", "bool", "string", "model")
DESTINATION_KINDS = ("output_raster", "output_file", "output_folder")

#: Input types of the SpecTf tasks (auto decides from the value range).
INPUT_TYPES = ("auto", "radiance", "reflectance")


@dataclass(frozen=True)
class Param:
    """One parameter: ``name`` (Processing key), ``label`` (what the dialog shows), ``kind``, ``help``
    (HTML fragment; ``{OTHER}`` is replaced by the other parameter's label), ``default``, ``optional``,
    inclusive ``minimum``/``maximum``, ``options`` (enum choices, passed by name), ``advanced``
    (dialog's Advanced group), ``arg`` (runtime keyword; default ``name.lower()``), ``file_filter``
    (file dialogs), ``model_tasks`` (model-card tasks a ``model`` parameter offers)."""

    name: str
    label: str
    kind: str
    help: str = ""
    default: object = None
    optional: bool = False
    minimum: Optional[float] = None
    maximum: Optional[float] = None
    options: tuple = ()
    advanced: bool = False
    arg: Optional[str] = None
    file_filter: str = ""
    model_tasks: tuple = ()
    create_by_default: bool = True

    @property
    def key(self):
        """The runtime keyword argument this parameter becomes."""
        return self.arg or self.name.lower()

    @property
    def is_destination(self):
        return self.kind in DESTINATION_KINDS

    def bounds_text(self):
        lo, hi = self.minimum, self.maximum
        if lo is not None and hi is not None:
            return f"from {lo:g} to {hi:g}"
        if lo is not None:
            return f"of at least {lo:g}"
        if hi is not None:
            return f"of at most {hi:g}"
        return ""


@dataclass(frozen=True)
class Task:
    """An algorithm: ``name`` (id without provider prefix), ``display`` name, ``group`` id, ``params``
    (inputs and destinations, dialog order), ``outputs`` (result values), ``intro`` and ``notes``
    (help paragraphs before / after the parameters) and ``run`` (dotted name of
    ``run(config, monitor, **kwargs) -> dict`` in :mod:`.tasks`; the dict maps output names to values)."""

    name: str
    display: str
    group: str
    params: tuple
    outputs: tuple = ()
    intro: str = ""
    notes: str = ""
    runner: str = ""
    by_name: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "by_name", {p.name: p for p in self.params + self.outputs})
        keys = [p.key for p in self.params + self.outputs]
        assert len(set(keys)) == len(keys), f"{self.name}: two parameters share a runtime argument"

    def param(self, name):
        return self.by_name[name]

    @property
    def entry(self) -> Callable:
        """The runtime entry point in :mod:`.tasks` (argument names in, argument keys out)."""
        from . import tasks

        return getattr(tasks, self.runner or self.name)

    @property
    def run(self) -> Callable:
        """``run(config, monitor, **kwargs) -> dict`` in Processing names: the entry point with its
        result keys, log messages and errors renamed from runtime arguments to parameter names."""
        def run(config, monitor, **kwargs):
            try:
                results = self.entry(config, RenamingMonitor(monitor, self.message_names()), **kwargs)
            except SpectralError as exc:
                raise self.rename_error(exc) from exc.__cause__
            names = self.names_by_arg()
            return {names.get(k, k): v for k, v in (results or {}).items()}

        return run

    # -- names ----------------------------------------------------------------------------------
    def names_by_arg(self):
        """Runtime argument (or result key) → parameter name of this task."""
        return {p.key: p.name for p in self.params + self.outputs}

    def message_names(self):
        """Argument → name for messages: this task's, and for an argument it lacks (shared runtime code
        may mention ``radiance_units`` in a cloud-mask run) the name the table gives it elsewhere."""
        return {**_names_in_table(), **self.names_by_arg()}

    def rename_error(self, exc):
        """``exc`` (a :class:`SpectralError`) naming the parameter, and every parameter its message
        refers to (``«arg»`` markers), by parameter names instead of runtime arguments (idempotent)."""
        if not isinstance(exc, SpectralError) or not hasattr(exc, "template"):
            return exc
        return exc.renamed(self.message_names())

    # -- help -----------------------------------------------------------------------------------
    def label_text(self, text):
        """``text`` with every ``{NAME}`` of this task replaced by that parameter's bold label."""
        def sub(match):
            p = self.by_name.get(match.group(1))
            return f"<b>{p.label}</b>" if p else match.group(0)

        return re.sub(r"\{([A-Z][A-Z0-9_]*)\}", sub, text)

    def help_html(self):
        """The algorithm's help, generated from the declarations (labels, bounds, defaults)."""
        parts = [f"<p>{self.label_text(self.intro)}</p>"] if self.intro else []

        def item(p):
            extra = []
            if p.kind in ("number", "integer") and p.bounds_text():
                extra.append(f"a value {p.bounds_text()}")
            if p.kind == "enum":
                extra.append("one of " + ", ".join(str(o) for o in p.options))
            if p.default not in (None, "") and not p.is_destination:
                extra.append(f"default {p.default}")
            if p.optional and not p.is_destination:
                extra.append("optional")
            tail = f" <i>({'; '.join(extra)})</i>" if extra else ""
            return f"<li><b>{p.label}</b>: {self.label_text(p.help)}{tail}</li>"

        inputs = [p for p in self.params if not p.is_destination and not p.advanced]
        advanced = [p for p in self.params if not p.is_destination and p.advanced]
        dests = [p for p in self.params if p.is_destination]
        if inputs:
            parts.append("<ul>" + "".join(item(p) for p in inputs) + "</ul>")
        if advanced:
            parts.append("<p><i>Advanced parameters</i></p><ul>" + "".join(item(p) for p in advanced) + "</ul>")
        if dests or self.outputs:
            parts.append("<p><i>Outputs</i></p><ul>" + "".join(item(p) for p in dests + list(self.outputs))
                         + "</ul>")
        if self.notes:
            parts.append(f"<p>{self.label_text(self.notes)}</p>")
        return "".join(parts)


# ---------------------------------------------------------------------------------------------
# value parsing (the one place optional values are read)
# ---------------------------------------------------------------------------------------------
def _blank(value):
    return value is None or (isinstance(value, str) and value.strip() == "")


def _number(p, value):
    if isinstance(value, bool):
        raise InputError(f"'{value}' is not a number.", p.name)
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise InputError(f"'{value}' is not a number.", p.name) from None
    if not math.isfinite(number):
        raise InputError(f"'{value}' is not a finite number.", p.name)
    return number


def _integer(p, value):
    if isinstance(value, bool):
        raise InputError(f"'{value}' is not a whole number.", p.name)
    if isinstance(value, int):
        return value
    text = value.strip() if isinstance(value, str) else value
    try:
        number = float(text)
    except (TypeError, ValueError):
        raise InputError(f"'{value}' is not a whole number.", p.name) from None
    if not math.isfinite(number) or number != int(number):
        raise InputError(f"'{value}' is not a whole number.", p.name)
    return int(number)


def _check_bounds(p, number):
    lo, hi = p.minimum, p.maximum
    if (lo is not None and number < lo) or (hi is not None and number > hi):
        raise InputError(f"{number:g} is out of range; expected a value {p.bounds_text()}.", p.name)
    return number


def _enum(p, value):
    options = [str(o) for o in p.options]
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(options):
        return options[value]  # older scripts and models pass the index
    text = str(value).strip()
    if text.isdigit() and 0 <= int(text) < len(options):
        return options[int(text)]
    lowered = {o.lower(): o for o in options}
    if text.lower() in lowered:
        return lowered[text.lower()]
    raise InputError(f"'{text}' is not a valid choice; expected one of {', '.join(options)}.", p.name)


def _bool(p, value):
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise InputError(f"'{value}' is not true or false.", p.name)


def _paths(p, value):
    if isinstance(value, (list, tuple)):
        items = [str(v).strip() for v in value if not _blank(v)]
    else:
        items = [s.strip() for s in str(value).split(";") if s.strip()]
    return items


def parse_value(p, value):
    """The runtime value of one raw ``value`` of parameter ``p`` (None when blank and optional)."""
    if _blank(value) or (isinstance(value, (list, tuple)) and not value):
        if p.default is not None:
            value = p.default
        elif p.optional or p.is_destination and not p.create_by_default:
            return [] if p.kind == "rasters" else None
        else:
            raise InputError(f"no value given; expected {p.label.lower()}.", p.name)
    if p.kind == "number":
        return _check_bounds(p, _number(p, value))
    if p.kind == "integer":
        return int(_check_bounds(p, _integer(p, value)))
    if p.kind == "enum":
        return _enum(p, value)
    if p.kind == "bool":
        return _bool(p, value)
    if p.kind == "rasters":
        return _paths(p, value)
    if p.kind == "raster" and isinstance(value, (list, tuple)):
        items = _paths(p, value)
        if len(items) != 1:
            raise InputError(f"{len(items)} rasters given; expected one.", p.name)
        return items[0]
    return str(value).strip()


def split_series(task, raw):
    """``raw`` with a list of several rasters given to ``INPUT`` (scripts written when it took one raster
    per date) split into ``INPUT`` (the first) and ``INPUT_DATES`` (the rest), for tasks that have both;
    a one-item list given to a single-raster parameter becomes that item."""
    raw = dict(raw or {})
    for p in task.params:  # one raster given as a one-item list
        value = raw.get(p.name)
        if p.kind == "raster" and isinstance(value, (list, tuple)) and len(value) == 1:
            raw[p.name] = value[0]
    value = raw.get("INPUT")
    if "INPUT_DATES" in task.by_name and isinstance(value, (list, tuple)) and len(value) > 1 \
            and _blank_list(raw.get("INPUT_DATES")):
        raw["INPUT"], raw["INPUT_DATES"] = value[0], list(value[1:])
    return raw


def _blank_list(value):
    return _blank(value) or (isinstance(value, (list, tuple)) and not value)


def parse_values(task, raw):
    """Runtime keyword arguments (keyed by :attr:`Param.key`) for the raw parameter values ``raw``
    (keyed by parameter name). Unknown names, missing required values, malformed numbers, values out
    of bounds and unknown choices raise :class:`InputError` naming the parameter."""
    raw = split_series(task, raw)
    unknown = [n for n in raw if n not in task.by_name or task.by_name[n] in task.outputs]
    if unknown:
        names = ", ".join(p.name for p in task.params)
        raise InputError(f"unknown parameter; {task.name} takes {names}.", unknown[0])
    return {p.key: parse_value(p, raw.get(p.name)) for p in task.params}


# ---------------------------------------------------------------------------------------------
# shared declarations
# ---------------------------------------------------------------------------------------------
def _device(advanced=False):
    return Param("DEVICE", "Device", "enum", options=DEVICES, default="auto", advanced=advanced,
                 help="auto uses CUDA when ONNX Runtime can, else the CPU; cuda fails when no GPU is usable. "
                      "The execution provider used is logged.")


def _solar_zenith(advanced=False):
    lo, hi = SOLAR_ZENITH_RANGE_DEG
    return Param("SOLAR_ZENITH", "Solar zenith angle (°)", "number", optional=True, minimum=lo, maximum=hi,
                 advanced=advanced,
                 help="fixed solar zenith in degrees (0 = sun overhead; the sun must be above the horizon) that "
                      "overrides the {OBSERVATION} and the acquisition time.")


def _earth_sun_distance(advanced=False):
    lo, hi = EARTH_SUN_DISTANCE_RANGE_AU
    return Param("EARTH_SUN_DISTANCE", "Earth–Sun distance (AU)", "number", optional=True, minimum=lo, maximum=hi,
                 advanced=advanced,
                 help="fixed Earth–Sun distance in astronomical units (0.983–1.017 over a year) that overrides "
                      "the {OBSERVATION} and the acquisition date.")


def _scale(label="Value scale", what="reflectance or radiance"):
    return Param("SCALE", label, "number", optional=True, minimum=0.0, advanced=True,
                 help=f"factor turning the stored values into {what}, e.g. 0.0001 for reflectance stored as "
                      "integers ×10000; it replaces the file's GDAL scale/offset. Empty: the file's own (EnMAP's "
                      "0.0001 tag is honoured). The applied scale is logged; whole numbers that look like scaled "
                      "reflectance without a scale are refused with this fix proposed.")


_OBS_HELP = ("the matching 11-band EMIT / AVIRIS-NG OBS raster on the same grid: band 5 gives the per-pixel solar "
             "zenith (degrees), band 11 the Earth–Sun distance (its mean over valid pixels is used, as SpecTf does).")
_SPECTRUM_FILTER = "Solar spectra (*.npy *.txt *.dat *.csv);;All files (*)"  # (*): model ids have no dot

TOA = Task(
    "toareflectance", "Radiance to TOA reflectance", "radiometry",
    params=(
        Param("INPUT", "Radiance raster", "raster",
              help="at-sensor radiance of an imaging spectrometer with band wavelengths in its metadata, e.g. an "
                   "EMIT L1B or AVIRIS-NG radiance ENVI file or an EMIT netCDF."),
        Param("OBSERVATION", "Observation geometry (OBS)", "raster", optional=True, help=_OBS_HELP),
        _solar_zenith(),
        _earth_sun_distance(),
        Param("IRRADIANCE", "Solar irradiance spectrum (file, or a model id for that model's own)", "file",
              optional=True, file_filter=_SPECTRUM_FILTER,
              help="2-column .npy (nm, µW cm⁻² nm⁻¹) or a text table such as Kurucz or TSIS (units from the header "
                   "or the magnitude), or a model id / .onnx path: that model's own solar spectrum (the SpecTf "
                   "models carry SpecTf's irr.npy). Default: ASTM E-490-00a, shipped with the plugin."),
        _scale("Radiance scale", "radiance"),
        Param("RADIANCE_UNITS", "Radiance units", "enum", options=tuple(RADIANCE_UNITS), default="auto",
              help="auto reads them from the metadata (EMIT's description) and otherwise assumes "
                   "µW cm⁻² nm⁻¹ sr⁻¹ (EMIT, AVIRIS-NG); choose explicitly for other sensors."),
        Param("OUTPUT", "TOA reflectance", "output_raster",
              help="float32 reflectance on the same grid, nodata −9999 where the radiance is nodata; band "
                   "wavelengths, FWHM and bad-band list preserved."),
    ),
    intro="Converts at-sensor radiance to top-of-atmosphere reflectance: "
          "<b>ρ = π · L · d² / (E<sub>sun</sub>(λ) · cos θ<sub>s</sub>)</b>. E<sub>sun</sub> is the solar spectrum "
          "averaged over each band's Gaussian response (band FWHM from the metadata; the band spacing when it is "
          "missing). Without {SOLAR_ZENITH} / {EARTH_SUN_DISTANCE} or {OBSERVATION}, the geometry is computed "
          "from the acquisition time in the metadata (e.g. ENVI 'start acquisition time') with the NOAA "
          "solar-position equations at the raster centre (needs georeferencing; the distance needs only the "
          "date).",
    notes="The raster is processed in blocks, so memory stays bounded for multi-GB cubes.",
)

_SPECTF_MODEL_TASK = "spectral-cloud-mask"
_LTAE_MODEL_TASK = "temporal-attention"
DEFAULT_SPECTF_MODEL = "spectf-cloud-v0.1.0"
DEFAULT_SEGMENTATION_MODEL = "ukis-csmask-6b-l2a"

CLOUDMASK = Task(
    "cloudmask", "SpecTf cloud mask", "cloudmasking",
    params=(
        Param("INPUT", "Hyperspectral image", "raster",
              help="TOA reflectance, or at-sensor radiance (µW cm⁻² nm⁻¹ sr⁻¹ as EMIT / AVIRIS-NG) converted to "
                   "TOA reflectance block by block (no intermediate file). Band wavelengths must be in the "
                   "metadata (ENVI header, GDAL band metadata or band names)."),
        Param("INPUT_TYPE", "Input type", "enum", options=INPUT_TYPES, default="auto",
              help="auto decides from the value range (99th percentile above 1.5 → radiance) and logs why; "
                   "reflectance input holding obvious radiance values is an error."),
        Param("OBSERVATION", "Observation geometry (OBS)", "raster", optional=True,
              help="for radiance input: " + _OBS_HELP),
        Param("IRRADIANCE", "Solar irradiance spectrum", "file", optional=True, file_filter=_SPECTRUM_FILTER,
              advanced=True,
              help="for radiance input. Default: the model's own (the SpecTf models carry SpecTf's irr.npy, so "
                   "radiance is converted as the reference implementation does), else ASTM E-490."),
        _solar_zenith(advanced=True),
        _earth_sun_distance(advanced=True),
        _scale(),
        Param("MODEL", "Model", "model", default=DEFAULT_SPECTF_MODEL, model_tasks=(_SPECTF_MODEL_TASK,),
              help="a registered SpecTf model (see <i>List models</i>) or the path of a SpecTf .onnx file "
                   "(inputs spectra (N,S) and wavelengths (S))."),
        Param("THRESHOLD", "Cloud-probability threshold", "number", optional=True, minimum=0.0, maximum=1.0,
              advanced=True,
              help="cloud where probability ≥ threshold, strictly between 0 and 1; empty = the model card's "
                   "(0.51 for v0.1.0)."),
        _device(),
        Param("BATCH_SIZE", "Batch size (spectra per inference call)", "integer", optional=True, minimum=1,
              advanced=True, help="empty = the model card's (64 for v0.1.0); lower it when memory is short."),
        Param("OUTPUT", "Cloud mask", "output_raster", arg="mask",
              help="byte raster 0 = clear, 1 = cloud, 255 = no data (pixels where any used band is nodata/NaN "
                   "are not computed), styled with clear transparent and cloud white."),
        Param("OUTPUT_PROBABILITY", "Cloud probability", "output_raster", optional=True, create_by_default=False,
              arg="probability", help="float32 0–1, no data −9999."),
    ),
    outputs=(
        Param("CLOUD_FRACTION", "Cloud fraction of valid pixels", "number", help="cloud pixels / valid pixels."),
        Param("VALID_PIXELS", "Valid pixels", "number", help="pixels computed."),
        Param("CLOUD_PIXELS", "Cloud pixels", "number", help="pixels classified as cloud."),
    ),
    intro="Per-pixel cloud mask for imaging spectrometers with <b>SpecTf</b>, the spectroscopic transformer behind "
          "the EMIT cloud masks (Lee et al. 2025). Each band is one token (reflectance, wavelength), so bands are "
          "matched by <i>wavelength</i>: the input's own band centres are used after removing the bands in the "
          "model's drop ranges (≤405, 1275–1321, ≥2455 nm; EMIT keeps 268 of 285). Other sensors (AVIRIS-NG, "
          "EnMAP, PRISMA) run with their own wavelengths and a warning: the published model was trained on EMIT.",
    notes="The image is processed in strips and batches, so memory stays bounded for any scene size; cancelling "
          "stops within a strip and leaves no output file.",
)

SEGMENT = Task(
    "segment", "Segment with an ONNX model", "segmentation",
    params=(
        Param("INPUT", "Input raster", "raster",
              help="the raster to segment (for multi-temporal models: the first date). Values are used after the "
                   "raster's own scale/offset; the card's scale, offset, mean and std are then applied (e.g. "
                   "×0.0001 for L1C integers)."),
        Param("INPUT_DATES", "Further dates (multi-temporal models)", "rasters", optional=True, arg="series",
              advanced=True,
              help="for models that take several dates: the rasters of the dates after the {INPUT}, in date order, "
                   "all on its grid."),
        Param("MODEL", "Model", "model", default=DEFAULT_SEGMENTATION_MODEL, model_tasks=("segmentation",),
              help="a registered segmentation model (see <i>List models</i>; the ukis-csmask cloud / cloud-shadow "
                   "models are found when the Python package is installed) or the path of an .onnx file with an "
                   "embedded card or a sidecar &lt;model&gt;.json (models/README.md, 'Bring your own model')."),
        Param("BANDS", "Input band per model band", "string", optional=True, advanced=True,
              help="1-based raster band numbers in the model's band order, e.g. 2,3,4,8,11,12. Empty: bands are "
                   "matched by name (Sentinel-2 B02…B12, Landsat/HLS names, 'blue', 'swir16', …) or by centre "
                   "wavelength; the log lists what was matched."),
        Param("TILE_OVERLAP", "Tile overlap (pixels, or fraction of the tile below 1)", "number", optional=True,
              minimum=0.0, advanced=True, arg="overlap",
              help="the model runs on fixed-size tiles that overlap by this many pixels (or this fraction of the "
                   "tile when below 1, e.g. 0.25); overlapping predictions are blended with smooth weights so "
                   "there are no seams. Empty: the model card's."),
        Param("DATES", "Acquisition dates (models with temporal inputs)", "string", optional=True, advanced=True,
              help="only for models whose card has temporal inputs (Prithvi-EO-2.0 <i>_tl</i> models imported with "
                   "import-terratorch): comma-separated ISO dates, one per input raster, e.g. 2019-03-01, "
                   "2019-04-02. Empty: read from the raster metadata (ACQUISITION_DATE, TIFFTAG_DATETIME, …) or the "
                   "file names. Such models also get the raster centre in WGS 84 as their location."),
        Param("BATCH_SIZE", "Batch size (tiles per inference call)", "integer", default=4, minimum=1, advanced=True,
              help="lower it when memory is short."),
        _device(),
        Param("OUTPUT", "Class map", "output_raster", arg="classes",
              help="byte raster with the card's class values, 255 = no data (pixels that are no data in any band "
                   "or date), with a colour table and a .qml style."),
        Param("OUTPUT_PROBABILITIES", "Class probabilities", "output_raster", optional=True,
              create_by_default=False, arg="probabilities",
              help="float32, one band per class named after it, no data −9999."),
        Param("OUTPUT_CONFIDENCE", "Confidence (maximum class probability)", "output_raster", optional=True,
              create_by_default=False, arg="confidence", help="float32, no data −9999."),
    ),
    outputs=(
        Param("VALID_PIXELS", "Valid pixels", "number", help="pixels classified."),
        Param("CLASS_COUNTS", "Pixels per class (JSON)", "string", help="class name → pixel count."),
        Param("PROVIDER", "ONNX Runtime execution provider used", "string", help="e.g. CPUExecutionProvider."),
    ),
    intro="Semantic segmentation of a raster with any ONNX model described by a <b>model card</b> (bands, tile "
          "size, normalisation, classes), e.g. the ukis-csmask cloud / cloud-shadow models or your own model. "
          "Rasters smaller than one tile are reflect-padded.",
    notes="The raster is processed one row of tiles at a time, so memory does not grow with its height; "
          "cancelling leaves no output file.",
)

ATTENTION = Task(
    "attentionmaps", "Attention maps", "explainability",
    params=(
        Param("INPUT", "Input raster", "raster",
              help="SpecTf: one hyperspectral raster (TOA reflectance, or radiance converted on the fly as in the "
                   "cloud-mask algorithm). L-TAE: the raster of the first date (further dates in {INPUT_DATES}), or "
                   "one multiband stack of dates × channels bands in date-major order (then give {DATES})."),
        Param("MODEL", "Model", "model", default=DEFAULT_SPECTF_MODEL,
              model_tasks=(_SPECTF_MODEL_TASK, _LTAE_MODEL_TASK),
              help="a registered SpecTf or L-TAE model (see <i>List models</i>) or an .onnx path; its card selects "
                   "band attention (SpecTf, task <i>spectral-cloud-mask</i>) or temporal attention (L-TAE, task "
                   "<i>temporal-attention</i>). A model without an 'attention' output is rejected."),
        _device(),
        Param("BATCH_SIZE", "Batch size (pixels per inference call)", "integer", optional=True, minimum=1,
              advanced=True, help="empty = the model's default."),
        Param("INPUT_TYPE", "SpecTf: input type", "enum", options=INPUT_TYPES, default="auto", advanced=True,
              help="auto, radiance or reflectance, as in the cloud-mask algorithm."),
        Param("OBSERVATION", "SpecTf: observation geometry (OBS)", "raster", optional=True, advanced=True,
              help="for radiance input: " + _OBS_HELP),
        Param("IRRADIANCE", "SpecTf: solar irradiance spectrum", "file", optional=True, advanced=True,
              file_filter=_SPECTRUM_FILTER, help="for radiance input; default: the model's own, else ASTM E-490."),
        _scale("SpecTf: value scale"),
        Param("INPUT_DATES", "L-TAE: further dates", "rasters", optional=True, advanced=True, arg="series",
              help="the rasters of the dates after the {INPUT}, in date order, each with the model's channels "
                   "(e.g. NDVI), all on its grid."),
        Param("DATES", "L-TAE: acquisition dates", "string", optional=True, advanced=True, arg="dates_text",
              help="comma-separated ISO dates, one per date (required for a stack). Empty: each raster's metadata "
                   "(ACQUISITION_DATE, TIFFTAG_DATETIME, ENVI acquisition time…) or file name (YYYYMMDD / "
                   "YYYY-MM-DD)."),
        Param("OUTPUT", "Attention map", "output_raster",
              help="SpecTf: one float32 band per model wavelength (attention each band token receives, mean over "
                   "heads and query positions) with wavelength metadata. L-TAE: one band per date (attention on "
                   "that date, mean over heads; band descriptions are the dates). No data −9999."),
        Param("OUTPUT_TOP_WAVELENGTH", "SpecTf: most-attended wavelength (nm)", "output_raster", optional=True,
              create_by_default=False, arg="top_wavelength", help="the most-attended wavelength per pixel."),
        Param("OUTPUT_HEADS", "L-TAE: attention per head", "output_raster", optional=True, create_by_default=False,
              arg="heads", help="heads × dates bands, head-major."),
        Param("OUTPUT_CLASSES", "L-TAE: class map", "output_raster", optional=True, create_by_default=False,
              arg="classes", help="uint8 class map with a colour table (255 = no data)."),
    ),
    intro="Maps where a transformer model puts its attention. The <b>model's card</b> selects the mode: band "
          "attention (SpecTf) or temporal attention (L-TAE). Parameters whose label starts with 'SpecTf:' or "
          "'L-TAE:' apply to that mode only (in the Advanced group); the others to both.",
    notes="All rasters must share one grid. Pixels with nodata in any band/date are nodata (−9999; class map 255). "
          "Attention is a diagnostic, not a calibrated importance measure.",
)

ORTHORECTIFY = Task(
    "orthorectify", "Orthorectify with EMIT GLT", "radiometry",
    params=(
        Param("INPUT", "Sensor-geometry raster", "raster",
              help="a raster on EMIT's sensor grid (columns = crosstrack samples, rows = downtrack lines), e.g. a "
                   "TOA reflectance, cloud mask or attention map computed from an EMIT netCDF, or an EMIT L1B/L2A "
                   "netCDF itself (e.g. the L2A MASK)."),
        Param("GLT", "Geometry lookup table", "file", optional=True,
              file_filter="EMIT netCDF (*.nc);;GLT rasters (*.tif *.img *.vrt);;All files (*.*)",
              help="the EMIT netCDF of the same scene (any of RDN, OBS, RFL, MASK: the GLT is in location/glt_x, "
                   "glt_y; map grid and CRS in its geotransform / spatial_ref attributes), or a georeferenced "
                   "2-band GLT raster (band 1 = sample, band 2 = line, 1-based, 0 = no data). Optional when the "
                   "{INPUT} itself is an EMIT netCDF."),
        Param("OUTPUT", "Orthorectified raster", "output_raster",
              help="GeoTIFF on the GLT's map grid (WGS 84 for EMIT, 60 m pixels), same data type, bands, band names, "
                   "wavelengths, colour table and .qml style as the input; map pixels outside the swath get the "
                   "input's nodata value (−9999 for float, 255 for byte rasters without nodata)."),
    ),
    intro="Puts a raster that is in EMIT's raw sensor geometry onto the map grid with the scene's geometry lookup "
          "table (GLT), by nearest neighbour as EMIT's own tools do.",
    notes="The raster is written tile by tile; only the sensor window a tile needs is read.",
)

LIST_MODELS = Task(
    "models", "List models", "models",
    params=(
        Param("OUTPUT_JSON", "Model list (JSON file)", "output_file", optional=True, create_by_default=False,
              file_filter="JSON files (*.json)", help="the model list written to a file."),
    ),
    outputs=(
        Param("MODELS", "Models and their cards (JSON)", "string", help="JSON list of {id, path, origin, error, card}."),
        Param("COUNT", "Number of usable models", "number", help="models whose card is valid."),
    ),
    intro="Lists every model the plugin can use, with its model card (task, bands, tile size, classes, licence, "
          "source): models in the plugin's <i>models</i> folder, in your model folder (Processing ▸ Options ▸ "
          "Providers ▸ Spectral Transformers, or the SPECTRALTF_MODEL_DIR environment variable) and models "
          "shipped by installed Python packages (ukis-csmask). Choose a model in the <b>Model</b> list of the "
          "other algorithms, or pass its <b>id</b> from scripts. Models whose card is missing or invalid are "
          "listed with the reason.",
)

INSTALL_DEPENDENCIES = Task(
    "installdependencies", "Install dependencies (ONNX Runtime, ukis-csmask models)", "models",
    params=(
        Param("BUILD", "ONNX Runtime build (auto: CUDA build when an NVIDIA GPU is present)", "enum",
              options=DEVICES, default="auto", arg="device",
              help="auto picks onnxruntime-gpu when an NVIDIA GPU is present, else onnxruntime; the two are never "
                   "installed side by side."),
        Param("UKIS", "Also install the ukis-csmask cloud and cloud-shadow models (about 160 MB)", "bool",
              default=True, arg="with_ukis", help="the ukis-csmask U-Nets (Apache-2.0, DLR) for <i>Segment</i>."),
        Param("WHEELS", "Install offline from this folder of wheel files", "string", optional=True, advanced=True,
              arg="wheel_dir", help="a folder of .whl files (e.g. made with <code>pip download</code> on a connected "
                                    "machine); nothing is downloaded."),
        Param("INDEX_URL", "Package index URL (a mirror; default: PyPI)", "string", optional=True, advanced=True,
              help="a PyPI mirror."),
    ),
    outputs=(
        Param("FOLDER", "Folder the packages were installed into", "string", help="in your QGIS profile."),
        Param("INSTALLED", "Installed packages", "string", help="name==version, comma-separated."),
    ),
    intro="Installs <b>ONNX Runtime</b>, which every model algorithm needs, for the Python that QGIS runs, and (by "
          "default) the <b>ukis-csmask</b> cloud/cloud-shadow models. Packages go to the <i>spectral_transformers</i> "
          "folder of your QGIS profile, outside the plugin folder, so upgrading the plugin keeps them; QGIS's own "
          "packages (NumPy, GDAL) are never replaced: NumPy is pinned to the version QGIS runs. pip comes from "
          "QGIS's Python, or is run from a pip wheel when that Python has none. Restart QGIS afterwards.",
)

INSTALL_MODEL = Task(
    "installmodel", "Install model", "models",
    params=(
        Param("SOURCE", "Model: URL or file (.onnx with its card, or a .zip of models)", "string",
              help="an http(s):// or file:// URL or a local path of an <b>.onnx</b> file (with its model card "
                   "embedded, or the card <i>name</i>.json beside it) or of a <b>.zip</b> holding models and their "
                   "cards."),
        Param("SHA256", "SHA-256 of the file (checked when given)", "string", optional=True,
              help="when given, the downloaded file must match it."),
        Param("CARD", "Model card: URL or file (only for an .onnx without an embedded or sidecar card)", "string",
              optional=True, advanced=True, help="for an .onnx whose card is a separate download."),
        Param("OVERWRITE", "Replace an installed model with the same id", "bool", default=False,
              help="otherwise an id that is already installed is refused."),
    ),
    outputs=(
        Param("FOLDER", "Model folder", "string", help="your user model folder."),
        Param("MODEL_IDS", "Installed model ids", "string", help="comma-separated."),
        Param("COUNT", "Number of installed models", "number", help="models installed by this run."),
    ),
    intro="Installs a model into your model folder (the <i>spectral_transformers/models</i> folder of your QGIS "
          "profile, kept across plugin upgrades), where every algorithm's <b>Model</b> finds it by id.",
    notes="The card is validated, the files it names must be present and the graph is test-loaded with ONNX Runtime "
          "before anything is copied; on any error or cancel nothing is installed. See <i>List models</i> for what "
          "is installed.",
)

#: Algorithms a batch runs (those writing rasters), by name.
BATCH_ALGORITHMS = tuple(t.name for t in (TOA, CLOUDMASK, SEGMENT, ATTENTION, ORTHORECTIFY))

SUBMIT_BATCH = Task(
    "submitbatch", "Submit batch to a Dask scheduler", "batch",
    params=(
        Param("ALGORITHM", "Algorithm to run on every scene", "enum", options=BATCH_ALGORITHMS, default="cloudmask",
              help="the Spectral Transformers algorithm each scene runs, with the same parameters and checks as "
                   "when it is run alone."),
        Param("INPUTS", "Scene list (CSV)", "file", file_filter="CSV files (*.csv);;All files (*)",
              help="a header row of the algorithm's parameter names (INPUT, OBSERVATION, …; any case; optionally "
                   "NAME) and one row per scene; relative paths are relative to the list's folder, several rasters "
                   "in one cell are separated by <code>;</code>."),
        Param("PARAMETERS", "Parameters for every scene (NAME=VALUE, one per line or separated by ;)", "string",
              optional=True,
              help="values that apply to every row, e.g. <code>MODEL=spectf-cloud-v0.1.0; DEVICE=cpu</code>; a "
                   "parameter may not be both a column of the list and given here."),
        Param("SCHEDULER", "Dask scheduler address (empty: a local cluster on this computer)", "string",
              optional=True,
              help="<code>tcp://host:port</code> or a scheduler file of a running Dask cluster (several machines, "
                   "SLURM/PBS through dask-jobqueue); its workers need this plugin, NumPy, GDAL and ONNX Runtime, not "
                   "QGIS. Empty: worker processes on this computer, on 127.0.0.1 only."),
        Param("WORKERS", "Local worker processes (empty: one per core)", "integer", optional=True, minimum=1,
              maximum=1024,
              help="processes of the local cluster, one scene at a time each; ONNX Runtime threads = cores / "
                   "workers. Only for a local cluster."),
        Param("RETRIES", "Retries after a worker died (empty: 2 locally, the scheduler's own setting otherwise)",
              "integer", optional=True, minimum=0, maximum=100, advanced=True,
              help="how many times a scene is given to another worker when the worker running it died (killed, "
                   "out of memory, machine lost); a scene's own error (a corrupt file) is not retried. On an "
                   "existing cluster this changes the scheduler's setting for all its clients."),
        Param("FORCE", "Recompute scenes the manifest lists as complete", "bool", default=False, advanced=True,
              help="otherwise a scene whose outputs are complete and unchanged with the same parameters is skipped, "
                   "so an interrupted batch resumes where it stopped."),
        Param("OUTPUT_DIR", "Output folder", "output_folder",
              help="the scenes' outputs (<i>scene</i>_<i>output</i>.tif unless the list names them) and "
                   "<code>manifest.jsonl</code>, one record per scene and run."),
    ),
    outputs=(
        Param("MANIFEST", "Manifest (JSON lines)", "string", help="manifest.jsonl in the output folder."),
        Param("TOTAL", "Scenes", "number", help="scenes in the list."),
        Param("DONE", "Scenes done", "number", help="scenes computed by this run."),
        Param("FAILED", "Scenes failed", "number", help="scenes that failed; their messages are in the log and the "
                                                         "manifest."),
        Param("SKIPPED", "Scenes skipped", "number", help="scenes already complete."),
    ),
    intro="Runs one algorithm over a list of scenes on <a href=\"https://distributed.dask.org\">Dask distributed</a>: "
          "worker processes on this computer, or the workers of a Dask cluster (several machines). The same batch "
          "runner as <code>python -m spectral_transformers.batch run</code>: each scene's values are checked as "
          "the algorithm checks them before anything runs, one failed scene never stops the others, a scene "
          "whose worker died is retried on another, and outputs are complete or absent.",
    notes="Needs Dask for QGIS's Python (<code>python -m pip install \"dask[distributed]\" bokeh</code>); the log "
          "gives the dashboard address. Cancel stops the scenes still queued or running; the finished ones are in "
          "the manifest and a rerun skips them.",
    runner="submitbatch",
)

#: Every task, by algorithm name.
TASKS = {t.name: t for t in (TOA, CLOUDMASK, SEGMENT, ATTENTION, ORTHORECTIFY, LIST_MODELS, INSTALL_DEPENDENCIES,
                             INSTALL_MODEL, SUBMIT_BATCH)}


def _names_in_table():
    """Argument → parameter name over all tasks (the first task declaring an argument wins)."""
    names = {}
    for task in TASKS.values():
        for p in task.params + task.outputs:
            names.setdefault(p.key, p.name)
    return names
