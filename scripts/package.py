#!/usr/bin/env python3
"""Build the installable plugin ZIP: ``dist/spectral_transformers-<version>.zip`` (``make package``).

The ZIP installs with QGIS ▸ Plugins ▸ Manage and Install Plugins ▸ Install from ZIP: one top
folder ``spectral_transformers/`` holding only what QGIS runs:

- shipped: ``__init__.py``, ``plugin.py``, ``qgis_compat.py``, ``metadata.txt``, ``LICENSE``, and the packages
  ``algorithms/``, ``processing_provider/``, ``runtime/``, ``gui/``, ``resources/``;
- never shipped: ``tests/``, ``bench/``, ``training/`` (needs PyTorch, only used to build models
  outside QGIS), ``scripts/``, ``docs/``, model files (``models/``, ``*.onnx``), build outputs
  (``build/``, ``out/``, ``dist/``, ``.venv``, ``__pycache__``, ``ext-libs/``);
- native kernels: ``runtime/native/lib/<platform>/`` as built by ``scripts/build_native.sh`` (the SpecTf
  attention kernel for Linux x86-64; other platforms run ONNX Runtime's attention);
- models: by default the SpecTf cloud models built by ``make setup`` (``models/spectf-cloud-*.onnx`` +
  cards, probability-only variants, solar spectra; Apache-2.0, shipped with ``LICENSE.SpecTf`` and an
  attribution notice); ``--with-models`` ships the whole built store, ``--no-models`` none.

The file list comes from git (tracked files plus new files that are not ignored), so ignored
junk never ships; ``--tracked-only`` uses committed/staged files only (for releases). Without git
the source tree is walked with the same rules. Every shipped ``.py`` must compile and
``metadata.txt`` must have the keys QGIS requires, or the build fails.
"""
import argparse
import ast
import configparser
import fnmatch
import os
import subprocess
import sys
import zipfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PLUGIN = "spectral_transformers"

TOP_FILES = {"__init__.py", "plugin.py", "qgis_compat.py", "metadata.txt", "LICENSE", "LICENSE.txt", "LICENSE.md"}
PACKAGES = ("algorithms", "processing_provider", "runtime", "batch", "gui", "resources")
EXCLUDE = ("*/__pycache__/*", "*.pyc", "*.pyo", "*.onnx", "*.onnx.data", "*.pt", "*.pth", "*.partial*",
           "*/ext-libs/*", "*/.*")
REQUIRED_METADATA = ("name", "qgisMinimumVersion", "description", "about", "version", "author", "email",
                     "repository")


def wanted(path):
    """Whether a repository-relative path (``/`` separators) belongs in the plugin ZIP."""
    if path in TOP_FILES:
        return True
    top = path.split("/", 1)[0]
    if top not in PACKAGES or "/" not in path:
        return False
    return not any(fnmatch.fnmatch("/" + path, pattern) for pattern in EXCLUDE)


def git_files(tracked_only=False):
    """Repository files from git (None when this is not a git checkout)."""
    cmd = ["git", "-C", REPO, "ls-files", "-z", "--cached"]
    if not tracked_only:
        cmd += ["--others", "--exclude-standard"]
    try:
        out = subprocess.run(cmd, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return sorted({p for p in out.decode("utf-8").split("\0") if p})


def walked_files():
    files = []
    for root, dirs, names in os.walk(REPO):
        rel_root = os.path.relpath(root, REPO).replace(os.sep, "/")
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in ("__pycache__", "ext-libs", "build")]
        for name in names:
            files.append(name if rel_root == "." else f"{rel_root}/{name}")
    return sorted(files)


def plugin_files(tracked_only=False):
    files = git_files(tracked_only)
    if files is None:
        files = walked_files()
    files = [p for p in files if wanted(p) and os.path.isfile(os.path.join(REPO, p))
             and not os.path.islink(os.path.join(REPO, p))]
    return files


