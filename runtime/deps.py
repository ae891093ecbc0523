"""Optional dependencies: detection and exact install instructions for QGIS's Python.

The plugin never installs anything silently. Headless runs print :func:`install_command`; the
desktop plugin offers to run it (see ``gui/dependency_check.py``).
"""
import os
import shutil
import subprocess
import sys

PLUGIN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: Plugin-local folder for packages installed on the user's request; added to sys.path at load.
EXT_LIBS = os.path.join(PLUGIN_DIR, "ext-libs")


def add_ext_libs_to_path():
    """Make packages installed into the plugin-local folder importable."""
    if os.path.isdir(EXT_LIBS) and EXT_LIBS not in sys.path:
        sys.path.append(EXT_LIBS)


def has_nvidia_gpu():
    """True when an NVIDIA GPU is visible (``nvidia-smi -L`` lists one)."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return False
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0 and "GPU" in out.stdout


def onnxruntime_package():
    """``onnxruntime-gpu`` when an NVIDIA GPU is present, else ``onnxruntime``."""
    return "onnxruntime-gpu" if has_nvidia_gpu() else "onnxruntime"


def python_executable():
    """The Python interpreter QGIS runs (sys.executable is the QGIS binary on some platforms)."""
    exe = sys.executable or ""
    base = os.path.basename(exe).lower()
    if base.startswith("python"):
        return exe
    if sys.platform == "win32":
        cand = os.path.join(sys.exec_prefix, "python.exe")
        if os.path.exists(cand):
            return cand
    if sys.platform == "darwin":
        cand = os.path.join(sys.exec_prefix, "bin", "python3")
        if os.path.exists(cand):
            return cand
    # Same major.minor as QGIS's Python (binary wheels must match it), e.g. /usr/bin/python3.11.
    cand = os.path.join(sys.exec_prefix, "bin", f"python{sys.version_info.major}.{sys.version_info.minor}")
    if os.path.exists(cand):
        return cand
    return shutil.which("python3") or "python3"


def numpy_pin():
    """``numpy==<version QGIS uses>`` (so pip picks an ONNX Runtime built for it and does not pull
    in an incompatible numpy), or ``None`` when numpy is not importable."""
    try:
        import numpy  # noqa: WPS433
    except ImportError:
        return None
    return f"numpy=={numpy.__version__}"


def install_command(package=None):
    """The command that installs ``package`` into the plugin-local folder QGIS's Python sees."""
    package = package or onnxruntime_package()
    cmd = [python_executable(), "-m", "pip", "install", "--upgrade", "--target", EXT_LIBS, package]
    pin = numpy_pin() if package.startswith("onnxruntime") else None
    return cmd + [pin] if pin else cmd


def format_command(cmd):
    """A command list as one line to paste into this platform's shell (paths with spaces quoted)."""
    if sys.platform == "win32":
        return subprocess.list2cmdline(cmd)
    import shlex

    return " ".join(shlex.quote(part) for part in cmd)


def missing_message(module, detail=""):
    cmd = format_command(install_command(onnxruntime_package() if module == "onnxruntime" else module))
    why = f" ({detail})" if detail else ""
    return (f"The Python package '{module}' is required but cannot be imported by QGIS's Python{why}. "
            f"Install it with:\n  {cmd}\nthen restart QGIS (in QGIS desktop the plugin offers to run "
            "this for you).")
