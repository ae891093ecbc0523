"""runtime/deps.py: QGIS's interpreter, pip from a wheel, the real installer (offline wheelhouse), no
onnxruntime beside onnxruntime-gpu, nothing partial after cancel or failure."""
import json
import os
import subprocess
import sys

import pytest

from support import REPO, require
from spectral_transformers.runtime import deps
from spectral_transformers.runtime.errors import Cancelled, DependencyError
from spectral_transformers.runtime.monitor import RecordingMonitor

WHEELHOUSE = REPO / "build" / "wheelhouse"
QGIS_PYTHON = "/usr/bin/python3"


def test_interpreter_found_when_sys_executable_is_the_qgis_binary(monkeypatch):
    """Inside QGIS sys.executable is 'qgis' (Linux), 'qgis-bin.exe' (Windows) or 'QGIS' (macOS)."""
    monkeypatch.setattr(sys, "executable", "/usr/bin/qgis")
    exe = deps.python_executable()
    assert os.path.basename(exe).startswith("python")
    out = subprocess.run([exe, "-c", "import sys; print('%d.%d' % sys.version_info[:2], sys.base_prefix)"],
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == [f"{sys.version_info.major}.{sys.version_info.minor}", sys.base_prefix]


def test_an_interpreter_of_another_version_is_never_taken(monkeypatch, tmp_path):
    other = tmp_path / "bin" / "python3"
    other.parent.mkdir()
    other.write_text("#!/bin/sh\necho 3.99; echo /elsewhere\n")
    other.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "qgis"))
    monkeypatch.setattr(deps, "_interpreter_candidates", lambda: [str(other)])
    with pytest.raises(DependencyError, match="cannot find the Python"):
        deps.python_executable()


def test_data_folder_is_outside_the_plugin_and_per_python_version(monkeypatch, tmp_path):
    monkeypatch.delenv(deps.ENV_DATA_DIR, raising=False)
    monkeypatch.setitem(deps._profile, "dir", str(tmp_path / "profiles" / "default"))
    folder = deps.deps_dir()
    assert folder == str(tmp_path / "profiles" / "default" / "spectral_transformers"
                         / f"python{sys.version_info.major}.{sys.version_info.minor}")
    assert not folder.startswith(deps.PLUGIN_DIR)
    assert deps.models_dir() == str(tmp_path / "profiles" / "default" / "spectral_transformers" / "models")
    os.makedirs(folder)
    before = list(sys.path)
    try:
        deps.add_deps_to_path()
        assert sys.path[-1] == folder  # appended: never shadows QGIS's own packages
    finally:
        sys.path[:] = before


def test_onnxruntime_is_never_installed_beside_onnxruntime_gpu(tmp_path):
    have = deps.installed_distribution("onnxruntime-gpu") or deps.installed_distribution("onnxruntime")
    if have is None:
        pytest.skip("no ONNX Runtime build in the test environment")
    gpu = deps.installed_distribution("onnxruntime-gpu") is not None
    installer = deps.Installer(device="cpu" if gpu else "cuda", target=str(tmp_path / "t"), python=sys.executable)
    message = installer.conflicts()
    assert message and "break each other" in message
    with pytest.raises(DependencyError, match="break each other"):
        installer.run()
    assert not (tmp_path / "t").exists()


def test_switching_builds_removes_the_other_from_our_folder(tmp_path):
    target, staging = tmp_path / "target", tmp_path / "staging"
    for root, name in ((target, "onnxruntime_gpu-1.0"), (staging, "onnxruntime-1.1")):
        info = root / f"{name}.dist-info"
        (root / "onnxruntime").mkdir(parents=True)
        (root / "onnxruntime" / "__init__.py").write_text(f"# {name}\n")
        info.mkdir()
        (info / "METADATA").write_text(f"Name: {name.split('-')[0]}\nVersion: {name.split('-')[1]}\n")
        (info / "RECORD").write_text("onnxruntime/__init__.py,,\n")
    (target / "google").mkdir()
    (target / "google" / "other").mkdir()  # a namespace package of another distribution survives
    (staging / "google" / "protobuf").mkdir(parents=True)
    installer = deps.Installer(device="cpu", target=str(target), python=sys.executable)
    installer.commit(str(staging))
    assert sorted(os.listdir(target)) == ["google", "onnxruntime", "onnxruntime-1.1.dist-info"]
    assert (target / "onnxruntime" / "__init__.py").read_text() == "# onnxruntime-1.1\n"
    assert sorted(os.listdir(target / "google")) == ["other", "protobuf"]


