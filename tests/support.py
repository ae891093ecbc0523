"""Helpers shared by the tests (importable as `support`: pytest.ini puts tests/ on sys.path).

- ``shared(*parts)``: path under ``../shared/data``; fails loudly in CI (``CI`` set) when the file is
  missing, skips with a clear reason elsewhere.
- ``built_model(id)``: an ONNX file built into ``models/`` by ``make setup``.
- ``require_torch()``: torch for the training tests; fails in CI unless ``make setup`` recorded that
  this Python has no CPU torch wheel (then it skips with that reason).
- ``qgis_process(...)``: run ``scripts/qgis_process`` as a subprocess (the way users script it).
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PLUGINS = REPO / "build" / "plugins"
SHARED_DATA = Path(os.environ.get("SPECTRALTF_SHARED_DATA", REPO.parent / "shared" / "data"))
MODELS = REPO / "models"

# Make the repository importable as the package `spectral_transformers` (what QGIS sees).
PLUGINS.mkdir(parents=True, exist_ok=True)
_link = PLUGINS / "spectral_transformers"
if not _link.exists():
    _link.symlink_to(REPO, target_is_directory=True)
if str(PLUGINS) not in sys.path:
    sys.path.insert(0, str(PLUGINS))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# ../shared/data is read-only for us: QGIS computes histograms when it loads input layers and GDAL
# would save them as .aux.xml beside the shared files. Tests (and their qgis_process children) keep
# GDAL's side-car files off; our outputs are GeoTIFFs that keep all metadata inside the file.
os.environ["GDAL_PAM_ENABLED"] = "NO"


def in_ci():
    return bool(os.environ.get("CI"))


def require(path, why="test data"):
    """Return ``path`` if it exists; fail in CI, skip elsewhere."""
    path = Path(path)
    if not path.exists():
        msg = f"{why} not found: {path} (expected ../shared/data beside the repository)"
        if in_ci():
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def shared(*parts):
    return require(SHARED_DATA.joinpath(*parts), "shared data")


def built_model(model_id):
    """Path of a model built into the store by `make setup` (fails in CI when missing)."""
    return require(MODELS / f"{model_id}.onnx", f"built model {model_id} (run `make setup`)")


def require_torch():
    """``torch``, or a skip with the reason ``make setup`` recorded (no CPU torch wheel for this Python,
    e.g. Python 3.13 on Debian 13); when torch is just missing, fail in CI and skip elsewhere."""
    try:
        import torch
    except ImportError:
        pass
    else:
        return torch
    recorded = REPO / ".venv" / "torch-unavailable"
    if recorded.exists():
        pytest.skip(f"training tests: {recorded.read_text().strip()} (recorded by make setup)",
                    allow_module_level=True)
    msg = "torch is not installed although make setup installs it for this Python (run `make setup`)"
    if in_ci():
        pytest.fail(msg, pytrace=False)
    pytest.skip(msg, allow_module_level=True)


def qgis_process(*args, json_output=True, timeout=600, env=None):
    """Run ``scripts/qgis_process`` with ``args``; returns (returncode, parsed JSON or None, stdout, stderr).

    Example: ``qgis_process("run", "spectraltf:toareflectance", "--", "INPUT=a.img", "OUTPUT=b.tif")``.
    """
    cmd = [str(REPO / "scripts" / "qgis_process")]
    args = list(args)
    if json_output and args and args[0] in ("run", "help", "list"):
        args.insert(1, "--json")
    full_env = dict(os.environ)
    full_env.setdefault("QT_QPA_PLATFORM", "offscreen")
    if env:
        full_env.update(env)
    proc = subprocess.run(cmd + args, capture_output=True, text=True, timeout=timeout, env=full_env)
    parsed = None
    if json_output:
        start = proc.stdout.find("{")
        if start >= 0:
            try:
                parsed = json.loads(proc.stdout[start:])
            except json.JSONDecodeError:
                parsed = None
    return proc.returncode, parsed, proc.stdout, proc.stderr


def add_onnx(path, metadata=None):
    """A valid but unrelated ONNX model (y = x + x, 1-D) for "wrong kind of model" tests; optional
    ``metadata`` goes into its metadata_props. Returns ``path`` as a string."""
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N"])
    graph = helper.make_graph([helper.make_node("Add", ["x", "x"], ["y"])], "add", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if metadata:
        helper.set_model_props(model, dict(metadata))
    onnx.save(model, str(path))
    return str(path)
