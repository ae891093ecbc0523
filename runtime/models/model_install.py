"""Install a model into the user model folder: from a URL or a local file, checked before it lands.

QGIS-free; ``spectraltf:installmodel`` (Plugins ▸ Spectral Transformers ▸ Install model…) calls
:func:`install_model`.

Sources (``source``): an ``.onnx`` file (its card embedded, in the sidecar ``<name>.json`` beside it,
or given as ``card``), or a ``.zip`` holding one or more ``.onnx`` files with their cards and the
files the cards name (SpecTf's ``solar_irradiance_file``, ``variants``, external ``.onnx.data``).
Each may be a local path, a ``file://`` URL or an ``http(s)://`` URL.

Steps: download (progress, cancel, size cap) into a staging folder inside the model folder →
SHA-256 check of the downloaded ``source`` when ``sha256`` is given → zip members checked (no absolute
paths, no ``..``, size and count caps) and extracted → every card validated, every file it names
present, the ONNX graph opened by ONNX Runtime when it is installed → files moved into place
(``<id>.onnx`` last, so the registry never sees a model without its card). Any error or a cancel
removes the staging folder: nothing partial is left, and an installed model is only replaced with
``overwrite``.
"""
import hashlib
import os
import re
import shutil
import tempfile
import urllib.parse
import urllib.request
import zipfile

from .. import deps
from . import model_card
from ..errors import Cancelled, InputError, ModelError
from ..monitor import ensure

MAX_DOWNLOAD_BYTES = 8 << 30
MAX_ZIP_MEMBERS = 2000
CHUNK = 1 << 20
SOURCE, CARD, SHA256 = "source", "card", "sha256"  # the arguments of tasks.installmodel


def _is_url(value):
    return re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", value or "") is not None


def _name_of(value):
    path = urllib.parse.urlparse(value).path if _is_url(value) else value
    return os.path.basename(urllib.parse.unquote(path))


def fetch(source, target, parameter=SOURCE, monitor=None, timeout=60, progress=(0.0, 1.0)):
    """Copy ``source`` (path, file:// or http(s):// URL) to ``target`` with progress and cancel;
    returns its SHA-256 (hex)."""
    monitor = ensure(monitor)
    digest = hashlib.sha256()
    if _is_url(source):
        scheme = urllib.parse.urlparse(source).scheme.lower()
        if scheme not in ("http", "https", "file"):
            raise InputError(f"'{scheme}://' URLs are not supported; expected http://, https://, file:// or a "
                             "local path.", parameter)
        try:
            response = urllib.request.urlopen(source, timeout=timeout)  # noqa: S310 (scheme checked above)
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot download {source}: {getattr(exc, 'reason', exc)}", parameter) from None
        size = response.headers.get("Content-Length") if hasattr(response, "headers") else None
        stream = response
    else:
        path = os.path.abspath(os.path.expanduser(source))
        if not os.path.isfile(path):
            raise InputError(f"file not found: {path}", parameter)
        size = os.path.getsize(path)
        stream = open(path, "rb")  # noqa: SIM115 (closed below)
    total = int(size) if size not in (None, "") and str(size).isdigit() else None
    done = 0
    lo, hi = progress
    try:
        with stream, open(target, "wb") as out:
            while True:
                try:
                    chunk = stream.read(CHUNK)
                except OSError as exc:
                    raise InputError(f"download of {source} broke off: {exc}", parameter) from None
                if not chunk:
                    break
                done += len(chunk)
                if done > MAX_DOWNLOAD_BYTES:
                    raise InputError(f"{source} is larger than {MAX_DOWNLOAD_BYTES >> 30} GiB.", parameter)
                digest.update(chunk)
                out.write(chunk)
                if total:
                    monitor.progress(lo + (hi - lo) * min(1.0, done / total))
                monitor.check()
    except (Cancelled, InputError):
        raise
    except OSError as exc:
        raise InputError(f"cannot read {source}: {exc}", parameter) from None
    if total is not None and done != total:
        raise InputError(f"download of {source} is incomplete ({done} of {total} bytes).", parameter)
    return digest.hexdigest()


def _check_sha(value):
    if value in (None, ""):
        return None
    text = str(value).strip().lower()
    if text.startswith("sha256:"):
        text = text[7:]
    if not re.fullmatch(r"[0-9a-f]{64}", text):
        raise InputError(f"'{value}' is not a SHA-256 (expected 64 hexadecimal digits).", SHA256)
    return text


