"""The scene list: a CSV file (one row per scene) plus ``NAME=VALUE`` arguments → :class:`Scene`.

CSV layout: a header row of parameter names of the algorithm (``INPUT``, ``OBSERVATION``, ...; any
case), optionally a ``NAME`` column, then one row per scene. ``NAME=VALUE`` arguments apply to every
row (a parameter given both ways is refused: which one wins would be a guess). Several rasters in one
cell (``rasters`` parameters such as ``INPUT_DATES``) are separated by ``;``.

Relative paths in the CSV are relative to the CSV file's folder (the list travels with the data);
relative paths on the command line are relative to the current folder. GDAL paths (``/vsi...``,
``NETCDF:...``) are left as they are; ``file.nc|variable`` resolves the file part.

Outputs: each destination parameter not given is written to ``DIR/<scene>_<parameter in lower
case>.tif``; an optional destination given with an empty value is not written. ``<scene>`` is the ``NAME``
column, else the stem of the row's ``INPUT`` (or of its first raster).
"""
import csv
import hashlib
import json
import os
from dataclasses import dataclass, field

from .tasks import PATH_KINDS, UsageError, destinations, input_params

NAME_COLUMN = "NAME"
_GDAL_PREFIXES = ("/vsi", "NETCDF:", "HDF5:", "HDF4_", "GPKG:", "ENVI:", "http://", "https://", "s3://", "gs://")


@dataclass
class Scene:
    """One row: ``name``; ``raw`` parameter values as given (text, paths made absolute, outputs
    filled in); ``outputs`` destination parameter → path; ``row`` the CSV line number."""

    name: str
    raw: dict
    outputs: dict
    row: int
    fingerprint: str = field(default="")

    def __post_init__(self):
        if not self.fingerprint:
            self.fingerprint = fingerprint(self.raw)


def fingerprint(raw):
    """A short hash of a scene's parameter values (outputs included): a rerun skips a scene only
    when it would compute the same thing."""
    text = json.dumps({k: raw[k] for k in sorted(raw)}, sort_keys=True, default=str)
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


def resolve_path(value, base):
    """``value`` made absolute against ``base`` (GDAL virtual paths untouched)."""
    value = value.strip()
    if not value or value.startswith(_GDAL_PREFIXES):
        return value
    local, sep, rest = value.partition("|")
    local = os.path.expanduser(local)
    if not os.path.isabs(local):
        local = os.path.join(base, local)
    return os.path.normpath(local) + sep + rest


def _looks_like_path(value):
    v = value.strip().lower()
    return os.sep in v or "/" in v or v.endswith(".onnx")


def _resolve(param, value, base):
    if param.kind == "rasters":
        return ";".join(resolve_path(v, base) for v in value.split(";") if v.strip())
    if param.kind in PATH_KINDS or (param.kind == "model" and _looks_like_path(value)):
        return resolve_path(value, base)
    return value.strip()


def _stem(path):
    local = path.split("|")[0].rstrip("/")
    if local.startswith(_GDAL_PREFIXES) and ":" in local and not local.startswith("/vsi"):
        local = local.split(":")[-1].strip('"')  # NETCDF:"file.nc":var → var; best effort
    base = os.path.basename(local)
    stem, ext = os.path.splitext(base)
    return stem or base


def check_scene_name(name, where):
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name or name.startswith("."):
        raise UsageError(f"{where}: '{name}' cannot be a scene name (it names output files: no slashes, "
                         "not empty, not starting with '.').")
    return name


def parse_assignments(items):
    """``["THRESHOLD=0.4", "DEVICE=cpu"]`` → ``{"THRESHOLD": "0.4", "DEVICE": "cpu"}``."""
    values = {}
    for item in items or ():
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"'{item}' is not NAME=VALUE (e.g. DEVICE=cpu).")
        values[name.strip().upper()] = value
    return values