def read_metadata():
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(os.path.join(REPO, "metadata.txt"), encoding="utf-8")
    if "general" not in cfg:
        raise SystemExit("package: metadata.txt has no [general] section")
    general = cfg["general"]
    missing = [k for k in REQUIRED_METADATA if not general.get(k, "").strip()]
    if missing:
        raise SystemExit(f"package: metadata.txt lacks {', '.join(missing)}")
    return general


NOT_SHIPPED = {"training", "tests", "bench", "scripts"}


def _imports_unshipped(tree):
    """Names of unshipped plugin packages that a module imports (relative or absolute)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            parts = (node.module or "").split(".")
            if node.level == 0 and parts[0] == PLUGIN:
                parts = parts[1:]
            elif node.level == 0:
                continue
            if parts and parts[0] in NOT_SHIPPED:
                found.add(parts[0])
            if node.level and not node.module:
                found.update(a.name for a in node.names if a.name in NOT_SHIPPED)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == PLUGIN and len(parts) > 1 and parts[1] in NOT_SHIPPED:
                    found.add(parts[1])
    return found


def check_sources(files):
    """Every shipped module compiles and imports nothing that is left out of the ZIP."""
    for path in files:
        if path.endswith(".py"):
            with open(os.path.join(REPO, path), "rb") as fh:
                try:
                    tree = ast.parse(fh.read(), path)
                    compile(tree, path, "exec")
                except SyntaxError as exc:
                    raise SystemExit(f"package: {path} does not compile: {exc}") from None
            bad = _imports_unshipped(tree)
            if bad:
                raise SystemExit(f"package: {path} imports {', '.join(sorted(bad))}, which the ZIP leaves out")


#: Models the release ZIP ships by default (Apache-2.0, a few hundred kB): the SpecTf cloud models.
SHIPPED_MODELS = ("spectf-cloud-v0.1.0", "spectf-cloud-v0.0.1")
SPECTF_LICENSE = os.path.join(os.path.dirname(REPO), "shared", "data", "spectf", "LICENSE")
MODELS_NOTICE = """SpecTf cloud models shipped with Spectral Transformers
=====================================================

spectf-cloud-v0.1.0.onnx, spectf-cloud-v0.0.1.onnx (+ their cards, probability-only variants in
variants/, and the solar spectrum files *.solar.csv) are converted from the published SpecTf EMIT
cloud-model weights and SpecTf's solar irradiance table (irr.npy):

  SpecTf: Spectroscopic Transformer, https://github.com/emit-sds/SpecTf
  Jake H. Lee, Michael Kiper, David R. Thompson, Philip G. Brodrick
  Jet Propulsion Laboratory, California Institute of Technology
  Paper: arXiv:2501.04916

Licensed under the Apache License, Version 2.0 (LICENSE.SpecTf beside this file). The conversion
to ONNX (graph export, model cards) was done by Spectral Transformers; the weights are unchanged.
"""


def _card_files(stem, store):
    """Files a model's card names beside it (solar spectrum, graph variants and their cards)."""
    card = os.path.join(store, stem + ".json")
    if not os.path.isfile(card):
        return []
    import json

    with open(card, encoding="utf-8") as f:
        data = json.load(f)
    refs = []
    if isinstance(data.get("solar_irradiance_file"), str):
        refs.append(data["solar_irradiance_file"])
    for rel in (data.get("variants") or {}).values():
        if isinstance(rel, str):
            refs += [rel, rel[:-5] + ".json"] if rel.endswith(".onnx") else [rel]
    return [r for r in refs if ".." not in r.split("/") and os.path.isfile(os.path.join(store, r))]


def model_files(ids=None):
    """The built model store: ``models/<id>.onnx`` + card ``<id>.json`` + external ``.onnx.data`` + the
    files the card names (all models, or only ``ids``)."""
    store = os.path.join(REPO, "models")
    if not os.path.isdir(store):
        return []
    files = []
    for name in sorted(os.listdir(store)):
        if name.endswith(".onnx"):
            stem = name[:-5]
            if ids is not None and stem not in ids:
                continue
            files += [f"models/{n}" for n in (name, stem + ".json", name + ".data")
                      if os.path.isfile(os.path.join(store, n))]
            files += [f"models/{r}" for r in _card_files(stem, store)]
    return files


