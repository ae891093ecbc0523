"""Model cards: what a model expects and produces, stored as JSON with the ONNX file.

A card is a JSON object stored in the ONNX ``metadata_props`` under the key ``model_card`` and/or in
a sidecar ``<model>.json`` beside the ``.onnx`` (the sidecar wins: listing then never opens the
ONNX file). Deepness-style metadata keys (``class_names``, ``tile_size``, ``standardization_mean``,
``standardization_std``, ``resolution``, ``tiles_overlap`` …) are accepted and converted to a
segmentation card.

Cards are untrusted input: they are parsed as JSON and checked against a schema only (never
evaluated). Every problem raises :class:`~.errors.ModelError` naming the ``model`` argument.

Common keys (all tasks): ``id``, ``name``, ``version``, ``task``, ``source``, ``license``,
``description``. Tasks: ``segmentation``, ``spectral-cloud-mask``, ``temporal-attention``.
The segmentation schema is documented in ``models/README.md`` and enforced by
:func:`validate_card`, which returns a normalised copy with every default filled in.
"""
import json
import math
import os
import re

from ..pipeline import styles
from ..errors import ModelError
from .onnx_metadata import read_onnx_metadata

CARD_KEY = "model_card"
TASKS = ("segmentation", "spectral-cloud-mask", "temporal-attention")
COMMON_KEYS = ("id", "name", "version", "task", "source", "license", "description")
# ``source`` may also be an object of strings (e.g. {"repository": ..., "paper": ...}).
REQUIRED_KEYS = ("id", "task")
LAYOUTS = ("NCHW", "NCTHW", "NTCHW")
STACKINGS = ("date-major", "band-major")
OUTPUT_KINDS = ("logits", "probabilities", "sigmoid")
NODATA_POLICIES = ("mask",)
TILING_SCHEMES = ("edge", "padded", "terratorch")
#: Optional extra model inputs (Prithvi-EO-2.0 ``_tl`` models): card key → accepted formats.
COORD_INPUTS = {"temporal_coords": ("year,doy0",), "location_coords": ("lat,lon",)}
#: Per-tile normalisation applied by the tile loop after scale/offset/mean/std: ``none``, or
#: ``tile-minmax`` (each band of each tile → ``(x − min) / (max − min + minmax_epsilon)`` over the
#: tile's valid pixels, as SpectralGPT scales each image).
NORMALIZATIONS = ("none", "tile-minmax")
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
#: Largest tile edge accepted from a card (pixels); bigger tiles would not fit in memory.
MAX_TILE = 8192

#: Default class colours (RGBA) when a card gives none: a qualitative palette (styles.PALETTE).
PALETTE = styles.PALETTE

_DEEPNESS_KEYS = ("class_names", "tile_size", "standardization_mean", "standardization_std",
                  "resolution", "tiles_overlap", "model_type", "seg_thresh", "seg_small_segment")


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------
def sidecar_path(onnx_path):
    return os.path.splitext(str(onnx_path))[0] + ".json"


def parse_card_json(text, source, parameter="model"):
    """Parse card JSON text (strict JSON: no NaN/Infinity) into a dict, or raise ModelError."""
    def _reject(value):
        raise ValueError(f"non-finite number {value}")

    try:
        card = json.loads(text, parse_constant=_reject)
    except (ValueError, RecursionError) as exc:
        raise ModelError(f"the model card in {source} is not valid JSON ({exc}).", parameter) from None
    if isinstance(card, dict) and isinstance(card.get(CARD_KEY), dict):
        card = card[CARD_KEY]
    if not isinstance(card, dict):
        raise ModelError(f"the model card in {source} must be a JSON object, not {type(card).__name__}.",
                         parameter)
    return card


def load_card(onnx_path, parameter="model", validate=True):
    """The model card of ``onnx_path``: sidecar ``<model>.json`` if present, else the embedded
    ``model_card`` metadata, else a card built from Deepness-style metadata keys.

    Returns the validated, normalised card (``validate=False``: the raw dict). Raises ModelError
    when there is no card or it is invalid."""
    onnx_path = str(onnx_path)
    side = sidecar_path(onnx_path)
    if os.path.isfile(side):
        try:
            with open(side, encoding="utf-8") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise ModelError(f"cannot read the model card {side} ({exc}).", parameter) from None
        card = parse_card_json(text, side, parameter)
        return validate_card(card, parameter) if validate else card
    meta = read_onnx_metadata(onnx_path, parameter)
    if CARD_KEY in meta:
        card = parse_card_json(meta[CARD_KEY], f"{onnx_path} (metadata '{CARD_KEY}')", parameter)
    elif any(k in meta for k in _DEEPNESS_KEYS):
        card = card_from_deepness(meta, onnx_path, parameter)
    else:
        raise ModelError(
            f"{onnx_path} has no model card: add a JSON card as ONNX metadata '{CARD_KEY}' or as the "
            f"sidecar file {os.path.basename(side)} (see models/README.md, 'Bring your own model').",
            parameter)
    if "id" not in card:
        card = dict(card, id=_id_from_path(onnx_path))
    return validate_card(card, parameter) if validate else card


