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
from pathlib import Path

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
    for required in ("__init__.py", "plugin.py", "qgis_compat.py", "metadata.txt", "resources/icon.svg",
                     "processing_provider/provider.py", "processing_provider/settings.py",
                     "algorithms/__init__.py", "algorithms/base.py", "runtime/models/onnx_backend.py",
                     "runtime/pipeline/styles.py", "runtime/io/__init__.py", "gui/dependency_check.py"):
        assert required in rel, required
    top_dirs = {r.split("/", 1)[0] for r in rel if "/" in r}
    assert top_dirs <= {"algorithms", "processing_provider", "runtime", "batch", "gui", "resources", "models"}, top_dirs
    for name in rel:
        assert "__pycache__" not in name and not name.endswith((".pyc", ".partial"))
        assert not name.startswith(("tests/", "training/", "bench/", "build/", "dist/", ".venv",
                                    "ext-libs/", "scripts/", "docs/"))
    # Models: exactly the SpecTf models with their cards, variants, solar spectra, licence and notice.
    models = sorted(r for r in rel if r.startswith("models/"))
    pkg = _package_module()
    assert models == sorted(["models/LICENSE.SpecTf", "models/NOTICE.SpecTf.txt"]
                            + [f for f in pkg.model_files(pkg.SHIPPED_MODELS)]), models
    for mid in pkg.SHIPPED_MODELS:
        for suffix in (".onnx", ".json", ".solar.csv"):
            assert f"models/{mid}{suffix}" in rel
        for kind in ("probability", "pre-attention", "post-attention"):
            assert f"models/variants/{mid}.{kind}.onnx" in rel
    assert not any(r.endswith(".onnx") and not r.startswith("models/") for r in rel)
    # The native attention kernel ships where it was built (Linux x86-64 by make setup), nothing else binary.
    from spectral_transformers.runtime.native import attention as native

    binaries = sorted(r for r in rel if r.endswith((".so", ".dll", ".dylib")))
    built = native.library_path()
    assert binaries == (["runtime/native/lib/" + "/".join(Path(built).parts[-2:])] if Path(built).is_file() else [])
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


def test_walked_tree_ships_each_file_once(tmp_path, monkeypatch):
    """Without git (a copied tree, as in the QGIS chroots) the source tree is walked: built kernels and
    everything else appear once in the ZIP."""
    pkg = _package_module()
    monkeypatch.setattr(pkg, "git_files", lambda tracked_only=False: None)
    _, names = pkg.build(str(tmp_path), with_models="none")
    assert len(names) == len(set(names)), sorted(n for n in set(names) if names.count(n) > 1)
    assert all("/native/lib/" not in n or n.endswith(".so") for n in names)


def test_selection_rules():
    pkg = _package_module()
    assert pkg.wanted("plugin.py") and pkg.wanted("runtime/styles.py") and pkg.wanted("resources/solar/x.csv")
    for path in ("tests/test_plugin.py", "training/build_store.py", "models/spectf-cloud-v0.1.0.onnx",
                 "models/README.md",
                 "runtime/__pycache__/styles.cpython-311.pyc", "runtime/model.onnx", "ext-libs/numpy/__init__.py",
                 "gui/ext-libs/x.py", "Makefile", "README.md", "runtime/.hidden", "docs/sections/install.md"):
        assert not pkg.wanted(path), path


@pytest.mark.parametrize("source,bad", [
    ("from ..training import build_store", {"training"}),
    ("from .. import tests", {"tests"}),
    ("import spectral_transformers.bench.run", {"bench"}),
    ("from spectral_transformers.training.spectf import x", {"training"}),
    ("from ..runtime.pipeline import styles\nimport numpy", set()),
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
    expected |= {f"spectraltf:{p.stem}" for p in (REPO / "resources" / "workflows").glob("*.model3")}
    assert set(provider["algorithms"]) == expected
    if importlib.util.find_spec("onnxruntime") is not None:
        assert provider["version"].startswith("ONNX Runtime ")
    # Python compiled the modules it imported inside the unpacked copy: QGIS loaded *that* copy.
    assert list(installed.glob("processing_provider/__pycache__/provider*.pyc"))


def test_shipped_models_load_from_the_unpacked_zip(built_zip, tmp_path):
    """The SpecTf models in a default ZIP resolve through the registry of the *unpacked* plugin and run."""
    pytest.importorskip("onnxruntime")
    with zipfile.ZipFile(built_zip) as zf:
        zf.extractall(tmp_path)
        licence = zf.read(TOP + "models/LICENSE.SpecTf").decode("utf-8")
        notice = zf.read(TOP + "models/NOTICE.SpecTf.txt").decode("utf-8")
    assert "Apache License" in licence and "Version 2.0" in licence
    assert "emit-sds/SpecTf" in notice and "Apache" in notice
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1])\n"
        "import numpy as np\n"
        "from spectral_transformers.runtime.models import registry, spectf\n"
        "out = {}\n"
        "wl = np.linspace(380.0, 2500.0, 285)\n"
        "for mid in ('spectf-cloud-v0.1.0', 'spectf-cloud-v0.0.1'):\n"
        "    e = registry.resolve(mid, task='spectral-cloud-mask')\n"
        "    m = spectf.SpectfModel.load(mid, device='cpu')\n"
        "    used = np.flatnonzero(spectf.keep_bands(wl, m.drop_ranges_nm))\n"
        "    p, _ = m.predict(np.full((8, used.size), 0.3, np.float32), wl[used])\n"
        "    out[mid] = {'origin': e.origin, 'path': e.path, 'solar': e.card.get('solar_irradiance_file'),\n"
        "                'p': [float(v) for v in p], 'bands': int(used.size)}\n"
        "print(json.dumps(out))\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    env["SPECTRALTF_DATA_DIR"] = str(tmp_path / "data")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, env=env,
                          timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(found) == {"spectf-cloud-v0.1.0", "spectf-cloud-v0.0.1"}
    for mid, entry in found.items():
        assert entry["origin"] == "plugin store"
        assert entry["path"].startswith(str(tmp_path / "spectral_transformers" / "models")), entry
        assert (tmp_path / "spectral_transformers" / "models" / entry["solar"]).is_file()
        assert len(entry["p"]) == 8 and all(0.0 <= v <= 1.0 for v in entry["p"]) and entry["bands"] < 285


def test_with_models_ships_the_store(tmp_path):
    pkg = _package_module()
    store = pkg.model_files()
    if not store:
        pytest.skip("no built models in models/ (run `make setup`)")
    target, names = pkg.build(str(tmp_path), with_models="all")
    assert {TOP + f for f in store} <= set(names)
    assert any(n.endswith(".onnx") for n in names)
    _, plain = pkg.build(str(tmp_path / "plain"), with_models="none")
    assert not any(n.startswith(TOP + "models/") for n in plain)