def test_bad_options_are_refused(tmp_path):
    with pytest.raises(DependencyError, match="device 'tpu'"):
        deps.Installer(device="tpu")
    with pytest.raises(DependencyError, match="wheel folder not found"):
        deps.Installer(wheel_dir=str(tmp_path / "nope"))


def _installer_script(target, **options):
    """Run the real installer under QGIS's Python (outside the test venv, which has onnxruntime-gpu)."""
    opts = ", ".join(f"{k}={v!r}" for k, v in options.items())
    return (f"import json, sys; sys.path.insert(0, {str(REPO / 'build' / 'plugins')!r})\n"
            "from spectral_transformers.runtime import deps\n"
            "from spectral_transformers.runtime.monitor import RecordingMonitor\n"
            "from spectral_transformers.runtime.errors import Cancelled, DependencyError\n"
            f"inst = deps.Installer(target={str(target)!r}, {opts})\n"
            "cancel = int(sys.argv[1]) if len(sys.argv) > 1 else None\n"
            "mon = RecordingMonitor(cancel_after=cancel)\n"
            "try:\n"
            "    out = {'installed': inst.run(mon), 'pip': inst.pip}\n"
            "except (Cancelled, DependencyError) as exc:\n"
            "    out = {'error': type(exc).__name__, 'message': str(exc)}\n"
            "print(json.dumps(out))\n")


def _run_under_qgis_python(script, *args):
    if not os.path.exists(QGIS_PYTHON):
        pytest.skip("no system Python")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",) and not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    probe = subprocess.run([QGIS_PYTHON, "-c", "import onnxruntime"], capture_output=True, env=env)
    if probe.returncode == 0:
        pytest.skip("onnxruntime is installed system-wide")
    proc = subprocess.run([QGIS_PYTHON, "-c", script, *args], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_real_install_with_pip_run_from_its_wheel(tmp_path):
    """As on Debian 13 (no pip module): pip runs from the wheel in the wheel folder; NumPy stays QGIS's."""
    require(WHEELHOUSE / ".spec", "wheelhouse (make setup runs scripts/wheelhouse.sh)")
    target = tmp_path / "deps"
    out = _run_under_qgis_python(_installer_script(target, device="cpu", with_ukis=False,
                                                   wheel_dir=str(WHEELHOUSE), pip_from_wheel=True))
    assert "installed" in out, out
    assert out["pip"][1].endswith(".whl/pip") and out["pip"][0] == QGIS_PYTHON
    assert out["installed"][0].startswith("onnxruntime==")
    names = os.listdir(target)
    assert "onnxruntime" in names and not any(n.startswith("numpy") for n in names)
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".staging-")]
    check = subprocess.run([QGIS_PYTHON, "-c", "import sys; sys.path.append(sys.argv[1]); import onnxruntime, numpy; "
                            "print(onnxruntime.__file__, numpy.__file__)", str(target)],
                           capture_output=True, text=True, timeout=120)
    ort_file, np_file = check.stdout.split()
    assert ort_file.startswith(str(target)) and not np_file.startswith(str(target))


def test_cancel_and_failure_leave_nothing(tmp_path):
    require(WHEELHOUSE / ".spec", "wheelhouse (make setup runs scripts/wheelhouse.sh)")
    target = tmp_path / "deps"
    out = _run_under_qgis_python(_installer_script(target, device="cpu", with_ukis=False,
                                                   wheel_dir=str(WHEELHOUSE)), "1")
    assert out["error"] == "Cancelled"
    assert not target.exists() and os.listdir(tmp_path) == []
    empty = tmp_path / "empty-wheels"
    empty.mkdir()
    out = _run_under_qgis_python(_installer_script(target, device="cpu", with_ukis=False, wheel_dir=str(empty)))
    assert out["error"] == "DependencyError" and "pip failed" in out["message"], out
    assert "\n" not in out["message"]
    assert not target.exists() and os.listdir(tmp_path) == ["empty-wheels"]


def test_headless_message_names_the_installer_not_make():
    message = deps.missing_message("onnxruntime", "No module named 'onnxruntime'")
    assert message.startswith("ONNX Runtime is not installed")
    assert "spectraltf:installdependencies" in message and deps.deps_dir() in message
    assert "make " not in message
