"""`make package`: the ZIP holds only the plugin and loads in a fresh QGIS profile (qgis_process)."""
import ast
import configparser
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile

import pytest

from support import REPO

TOP = "spectral_transformers/"


def _package_module():
    spec = importlib.util.spec_from_file_location("package_script", REPO / "scripts" / "package.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def built_zip(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "package.py"), "--output-dir", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(REPO / "metadata.txt")
    path = out / f"spectral_transformers-{cfg['general']['version']}.zip"
    assert path.is_file(), proc.stdout
    return path


def test_zip_content(built_zip):
    with zipfile.ZipFile(built_zip) as zf:
        assert zf.testzip() is None
        names = zf.namelist()
        metadata = zf.read(TOP + "metadata.txt").decode("utf-8")
    assert all(n.startswith(TOP) for n in names)
    rel = [n[len(TOP):] for n in names]
    for required in ("__init__.py", "plugin.py", "metadata.txt", "resources/icon.svg",
                     "processing_provider/provider.py", "processing_provider/settings.py",
                     "algorithms/__init__.py", "algorithms/base.py", "runtime/onnx_backend.py",
                     "runtime/styles.py", "gui/dependency_check.py"):
        assert required in rel, required
    top_dirs = {r.split("/", 1)[0] for r in rel if "/" in r}
    assert top_dirs <= {"algorithms", "processing_provider", "runtime", "gui", "resources"}, top_dirs
    for name in rel:
        assert "__pycache__" not in name and not name.endswith((".pyc", ".onnx", ".onnx.data", ".partial"))
        assert not name.startswith(("tests/", "training/", "bench/", "build/", "dist/", ".venv", "models/",
                                    "ext-libs/", "scripts/", "docs/"))
    # Every algorithm module the provider registers is in the ZIP.
    algorithm_modules = {p.stem for p in (REPO / "algorithms").glob("*.py")}
    assert {f"algorithms/{m}.py" for m in algorithm_modules} <= set(rel)
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read_string(metadata)
    general = cfg["general"]
    for key in ("name", "qgisMinimumVersion", "description", "about", "version", "author", "email", "repository",
                "icon"):
        assert general.get(key, "").strip(), key
    assert general["icon"] in rel


def test_selection_rules():
    pkg = _package_module()
    assert pkg.wanted("plugin.py") and pkg.wanted("runtime/styles.py") and pkg.wanted("resources/solar/x.csv")
    for path in ("tests/test_plugin.py", "training/build_store.py", "models/spectf-cloud-v0.1.0.onnx",
                 "runtime/__pycache__/styles.cpython-311.pyc", "runtime/model.onnx", "ext-libs/numpy/__init__.py",
                 "gui/ext-libs/x.py", "Makefile", "README.md", "runtime/.hidden", "docs/sections/install.md"):
        assert not pkg.wanted(path), path


@pytest.mark.parametrize("source,bad", [
    ("from ..training import build_store", {"training"}),
    ("from .. import tests", {"tests"}),
    ("import spectral_transformers.bench.run", {"bench"}),
    ("from spectral_transformers.training.spectf import x", {"training"}),
    ("from ..runtime import styles\nimport numpy", set()),
])
def test_unshipped_imports_detected(source, bad):
    assert _package_module()._imports_unshipped(ast.parse(source)) == bad


@pytest.mark.qgis_process
def test_zip_installs_into_fresh_profile(built_zip, tmp_path):
    exe = shutil.which("qgis_process.bin") or shutil.which("qgis_process")
    if exe is None:
        pytest.skip("qgis_process is not installed")
    config = tmp_path / "qgis-config"
    plugins = config / "profiles" / "default" / "python" / "plugins"
    plugins.mkdir(parents=True)
    (config / "profiles" / "default" / "QGIS").mkdir(parents=True)
    (config / "profiles" / "default" / "QGIS" / "QGIS3.ini").write_text("[PythonPlugins]\nspectral_transformers=true\n")
    with zipfile.ZipFile(built_zip) as zf:
        zf.extractall(plugins)  # what "Install from ZIP" does
    installed = plugins / "spectral_transformers"
    assert (installed / "metadata.txt").is_file() and not (installed / "tests").exists()

    env = {k: v for k, v in os.environ.items()
           if k not in ("QGIS_PLUGINPATH", "PYTHONPATH", "PYTHONDONTWRITEBYTECODE", "QGIS_CUSTOM_CONFIG_PATH")}
    env.update(QT_QPA_PLATFORM="offscreen", QGIS_CUSTOM_CONFIG_PATH=str(config),
               # only third-party packages (onnxruntime); the venv's .pth pointing at the repo is not read from here
               PYTHONPATH=sysconfig.get_paths()["purelib"])
    proc = subprocess.run([exe, "--json", "list"], capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    listing = json.loads(proc.stdout[proc.stdout.find("{"):])
    provider = listing["providers"].get("spectraltf")
    assert provider is not None, f"provider not loaded from the ZIP; stderr: {proc.stderr[-3000:]}"
    assert provider["name"] == "Spectral Transformers"
    import spectral_transformers.algorithms as algorithms

    importlib.reload(algorithms)  # the list as in the source tree the ZIP was just built from
    expected = {f"spectraltf:{cls().name()}" for cls in algorithms.algorithm_classes()}
    assert set(provider["algorithms"]) == expected
    if importlib.util.find_spec("onnxruntime") is not None:
        assert provider["version"].startswith("ONNX Runtime ")
    # Python compiled the modules it imported inside the unpacked copy: QGIS loaded *that* copy.
    assert list(installed.glob("processing_provider/__pycache__/provider*.pyc"))


def test_with_models_ships_the_store(tmp_path):
    pkg = _package_module()
    store = pkg.model_files()
    if not store:
        pytest.skip("no built models in models/ (run `make setup`)")
    target, names = pkg.build(str(tmp_path), with_models=True)
    assert {TOP + f for f in store} <= set(names)
    assert any(n.endswith(".onnx") for n in names)
    _, plain = pkg.build(str(tmp_path / "plain"))
    assert not any("/models/" in n for n in plain)