def _known(task, name, where):
    names = {p.name for p in task.params}
    if name not in names:
        raise UsageError(f"{where}: '{name}' is not a parameter of {task.name}; expected "
                         f"{', '.join(p.name for p in task.params)}" + (" or NAME." if where.endswith(".csv") else "."))
    return name


def read_scenes(csv_path, task, overrides, output_dir, cwd=None):
    """The scenes of ``csv_path`` for ``task`` with the ``overrides`` (parameter → text) applied and
    outputs under ``output_dir``. Raises :class:`UsageError` for a malformed list."""
    cwd = cwd or os.getcwd()
    csv_path = os.path.abspath(os.path.join(cwd, csv_path))
    if not os.path.isfile(csv_path):
        raise UsageError(f"--inputs: file not found: {csv_path}")
    base = os.path.dirname(csv_path)
    output_dir = os.path.abspath(os.path.join(cwd, output_dir))
    label = os.path.basename(csv_path)
    params = {p.name: p for p in task.params}
    for name in overrides:
        _known(task, name, "command line")
    fixed = {name: _resolve(params[name], value, cwd) for name, value in overrides.items()}

    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UsageError(f"--inputs: cannot read {csv_path}: {exc}") from None
    rows = [(i + 1, r) for i, r in enumerate(rows) if any(c.strip() for c in r)]
    if not rows:
        raise UsageError(f"{label}: empty; expected a header row of parameter names (e.g. INPUT) and one row per scene.")
    (_, header), body = rows[0], rows[1:]
    columns = [c.strip().upper() for c in header]
    for c in columns:
        if c != NAME_COLUMN:
            _known(task, c, label)
    dupes = sorted({c for c in columns if columns.count(c) > 1})
    if dupes:
        raise UsageError(f"{label}: column {dupes[0]} appears more than once.")
    both = sorted(set(columns) & set(fixed))
    if both:
        raise UsageError(f"{both[0]} is given both as a column of {label} and on the command line; give it once.")
    if not body:
        raise UsageError(f"{label}: no scenes (only a header row).")
    if NAME_COLUMN not in columns and "INPUT" not in columns and "INPUT" not in fixed \
            and not any(params[c].kind in ("raster", "rasters") for c in columns if c in params):
        raise UsageError(f"{label}: no NAME or INPUT column to name the scenes by.")

    scenes, seen, writers = [], {}, {}
    for line, cells in body:
        if len(cells) > len(columns):
            raise UsageError(f"{label}, line {line}: {len(cells)} values for {len(columns)} columns.")
        cells = cells + [""] * (len(columns) - len(cells))
        given = dict(fixed)
        name = ""
        for column, cell in zip(columns, cells):
            if column == NAME_COLUMN:
                name = cell.strip()
            else:
                given[column] = _resolve(params[column], cell, base)
        if not name:
            first = next((given[p.name] for p in input_params(task) if p.kind in ("raster", "rasters")
                          and given.get(p.name, "").strip()), "")
            name = _stem(first.split(";")[0]) if first else ""
        check_scene_name(name, f"{label}, line {line}")
        if name in seen:
            raise UsageError(f"{label}, lines {seen[name]} and {line}: two scenes named '{name}' would write the "
                             "same files; add a NAME column with distinct names.")
        seen[name] = line
        outputs = {}
        for p in destinations(task):
            if p.name in given and given[p.name].strip():
                outputs[p.name] = given[p.name]
            elif p.name in given and p.optional:
                del given[p.name]  # an optional output given empty: not written
            elif p.kind == "output_raster":
                outputs[p.name] = os.path.join(output_dir, f"{name}_{p.name.lower()}.tif")
                given[p.name] = outputs[p.name]
        for p_name, path in outputs.items():
            other = writers.get(os.path.normpath(path))
            if other:
                raise UsageError(f"{label}, lines {other[0]} and {line}: {other[1]} and {p_name} are both {path}; "
                                 "every output needs its own file.")
            writers[os.path.normpath(path)] = (line, p_name)
        raw = {k: v for k, v in given.items() if k in params}
        scenes.append(Scene(name, raw, outputs, line))
    return scenes