def _id_from_path(path):
    stem = os.path.splitext(os.path.basename(str(path)))[0]
    stem = re.sub(r"[^A-Za-z0-9._-]", "-", stem).lstrip("._-") or "model"
    return stem[:128]


def _json_value(text):
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return text


def card_from_deepness(meta, onnx_path="", parameter="model"):
    """Build a segmentation card from Deepness metadata (values are JSON strings). Deepness feeds
    RGB(A) values divided by 255, then standardises with ``standardization_mean/std``."""
    names = _json_value(meta.get("class_names", "null"))
    if isinstance(names, dict):
        try:
            items = sorted(((int(k), str(v)) for k, v in names.items()))
        except (TypeError, ValueError):
            raise ModelError("Deepness metadata 'class_names' must map integer ids to names.", parameter) from None
        classes = [{"value": k, "name": v} for k, v in items]
    elif isinstance(names, list):
        classes = [{"value": i, "name": str(v)} for i, v in enumerate(names)]
    else:
        raise ModelError("Deepness metadata lacks 'class_names'; add a model card (models/README.md).", parameter)
    tile = _json_value(meta.get("tile_size", "null"))
    mean = _json_value(meta.get("standardization_mean", "null"))
    std = _json_value(meta.get("standardization_std", "null"))
    nbands = len(mean) if isinstance(mean, list) else 3
    card = {
        "id": _id_from_path(onnx_path),
        "name": os.path.basename(str(onnx_path)),
        "task": "segmentation",
        "source": "Deepness model metadata",
        "description": "Converted from Deepness metadata keys; input bands are taken in raster order.",
        "input": {"layout": "NCHW", "bands": [{"name": f"band{i + 1}"} for i in range(nbands)],
                  "scale": 1.0 / 255.0},
        "output": {"kind": "probabilities", "classes": classes},
    }
    if tile is not None:
        card["input"]["tile_size"] = tile
    if isinstance(mean, list):
        card["input"]["mean"] = mean
    if isinstance(std, list):
        card["input"]["std"] = std
    overlap = _json_value(meta.get("tiles_overlap", "null"))
    if isinstance(overlap, (int, float)) and not isinstance(overlap, bool) and 0 <= overlap < 100:
        card["tiling"] = {"overlap": overlap / 100.0}
    res = _json_value(meta.get("resolution", "null"))
    if isinstance(res, (int, float)) and not isinstance(res, bool):
        card["resolution_cm"] = res
    return card


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------
class _Checker:
    def __init__(self, card_id, parameter):
        self.card_id = card_id
        self.parameter = parameter

    def fail(self, where, what):
        raise ModelError(f"invalid model card '{self.card_id}': {where} {what}.", self.parameter)

    def string(self, obj, key, where, required=False, default=None, choices=None):
        if key not in obj or obj[key] is None:
            if required:
                self.fail(where, f"is missing the key '{key}'")
            return default
        value = obj[key]
        if not isinstance(value, str):
            self.fail(f"{where}.{key}", f"must be a string, not {type(value).__name__}")
        if choices is not None and value not in choices:
            self.fail(f"{where}.{key}", f"is '{value[:50]}'; expected one of {', '.join(choices)}")
        return value

    def number(self, value, where, positive=False, minimum=None, integer=False):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(where, f"must be a number, not {type(value).__name__}")
        if not math.isfinite(value):
            self.fail(where, "must be finite")
        if integer and (isinstance(value, float) and not value.is_integer()):
            self.fail(where, "must be an integer")
        if positive and value <= 0:
            self.fail(where, "must be > 0")
        if minimum is not None and value < minimum:
            self.fail(where, f"must be >= {minimum}")
        return int(value) if integer else float(value)

    def numbers(self, value, where, length=None, positive=False):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if length is None:
                self.fail(where, "must be a list of numbers")
            return [self.number(value, where, positive)] * length
        if not isinstance(value, list):
            self.fail(where, f"must be a list of numbers, not {type(value).__name__}")
        if length is not None and len(value) != length:
            self.fail(where, f"has {len(value)} values; expected {length} (one per model band)")
        return [self.number(v, f"{where}[{i}]", positive) for i, v in enumerate(value)]

    def obj(self, card, key, where, required=False):
        if key not in card or card[key] is None:
            if required:
                self.fail(where, f"is missing the key '{key}'")
            return {}
        if not isinstance(card[key], dict):
            self.fail(f"{where}.{key}", f"must be an object, not {type(card[key]).__name__}")
        return card[key]