def _safe_members(zf, parameter=SOURCE):
    """Member names to extract (files only), with one common top folder stripped; refuses unsafe ones."""
    infos = [i for i in zf.infolist() if not i.is_dir()]
    if not infos:
        raise InputError("the zip file is empty.", parameter)
    if len(infos) > MAX_ZIP_MEMBERS:
        raise InputError(f"the zip file holds {len(infos)} files (at most {MAX_ZIP_MEMBERS}).", parameter)
    if sum(i.file_size for i in infos) > MAX_DOWNLOAD_BYTES:
        raise InputError(f"the zip file unpacks to more than {MAX_DOWNLOAD_BYTES >> 30} GiB.", parameter)
    names = []
    for info in infos:
        name = info.filename.replace("\\", "/")
        parts = name.split("/")
        if name.startswith("/") or re.match(r"^[A-Za-z]:", name) or ".." in parts or any(p == "" for p in parts):
            raise InputError(f"the zip file holds an unsafe path '{info.filename}'; nothing was installed.", parameter)
        names.append((info, parts))
    tops = {parts[0] for _, parts in names}
    strip = 1 if len(tops) == 1 and all(len(parts) > 1 for _, parts in names) else 0
    return [(info, "/".join(parts[strip:])) for info, parts in names
            if not parts[-1].startswith(".") and parts[strip] != "__MACOSX"]


def _referenced_files(card):
    """Relative files a card names (beside the model): solar spectrum, graph variants (+ their cards)."""
    refs = []
    name = card.get("solar_irradiance_file")
    if isinstance(name, str) and name:
        refs.append(name)
    variants = card.get("variants")
    if isinstance(variants, dict):
        for rel in variants.values():
            if isinstance(rel, str) and rel:
                refs.append(rel)
                if rel.lower().endswith(".onnx"):
                    refs.append(rel[:-5] + ".json")
    for rel in refs:
        parts = rel.replace("\\", "/").split("/")
        if os.path.isabs(rel) or ".." in parts:
            raise ModelError(f"card '{card.get('id')}' names a file outside the model folder: {rel}", SOURCE)
    return refs


def _external_data(onnx_path):
    data = onnx_path + ".data"
    return [os.path.basename(data)] if os.path.isfile(data) else []


def _try_load(path, monitor):
    """Open the graph with ONNX Runtime when it is installed (a broken file fails here, not at run time)."""
    try:
        import onnxruntime as ort  # noqa: WPS433
    except ImportError:
        monitor.warn(f"ONNX Runtime is not installed, so {os.path.basename(path)} was not test-loaded.")
        return
    try:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        ort.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - any load failure means an unusable model file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{os.path.basename(path)} is not a loadable ONNX model: {first}", SOURCE) from None