def native_files():
    """Built native kernels (``runtime/native/lib/<platform>/*.so``, build outputs of
    ``scripts/build_native.sh``, gitignored): shipped where present; a platform without one runs ONNX
    Runtime's attention."""
    lib = os.path.join(REPO, "runtime", "native", "lib")
    found = []
    for tag in sorted(os.listdir(lib)) if os.path.isdir(lib) else []:
        for name in sorted(os.listdir(os.path.join(lib, tag))):
            if name.endswith((".so", ".dll", ".dylib")) and ".partial" not in name:
                found.append(f"runtime/native/lib/{tag}/{name}")
    return found


def build(output_dir=None, tracked_only=False, with_models="default"):
    """Write the ZIP; returns (zip path, list of archive names).

    ``with_models``: ``"default"`` ships the SpecTf models (:data:`SHIPPED_MODELS`, with their
    licence and attribution; missing ones fail the build), ``"all"`` the whole built store,
    ``"none"``/False no models."""
    meta = read_metadata()
    files = plugin_files(tracked_only)
    extra = {}
    if with_models is True:
        with_models = "all"
    if with_models in ("default", "all"):
        models = model_files(None if with_models == "all" else SHIPPED_MODELS)
        if with_models == "default":
            missing = [m for m in SHIPPED_MODELS if f"models/{m}.onnx" not in models]
            if missing:
                raise SystemExit(f"package: models/{missing[0]}.onnx is not built (run `make setup`), or pass "
                                 "--no-models")
        files += models
        if any(f.startswith("models/spectf-") for f in models):
            if not os.path.isfile(SPECTF_LICENSE):
                raise SystemExit(f"package: the SpecTf licence {SPECTF_LICENSE} is missing; it must ship with "
                                 "the SpecTf models (or pass --no-models)")
            extra["models/LICENSE.SpecTf"] = SPECTF_LICENSE
            extra["models/NOTICE.SpecTf.txt"] = MODELS_NOTICE
    for required in ("__init__.py", "plugin.py", "metadata.txt", meta["icon"] if "icon" in meta else None):
        if required and required not in files:
            raise SystemExit(f"package: {required} is missing from the file list")
    files += [f for f in native_files() if f not in files]  # a walked tree (no git) already lists them
    check_sources(files)
    output_dir = output_dir or os.path.join(REPO, "dist")
    os.makedirs(output_dir, exist_ok=True)
    target = os.path.join(output_dir, f"{PLUGIN}-{meta['version'].strip()}.zip")
    tmp = target + ".partial"
    names = []
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in files:
                name = f"{PLUGIN}/{path}"
                zf.write(os.path.join(REPO, path), name)
                names.append(name)
            for path, content in extra.items():
                name = f"{PLUGIN}/{path}"
                if os.path.isfile(content):
                    zf.write(content, name)
                else:
                    zf.writestr(name, content)
                names.append(name)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return target, names


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", help="where to write the ZIP (default: dist/)")
    parser.add_argument("--tracked-only", action="store_true",
                        help="only files git tracks (committed or staged), for release builds")
    models = parser.add_mutually_exclusive_group()
    models.add_argument("--with-models", dest="models", action="store_const", const="all", default="default",
                        help="ship the whole built model store models/*.onnx (+ cards); check the weights' "
                             "licences allow redistribution (default: the SpecTf models only)")
    models.add_argument("--no-models", dest="models", action="store_const", const="none",
                        help="ship no models (the plugin then needs Install model)")
    parser.add_argument("--list", action="store_true", help="print the archive's file names")
    args = parser.parse_args(argv)
    target, names = build(args.output_dir, args.tracked_only, args.models)
    if args.list:
        print("\n".join(names))
    size = os.path.getsize(target)
    print(f"package: wrote {os.path.relpath(target)} ({len(names)} files, {size / 1024:.0f} KiB); "
          "install with QGIS ▸ Plugins ▸ Manage and Install Plugins ▸ Install from ZIP")
    return 0


if __name__ == "__main__":
    sys.exit(main())