def validate_card(card, parameter="model"):
    """Check ``card`` (a dict parsed from JSON) and return a normalised copy.

    Common keys are checked for every task; segmentation cards are fully normalised (defaults
    filled in: see ``models/README.md``). Raises ModelError naming ``parameter``."""
    if not isinstance(card, dict):
        raise ModelError(f"a model card must be a JSON object, not {type(card).__name__}.", parameter)
    raw_id = card.get("id")
    chk = _Checker(raw_id if isinstance(raw_id, str) else "?", parameter)
    out = dict(card)
    for key in REQUIRED_KEYS:
        chk.string(card, key, "card", required=True)
    if not ID_PATTERN.match(card["id"]):
        chk.fail("card.id", "must be 1-128 characters from A-Z a-z 0-9 . _ - (starting with a letter or digit)")
    chk.string(card, "task", "card", choices=TASKS)
    for key in COMMON_KEYS:
        if key == "source" and isinstance(card.get(key), dict):  # e.g. {"repository": ..., "paper": ...}
            if not all(isinstance(k, str) and isinstance(v, str) for k, v in card[key].items()):
                chk.fail("card.source", "must be a string or an object of strings")
            continue
        value = chk.string(card, key, "card")
        out[key] = value if value is not None else ("" if key != "name" else card["id"])
    if card["task"] == "segmentation":
        out.update(_validate_segmentation(card, chk))
    elif card["task"] == "spectral-cloud-mask":
        _validate_spectral(card, chk)
    return out


def _validate_spectral(card, chk):
    if "threshold" in card:
        t = chk.number(card["threshold"], "card.threshold")
        if not 0.0 <= t <= 1.0:
            chk.fail("card.threshold", "must be within [0, 1]")
    if "wavelengths_nm" in card:
        chk.numbers(card["wavelengths_nm"], "card.wavelengths_nm", positive=True)
    if "drop_ranges_nm" in card:
        ranges = card["drop_ranges_nm"]
        if not isinstance(ranges, list):
            chk.fail("card.drop_ranges_nm", "must be a list of [low, high] pairs")
        for i, r in enumerate(ranges):
            chk.numbers(r, f"card.drop_ranges_nm[{i}]", length=2)


def _color(value, where, chk, index):
    try:
        return styles.parse_color(value, index)
    except ValueError as exc:
        chk.fail(where, str(exc))


