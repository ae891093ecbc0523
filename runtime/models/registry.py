"""Model registry: find ONNX models and their cards by id or path.

Sources, in order of precedence for duplicate ids:

1. the plugin's model store ``<plugin>/models/<id>.onnx`` (origin ``"plugin store"``);
2. user model folders: the run config's ``model_dirs`` (the Processing setting; SPECTRALTF_MODEL_DIR
   seeds the default), folders set with :func:`set_user_dirs` and the ``extra_dirs`` argument
   (origin ``"user folder"``);
3. installed Python packages that ship ONNX models, adapted to the card schema without importing
   them (origin ``"package <name>"``): ``ukis-csmask`` (ids ``ukis-csmask-{6b,4b}-{l2a,l1c}``).

``resolve(value)`` accepts a registry id or the path of an ``.onnx`` file.
"""
import importlib.util
import json
import os
from dataclasses import dataclass, field
from typing import Optional

from .. import PLUGIN_DIR
from .. import deps
from . import model_card
from ..pipeline import styles
from ..errors import ModelError, ref
from ..io.raster_io import special_file_kind

STORE_DIR = os.path.join(PLUGIN_DIR, "models")
ENV_DIRS = "SPECTRALTF_MODEL_DIR"

_user_dirs = []


@dataclass
class ModelEntry:
    """A registered model: ``id``, ``path`` (.onnx), ``card`` (validated dict), ``origin``
    (where it was found) and ``error`` (why its card is unusable; ``card`` is then ``{}``)."""

    id: str
    path: str
    card: dict = field(default_factory=dict)
    origin: str = ""
    error: Optional[str] = None
    #: other models with the same id that this one shadows (lower precedence), as "path (origin)"
    shadowed: tuple = ()
    #: the error behind ``error`` (its ``«arg»`` markers kept, see :mod:`..errors`), None if none
    problem: Optional[Exception] = field(default=None, repr=False, compare=False)

    @property
    def problem_text(self):
        """``error`` with the parameter as a marker, for messages the table renames."""
        p = self.problem
        return f"{ref(p.parameter)}: {p.template}" if getattr(p, "parameter", None) else self.error

    def as_dict(self):
        # the listing's "error" is about the model file, not a parameter: the reason without a prefix
        error = getattr(self.problem, "reason", None) or self.error
        out = {"id": self.id, "path": self.path, "origin": self.origin, "error": error, "card": self.card}
        if self.shadowed:
            out["shadowed"] = list(self.shadowed)
        return out

    @property
    def duplicate_warning(self):
        """A sentence naming both paths when another model has the same id, else None."""
        if not self.shadowed:
            return None
        return (f"model id '{self.id}' is defined more than once: {self.path} ({self.origin}) is used; "
                f"{'; '.join(self.shadowed)} {'is' if len(self.shadowed) == 1 else 'are'} ignored. Give each card "
                "its own id (or remove the copy) to choose explicitly.")


def set_user_dirs(dirs):
    """Folders searched for user models (the plugin's Processing setting calls this)."""
    _user_dirs[:] = [str(d) for d in (dirs or []) if str(d).strip()]


def user_dirs(extra_dirs=None, config=None):
    """User model folders: the config's (``SPECTRALTF_MODEL_DIR`` / the Processing setting), ``extra_dirs``
    and the folder *Install model* writes to (:func:`~.deps.models_dir`, outside the plugin folder)."""
    from ..config import ensure_config

    out = []
    for d in (list(ensure_config(config).model_dirs) + list(_user_dirs) + [str(x) for x in (extra_dirs or [])]
              + [deps.models_dir()]):
        d = os.path.abspath(os.path.expanduser(d))
        if d not in out:
            out.append(d)
    return out


# ---------------------------------------------------------------------------------------------
# ukis-csmask adapter
# ---------------------------------------------------------------------------------------------
#: Centre wavelengths (nm) for the ukis-csmask band names (Sentinel-2 MSI values; the models are
#: trained on Sentinel-2 and Landsat 5/7/8, whose bands are within the matching tolerance).
UKIS_BANDS = {
    "blue": (490.0, 65.0), "green": (560.0, 35.0), "red": (665.0, 30.0), "nir": (842.0, 115.0),
    "swir16": (1610.0, 90.0), "swir22": (2190.0, 180.0),
}
UKIS_CLASSES = [  # the plugin's cloud-mask colours (runtime/pipeline/styles.py): visible on imagery and on a white canvas
    {"value": 0, "name": "clear", "color": list(styles.CLEAR_COLOR)},
    {"value": 1, "name": "cloud", "color": list(styles.CLOUD_COLOR)},
    {"value": 2, "name": "cloud shadow", "color": list(styles.SHADOW_COLOR)},
]