def install_model(source, card=None, sha256=None, models_dir=None, overwrite=False, monitor=None, timeout=60):
    """Install the model(s) in ``source`` into ``models_dir`` (default :func:`~.deps.models_dir`).

    Returns a list of ``{"id", "path", "name", "task"}``. Raises InputError/ModelError naming
    ``source``, ``card`` or ``sha256``, or Cancelled; nothing is left behind in those cases."""
    monitor = ensure(monitor)
    source = str(source or "").strip()
    if not source:
        raise InputError("no model given; expected the URL or path of an .onnx file or a .zip of models.", SOURCE)
    name = _name_of(source)
    kind = "zip" if name.lower().endswith(".zip") else "onnx" if name.lower().endswith(".onnx") else None
    if kind is None:
        raise InputError(f"'{name or source}' is neither an .onnx file nor a .zip of models.", SOURCE)
    want_sha = _check_sha(sha256)
    card = str(card or "").strip() or None
    if card and kind == "zip":
        raise InputError("a zip file carries its own cards; leave the model card empty.", CARD)
    target_dir = os.path.abspath(os.path.expanduser(models_dir or deps.models_dir()))
    os.makedirs(target_dir, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".install-", dir=target_dir)
    try:
        monitor.info(f"fetching {source}")
        downloaded = os.path.join(staging, "download." + kind)
        digest = fetch(source, downloaded, SOURCE, monitor, timeout, (0.0, 0.8))
        monitor.info(f"SHA-256 {digest}")
        if want_sha and digest != want_sha:
            raise InputError(f"the file's SHA-256 is {digest}, expected {want_sha}; nothing was installed.", SHA256)
        unpacked = os.path.join(staging, "model")
        os.makedirs(unpacked)
        if kind == "zip":
            try:
                with zipfile.ZipFile(downloaded) as zf:
                    for info, rel in _safe_members(zf):
                        dest = os.path.join(unpacked, *rel.split("/"))
                        os.makedirs(os.path.dirname(dest), exist_ok=True)
                        with zf.open(info) as src, open(dest, "wb") as out:
                            shutil.copyfileobj(src, out, CHUNK)
                        monitor.check()
            except zipfile.BadZipFile:
                raise InputError(f"{name} is not a valid zip file.", SOURCE) from None
            os.remove(downloaded)
        else:
            os.replace(downloaded, os.path.join(unpacked, name))
            side = model_card.sidecar_path(name)
            if card:
                fetch(card, os.path.join(unpacked, side), CARD, monitor, timeout, (0.8, 0.85))
            elif not _is_url(source):  # a local .onnx: its sidecar card and external data beside it
                here = os.path.dirname(os.path.abspath(os.path.expanduser(source)))
                for extra in (side, name + ".data"):
                    if os.path.isfile(os.path.join(here, extra)):
                        shutil.copyfile(os.path.join(here, extra), os.path.join(unpacked, extra))
                try:  # and the files its card names (SpecTf: solar spectrum, graph variants)
                    refs = _referenced_files(model_card.load_card(os.path.join(unpacked, name), SOURCE, False))
                except ModelError:
                    refs = []  # reported with the card's own message below
                for rel in refs:
                    src = os.path.join(here, *rel.replace("\\", "/").split("/"))
                    if os.path.isfile(src):
                        dest = os.path.join(unpacked, *rel.replace("\\", "/").split("/"))
                        os.makedirs(os.path.dirname(dest), exist_ok=True)
                        shutil.copyfile(src, dest)
        monitor.progress(0.85)
        plan = _plan(unpacked, target_dir, overwrite, monitor)
        _commit(plan, target_dir)
        monitor.progress(1.0)
        for item in plan:
            monitor.info(f"installed '{item['id']}' ({item['name'] or item['task']}) as {item['path']}")
        return [{k: item[k] for k in ("id", "path", "name", "task")} for item in plan]
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _plan(unpacked, target_dir, overwrite, monitor):
    """Validate every model in ``unpacked``; returns what to move where."""
    onnx_files = []
    for root, _, files in os.walk(unpacked):
        for f in sorted(files):
            if f.lower().endswith(".onnx"):
                onnx_files.append(os.path.join(root, f))
    referenced, plan = set(), []
    cards = {}
    for path in onnx_files:
        try:
            cards[path] = model_card.load_card(path, SOURCE)
        except ModelError:
            cards[path] = None
    for path, card in cards.items():
        if card:
            for rel in _referenced_files(card):
                referenced.add(os.path.normpath(os.path.join(os.path.dirname(path), rel)))
    models = [p for p in onnx_files if os.path.normpath(p) not in referenced]
    if not models:
        raise ModelError("no .onnx model found in the download.", SOURCE)
    for path in models:
        card = cards[path]
        if card is None:
            model_card.load_card(path, SOURCE)  # raises the card's own error message
        mid = card["id"]
        here = os.path.dirname(path)
        refs = _referenced_files(card)
        missing = [r for r in refs if not r.endswith(".json") and not os.path.isfile(os.path.join(here, r))]
        if missing:
            raise ModelError(f"model '{mid}': its card names {', '.join(missing)}, which the download lacks.", SOURCE)
        _try_load(path, monitor)
        files = [(os.path.join(here, r), r) for r in refs + _external_data(path) if os.path.isfile(os.path.join(here, r))]
        dest = os.path.join(target_dir, f"{mid}.onnx")
        for existing in (dest, os.path.join(target_dir, f"{mid}.json")):
            if os.path.exists(existing) and not overwrite:
                raise ModelError(f"model '{mid}' is already installed ({existing}); choose 'Replace an installed "
                                 "model' to replace it.", SOURCE)
        plan.append({"id": mid, "path": dest, "name": card.get("name", ""), "task": card.get("task", ""),
                     "source": path, "card": card, "files": files})
    ids = [p["id"] for p in plan]
    if len(set(ids)) != len(ids):
        raise ModelError(f"the download holds two models with the same id: {', '.join(sorted(ids))}", SOURCE)
    from . import registry

    for item in plan:
        other = next((e for e in registry.list_models() if e.id == item["id"]
                      and os.path.dirname(os.path.abspath(e.path)) != target_dir), None)
        if other is not None:
            monitor.warn(f"model '{item['id']}' is also registered from {other.origin} ({other.path}), which is "
                         "searched first; the installed copy is used only where that one is missing.")
    return plan


def _commit(plan, target_dir):
    for item in plan:
        for src, rel in item["files"]:
            dest = os.path.join(target_dir, *rel.replace("\\", "/").split("/"))
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            os.replace(src, dest)
        side = model_card.sidecar_path(item["source"])
        card_path = os.path.join(target_dir, f"{item['id']}.json")
        if os.path.isfile(side):
            os.replace(side, card_path)
        elif os.path.exists(card_path):  # the replaced model's sidecar would win over the embedded card
            os.remove(card_path)
        os.replace(item["source"], item["path"])  # last: the registry sees the model only with its card