def _validate_segmentation(card, chk):
    inp = chk.obj(card, "input", "card", required=True)
    outp = chk.obj(card, "output", "card", required=True)
    tiling = chk.obj(card, "tiling", "card")

    # bands
    bands = inp.get("bands")
    if not isinstance(bands, list) or not bands:
        chk.fail("card.input.bands", "must be a non-empty list of {name, wavelength_nm}")
    nb = len(bands)
    norm_bands = []
    for i, b in enumerate(bands):
        where = f"card.input.bands[{i}]"
        if isinstance(b, str):
            b = {"name": b}
        if not isinstance(b, dict):
            chk.fail(where, "must be an object {name, wavelength_nm, fwhm_nm}")
        name = chk.string(b, "name", where, default=f"band{i + 1}")
        entry = {"name": name}
        for key in ("wavelength_nm", "fwhm_nm"):
            if b.get(key) is not None:
                entry[key] = chk.number(b[key], f"{where}.{key}", positive=True)
        aliases = b.get("aliases", [])
        if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
            chk.fail(f"{where}.aliases", "must be a list of strings")
        entry["aliases"] = list(aliases)
        norm_bands.append(entry)

    # tile size
    tile = inp.get("tile_size")
    if tile is None:
        chk.fail("card.input", "is missing 'tile_size' (fixed [height, width] in pixels: dynamic sizes "
                 "break ViT position embeddings)")
    if isinstance(tile, (int, float)) and not isinstance(tile, bool):
        tile = [tile, tile]
    if not isinstance(tile, list) or len(tile) != 2:
        chk.fail("card.input.tile_size", "must be an integer or [height, width]")
    tile = [chk.number(v, f"card.input.tile_size[{i}]", positive=True, integer=True) for i, v in enumerate(tile)]
    if max(tile) > MAX_TILE:
        chk.fail("card.input.tile_size", f"must be at most {MAX_TILE} pixels")

    frames = chk.number(inp.get("frames", 1), "card.input.frames", positive=True, integer=True)
    layout = chk.string(inp, "layout", "card.input", default="NCHW", choices=LAYOUTS)
    stacking = chk.string(inp, "stacking", "card.input", default="date-major", choices=STACKINGS)
    if frames > 1 and "stacking" not in inp and layout == "NCHW":
        chk.fail("card.input", "needs 'stacking' ('date-major' or 'band-major') for a multi-temporal "
                 "model with stacked channels")
    scale = chk.numbers(inp.get("scale", 1.0), "card.input.scale", length=nb)
    offset = chk.numbers(inp.get("offset", 0.0), "card.input.offset", length=nb)
    mean = chk.numbers(inp.get("mean", 0.0), "card.input.mean", length=nb)
    std = chk.numbers(inp.get("std", 1.0), "card.input.std", length=nb, positive=True)
    nodata = chk.string(inp, "nodata", "card.input", default="mask", choices=NODATA_POLICIES)
    fill = chk.number(inp.get("fill_value", 0.0), "card.input.fill_value")
    tensor_in = chk.string(inp, "tensor", "card.input")
    coords = {}
    for key, formats in COORD_INPUTS.items():
        spec = chk.obj(inp, key, "card.input")
        if spec:
            coords[key] = {"tensor": chk.string(spec, "tensor", f"card.input.{key}", required=True),
                           "format": chk.string(spec, "format", f"card.input.{key}", default=formats[0],
                                                choices=formats)}
    normalization = chk.string(inp, "normalization", "card.input", default="none", choices=NORMALIZATIONS)
    eps = chk.number(inp.get("minmax_epsilon", 1e-9), "card.input.minmax_epsilon", minimum=0)

    # output
    kind = chk.string(outp, "kind", "card.output", required=True, choices=OUTPUT_KINDS)
    classes = outp.get("classes")
    if not isinstance(classes, list) or not classes:
        chk.fail("card.output.classes", "must be a non-empty list of {value, name, color}")
    if len(classes) > 255:
        chk.fail("card.output.classes", "has more than 255 classes (255 is the nodata value)")
    norm_classes = []
    for i, c in enumerate(classes):
        where = f"card.output.classes[{i}]"
        if isinstance(c, str):
            c = {"name": c}
        if not isinstance(c, dict):
            chk.fail(where, "must be an object {value, name, color}")
        value = chk.number(c.get("value", i), f"{where}.value", integer=True)
        if not 0 <= value <= 254:
            chk.fail(f"{where}.value", "must be within 0-254 (255 is nodata)")
        name = chk.string(c, "name", where, default=f"class {value}")
        norm_classes.append({"value": value, "name": name, "color": list(_color(c.get("color"), f"{where}.color", chk, i))})
    values = [c["value"] for c in norm_classes]
    if len(set(values)) != len(values):
        chk.fail("card.output.classes", "has duplicate values")
    tensor_out = chk.string(outp, "tensor", "card.output")

    # tiling
    overlap = chk.number(tiling.get("overlap", 0.25), "card.tiling.overlap", minimum=0)
    crop = chk.number(tiling.get("crop", 0), "card.tiling.crop", minimum=0, integer=True)
    scheme = chk.string(tiling, "scheme", "card.tiling", default="edge", choices=TILING_SCHEMES)
    if scheme == "terratorch" and kind == "sigmoid":
        chk.fail("card.tiling.scheme", "'terratorch' blends logits and needs output.kind 'logits' or 'probabilities'")

    return {
        "input": {"tile_size": tile, "frames": frames, "layout": layout, "stacking": stacking,
                  "bands": norm_bands, "scale": scale, "offset": offset, "mean": mean, "std": std,
                  "nodata": nodata, "fill_value": fill, "tensor": tensor_in,
                  "normalization": normalization, "minmax_epsilon": eps, **coords},
        "output": {"kind": kind, "classes": norm_classes, "tensor": tensor_out},
        "tiling": {"overlap": overlap, "crop": crop, "scheme": scheme},
    }


def card_summary(card):
    """One line describing a card (for logs)."""
    parts = [f"{card.get('id')}", f"task={card.get('task')}"]
    if card.get("version"):
        parts.append(f"version={card['version']}")
    if card.get("task") == "segmentation":
        inp = card["input"]
        parts.append("bands=" + ",".join(b["name"] for b in inp["bands"]))
        parts.append(f"tile={inp['tile_size'][0]}x{inp['tile_size'][1]}")
        if inp.get("normalization", "none") != "none":
            parts.append(f"normalization={inp['normalization']}")
        if inp["frames"] > 1:
            parts.append(f"frames={inp['frames']} ({inp['layout']}, {inp['stacking']})")
        parts.append("classes=" + ",".join(c["name"] for c in card["output"]["classes"]))
    if card.get("license"):
        parts.append(f"license={card['license']}")
    return "; ".join(parts)