def package_dir(name):
    """Installed folder of a top-level package, located without importing it (None if absent)."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return list(spec.submodule_search_locations)[0]


def ukis_card(json_path, onnx_name):
    """Segmentation card for one ukis-csmask model, built from its JSON (band order, mean/std,
    target size, version) and the preprocessing in ``ukis_csmask/mask.py``: reflectance in [0, 1]
    (no scaling), ``(x - mean) / std`` per band, 256×256 tiles with 20 % overlap on a grid starting
    51 px before the raster with symmetric padding (tiling scheme ``padded``), Tukey-window
    blending of softmax probabilities, argmax, class ids 0 = background (clear), 1 = cloud,
    2 = cloud shadow. ``CSmask.valid`` (buffered binary mask) is a separate post-processing step
    and not part of the class map."""
    with open(json_path, encoding="utf-8") as f:
        meta = json.load(f)
    data = meta["data"]
    names = list(data["dataset_statistics"]["band_names"])
    mean, std = data["dataset_statistics"]["img"]
    stem = os.path.splitext(onnx_name)[0]  # model_6b_l2a
    _, nb, level = stem.split("_")
    return {
        "id": f"ukis-csmask-{nb}-{level}",
        "name": f"ukis-csmask {nb[0]}-band {level.upper()} cloud and cloud-shadow mask",
        "version": str(meta.get("model", {}).get("version", "")),
        "task": "segmentation",
        "source": "https://github.com/dlr-eoc/ukis-csmask (installed Python package ukis-csmask)",
        "license": "Apache-2.0",
        "description": (
            f"U-Net ({meta.get('model', {}).get('encoder_name', 'efficientnet-b4')}) segmenting clouds and cloud "
            f"shadows in {level.upper()} Sentinel-2 / Landsat 5-9 images at about 30 m. Input: "
            f"{', '.join(names)} reflectance in [0, 1]; preprocessing as ukis_csmask.CSmask "
            "((x - mean) / std, 256 px tiles, 20 % overlap, softmax, smooth blending, argmax)."),
        "trained_on": "Sentinel-2, Landsat 5/7/8",
        "input": {
            "tensor": "input", "layout": "NCHW", "frames": 1,
            "tile_size": [int(v) for v in data["target_size"]][::-1],
            "bands": [{"name": n, "wavelength_nm": UKIS_BANDS[n][0], "fwhm_nm": UKIS_BANDS[n][1]} for n in names],
            "scale": 1.0, "offset": 0.0, "mean": list(mean), "std": list(std), "nodata": "mask",
        },
        "output": {"tensor": "output", "kind": "logits", "classes": UKIS_CLASSES},
        "tiling": {"overlap": 0.2, "crop": 0, "scheme": "padded"},
    }


def ukis_models(parameter="model"):
    folder = package_dir("ukis_csmask")
    if not folder:
        return []
    out = []
    for nb in ("6b", "4b"):
        for level in ("l2a", "l1c"):
            onnx_path = os.path.join(folder, f"model_{nb}_{level}.onnx")
            json_path = os.path.join(folder, f"model_{nb}_{level}.json")
            if not (os.path.isfile(onnx_path) and os.path.isfile(json_path)):
                continue
            mid = f"ukis-csmask-{nb}-{level}"
            try:
                card = model_card.validate_card(ukis_card(json_path, os.path.basename(onnx_path)), parameter)
                out.append(ModelEntry(mid, onnx_path, card, "package ukis-csmask"))
            except (OSError, ValueError, KeyError, TypeError, ModelError) as exc:
                out.append(ModelEntry(mid, onnx_path, {}, "package ukis-csmask", f"cannot adapt: {exc}"))
    return out


PACKAGE_ADAPTERS = (ukis_models,)


# ---------------------------------------------------------------------------------------------
# Listing and resolving
# ---------------------------------------------------------------------------------------------
def _folder_models(folder, origin, parameter="model"):
    if not os.path.isdir(folder):
        return []
    out = []
    for name in sorted(os.listdir(folder)):
        if not name.lower().endswith(".onnx"):
            continue
        path = os.path.join(folder, name)
        kind = special_file_kind(path)
        if kind:  # a FIFO named *.onnx would block the first read forever
            out.append(ModelEntry(os.path.splitext(name)[0], path, {}, origin,
                                  f"{path} is {kind}, not a model file"))
            continue
        out.append(_entry_for_path(path, origin, parameter))
    return out


def _entry_for_path(path, origin, parameter="model"):
    try:
        card = model_card.load_card(path, parameter)
        return ModelEntry(card["id"], path, card, origin)
    except ModelError as exc:
        return ModelEntry(os.path.splitext(os.path.basename(path))[0], path, {}, origin, str(exc), problem=exc)


def list_models(extra_dirs=None, include_invalid=True, config=None):
    """Every registered model (store, user folders, packages); the first of duplicate ids wins.
    Models whose card is unusable are included with ``error`` set unless ``include_invalid`` is
    False."""
    entries = _folder_models(STORE_DIR, "plugin store")
    for d in user_dirs(extra_dirs, config):
        entries += _folder_models(d, f"user folder {d}")
    for adapter in PACKAGE_ADAPTERS:
        entries += adapter()
    first, out = {}, []
    for e in entries:
        if e.id in first:  # reported with both paths (ModelEntry.duplicate_warning)
            winner = first[e.id]
            if os.path.realpath(winner.path) != os.path.realpath(e.path):
                winner.shadowed = tuple(winner.shadowed) + (f"{e.path} ({e.origin})",)
            continue
        if e.error and not include_invalid:
            continue
        first[e.id] = e
        out.append(e)
    return out


def duplicate_warning(model_id, config=None):
    """The duplicate-id sentence for a registered ``model_id`` (both paths), or None."""
    for e in list_models(config=config):
        if e.id == model_id:
            return e.duplicate_warning
    return None


def _package_entry_for(path):
    real = os.path.realpath(path)
    for adapter in PACKAGE_ADAPTERS:
        for e in adapter():
            if os.path.realpath(e.path) == real:
                return e
    return None


def missing_model_message(model_id, known=()):
    """What a user of the plugin ZIP does when ``model_id`` is not registered (no developer commands)."""
    known = ", ".join(known) or "none"
    if str(model_id).startswith("ukis-csmask-"):
        how = ("the ukis-csmask models come with the ukis-csmask package: run Plugins ▸ Spectral Transformers ▸ "
               "Install dependencies… (headless: qgis_process run spectraltf:installdependencies), then restart QGIS")
    elif str(model_id).startswith("spectf-cloud-"):
        how = ("the SpecTf models ship inside the plugin ZIP: reinstall the plugin from the release ZIP, or install "
               "the model with Plugins ▸ Spectral Transformers ▸ Install model… (spectraltf:installmodel)")
    else:
        how = ("install it with Plugins ▸ Spectral Transformers ▸ Install model… (spectraltf:installmodel, from a "
               f"URL or a file) into {deps.models_dir()}, or give the path of an .onnx file")
    return f"no model with id '{model_id}' is registered (known: {known}); {how}."


def resolve(value, parameter="model", extra_dirs=None, task=None, config=None, cardless=False):
    """The :class:`ModelEntry` for ``value`` (a registry id or the path of an .onnx file): the one
    model resolution every task uses (through :meth:`.model.OnnxModel.resolve`).

    ``task``: a card task, or a tuple of them, the model must have. ``cardless``: accept an .onnx
    path whose card is missing or unusable (entry with card ``{}``), for tasks that judge the graph
    itself (SpecTf, attention maps). Raises ModelError naming ``parameter`` when nothing matches, the
    card is unusable (unless ``cardless``), or the card's task is not ``task``."""
    if value is None or str(value).strip() == "":
        raise ModelError("no model given; expected a model id (see 'List models') or the path of an .onnx file.",
                         parameter)
    value = str(value).strip()
    looks_like_path = value.lower().endswith(".onnx") or os.sep in value or "/" in value
    if looks_like_path or os.path.isfile(value):
        path = os.path.abspath(os.path.expanduser(value))
        kind = special_file_kind(path)
        if kind:
            raise ModelError(f"{path} is {kind}, not a model file; give a regular .onnx file.", parameter)
        if not os.path.isfile(path):
            raise ModelError(f"model file not found: {path}", parameter)
        entry = _package_entry_for(path) or _entry_for_path(path, "file", parameter)
        if entry.error and cardless:
            entry = ModelEntry(entry.id, entry.path, {}, entry.origin)
        elif entry.error:
            raise ModelError(getattr(entry.problem, "template", entry.error), parameter)
    else:
        entries = {e.id: e for e in list_models(extra_dirs, config=config)}
        entry = entries.get(value)
        if entry is None:
            raise ModelError(missing_model_message(value, sorted(entries)), parameter)
        if entry.error:
            raise ModelError(getattr(entry.problem, "template", entry.error), parameter)
    tasks = (task,) if isinstance(task, str) else tuple(task or ())
    if tasks and entry.card and entry.card.get("task") not in tasks:
        wanted = " or ".join(f"'{t}'" for t in tasks)
        raise ModelError(f"model '{entry.id}' is a '{entry.card.get('task')}' model; this algorithm needs a "
                         f"{wanted} model.", parameter)
    return entry


def solar_spectrum(model_id, parameter="irradiance"):
    """The solar spectrum file a registered model converts radiance with (card ``solar_irradiance_file``
    beside the model, e.g. SpecTf's irr.npy as CSV). Lets a TOA step use "the model's own spectrum"
    (the shipped workflow passes the model id). Raises ModelError naming ``parameter``."""
    entry = resolve(model_id, parameter)
    name = entry.card.get("solar_irradiance_file")
    if not isinstance(name, str) or not name or os.path.isabs(name) or ".." in name.replace("\\", "/").split("/"):
        raise ModelError(f"model '{entry.id}' names no solar spectrum; give a solar spectrum file.", parameter)
    path = os.path.join(os.path.dirname(entry.path), name)
    if not os.path.isfile(path):
        raise ModelError(f"the solar spectrum of model '{entry.id}' is missing: {path}", parameter)
    return path
