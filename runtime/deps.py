"""Optional dependencies (ONNX Runtime, the ukis-csmask models): where they go, how they get there.

QGIS-free. The plugin never installs anything silently: the desktop plugin asks once
(``gui/dependency_check.py``), headless users run ``spectraltf:installdependencies``; both call
:class:`Installer`.

Where packages go
    ``<QGIS profile>/spectral_transformers/python<major>.<minor>/`` (:func:`deps_dir`): outside the
    plugin folder, so a plugin upgrade (which replaces the plugin folder) keeps them, and per Python
    minor version, because binary wheels only load in the Python they were built for. The folder is
    *appended* to ``sys.path`` when the plugin starts (:func:`add_deps_to_path`), so nothing in it can
    shadow QGIS's own NumPy or GDAL.

Which Python installs them (:func:`python_executable`)
    Inside QGIS ``sys.executable`` is the QGIS binary, not Python. The interpreter QGIS embeds is
    found next to its prefix and accepted only when it reports the same ``major.minor`` and prefix:

    - Linux (Debian/Ubuntu/Fedora packages): ``<sys.exec_prefix>/bin/python3.X`` (e.g. ``/usr/bin/python3.11``);
    - Windows (OSGeo4W and the standalone installer): ``<sys.exec_prefix>\\python.exe``
      (e.g. ``C:\\OSGeo4W\\apps\\Python312\\python.exe``; QGIS's launcher sets PYTHONHOME);
    - macOS (QGIS.app bundle): ``<sys.exec_prefix>/bin/python3.X`` or
      ``QGIS.app/Contents/MacOS/bin/python3``.

pip when the Python has none (:func:`pip_command`)
    Debian 13's QGIS Python has no ``pip`` module. pip then runs from a pip wheel *by path*
    (``python pip-X-py3-none-any.whl/pip install ...``, which pip supports): the wheel bundled with
    ``ensurepip``, Debian's ``/usr/share/python-wheels``, one in the given wheel folder, or one
    downloaded from the package index into the cache folder. Nothing is installed into QGIS's Python.

How (:class:`Installer`)
    1. ``pip install --dry-run --report`` resolves ONNX Runtime against what QGIS's Python already has,
       with NumPy constrained to the running version (so pip picks a build for it and never replaces it);
    2. ``pip install --no-deps --target <staging>`` installs exactly that list (plus ``ukis-csmask``,
       whose only use here is its ONNX files), then the staging folder's contents move into
       :func:`deps_dir`. Cancel or failure removes the staging folder: nothing partial is left.

    ``onnxruntime`` and ``onnxruntime-gpu`` are never installed side by side (they overwrite each
    other's files and break the CUDA provider): installing one removes the other from our folder, and
    one installed elsewhere in QGIS's Python is left alone and reported.
"""
import glob
import importlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

from .errors import Cancelled, DependencyError
from . import PLUGIN_DIR

#: Folder name under the QGIS profile shared by installed packages and installed models.
DATA_FOLDER = "spectral_transformers"
#: Environment variable naming the data folder itself (tests, portable setups).
ENV_DATA_DIR = "SPECTRALTF_DATA_DIR"
RUNTIME_PACKAGES = ("onnxruntime", "onnxruntime-gpu")
UKIS_PACKAGE = "ukis-csmask"
MIN_PIP = (22, 2)  # pip install --dry-run --report

_profile = {"dir": None}


# ---------------------------------------------------------------------------------------------
# Folders
# ---------------------------------------------------------------------------------------------
def set_profile_dir(path):
    """The QGIS profile folder (``QgsApplication.qgisSettingsDirPath()``); the plugin calls this."""
    _profile["dir"] = str(path) if path else None


def data_dir():
    """The plugin's data folder (installed packages and models), outside the plugin folder:
    ``SPECTRALTF_DATA_DIR`` when set; else ``<QGIS profile>/spectral_transformers`` (the profile set with
    :func:`set_profile_dir`, or the one the plugin folder sits in: ``<profile>/python/plugins/<plugin>``);
    else ``~/.spectral_transformers`` (a source checkout used outside QGIS)."""
    env = os.environ.get(ENV_DATA_DIR, "").strip()
    if env:
        return os.path.abspath(os.path.expanduser(env))
    if _profile["dir"]:
        return os.path.join(_profile["dir"], DATA_FOLDER)
    parent = os.path.dirname(PLUGIN_DIR)
    if os.path.basename(parent) == "plugins" and os.path.basename(os.path.dirname(parent)) == "python":
        return os.path.join(os.path.dirname(os.path.dirname(parent)), DATA_FOLDER)
    return os.path.join(os.path.expanduser("~"), "." + DATA_FOLDER)


def deps_dir():
    """Folder for packages installed on the user's request, one per Python minor version."""
    return os.path.join(data_dir(), f"python{sys.version_info.major}.{sys.version_info.minor}")


def models_dir():
    """The user model folder models are installed into (searched by the registry)."""
    return os.path.join(data_dir(), "models")


def add_deps_to_path():
    """Append :func:`deps_dir` to ``sys.path`` (after QGIS's own packages) when it exists."""
    folder = deps_dir()
    if os.path.isdir(folder) and folder not in sys.path:
        sys.path.append(folder)
        importlib.invalidate_caches()
    return folder


#: Older name, kept for callers written against it.
add_ext_libs_to_path = add_deps_to_path


# ---------------------------------------------------------------------------------------------
# Which package, which Python
# ---------------------------------------------------------------------------------------------
def has_nvidia_gpu():
    """True when an NVIDIA GPU is visible (``nvidia-smi -L`` lists one)."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return False
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=10, **_no_window())
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0 and "GPU" in out.stdout


def onnxruntime_package(device="auto"):
    """``onnxruntime-gpu`` for ``device="cuda"`` or (auto) when an NVIDIA GPU is present, else ``onnxruntime``."""
    if device == "cuda":
        return "onnxruntime-gpu"
    if device == "cpu":
        return "onnxruntime"
    return "onnxruntime-gpu" if has_nvidia_gpu() else "onnxruntime"


def _interpreter_candidates():
    exe = sys.executable or ""
    ver = f"{sys.version_info.major}.{sys.version_info.minor}"
    cands = []
    if os.path.basename(exe).lower().startswith("python"):
        cands.append(exe)
    base = getattr(sys, "_base_executable", "")
    if base and os.path.basename(base).lower().startswith("python"):
        cands.append(base)
    prefixes = [sys.exec_prefix, sys.prefix, getattr(sys, "base_exec_prefix", sys.exec_prefix)]
    for prefix in prefixes:
        if sys.platform == "win32":
            cands += [os.path.join(prefix, "python.exe"), os.path.join(prefix, "python3.exe")]
        else:
            cands += [os.path.join(prefix, "bin", f"python{ver}"), os.path.join(prefix, "bin", "python3")]
    if sys.platform == "darwin" and exe:  # QGIS.app/Contents/MacOS/QGIS → QGIS.app/Contents/MacOS/bin/python3
        cands += [os.path.join(os.path.dirname(exe), "bin", f"python{ver}"),
                  os.path.join(os.path.dirname(exe), "bin", "python3")]
    cands += [shutil.which(f"python{ver}") or "", shutil.which("python3") or ""]
    out = []
    for c in cands:
        if c and os.path.isfile(c) and c not in out:
            out.append(c)
    return out


def _same_python(candidate):
    """Whether ``candidate`` is this Python (same major.minor and base prefix)."""
    code = "import sys; print('%d.%d' % sys.version_info[:2]); print(getattr(sys, 'base_prefix', sys.prefix))"
    try:
        out = subprocess.run([candidate, "-c", code], capture_output=True, text=True, timeout=60,
                             env=_child_env(), **_no_window())
    except (OSError, subprocess.SubprocessError):
        return False
    lines = out.stdout.split()
    want_prefix = os.path.realpath(getattr(sys, "base_prefix", sys.prefix))
    return (out.returncode == 0 and len(lines) >= 2
            and lines[0] == f"{sys.version_info.major}.{sys.version_info.minor}"
            and os.path.realpath(lines[1]) == want_prefix)


def python_executable():
    """The Python interpreter QGIS runs (inside QGIS ``sys.executable`` is the QGIS binary).

    Raises DependencyError when no interpreter with this Python's version and prefix is found (a
    different minor version would install wheels QGIS cannot load)."""
    for cand in _interpreter_candidates():
        if _same_python(cand):
            return cand
    raise DependencyError(
        f"cannot find the Python {sys.version_info.major}.{sys.version_info.minor} interpreter QGIS runs "
        f"(looked beside {sys.exec_prefix}); install the packages into {deps_dir()} by hand.")


def numpy_version():
    """The running NumPy's version, or None when NumPy is not importable."""
    try:
        import numpy  # noqa: WPS433
    except ImportError:
        return None
    return numpy.__version__


def numpy_pin():
    """``numpy==<version QGIS uses>``, or ``None`` when numpy is not importable."""
    version = numpy_version()
    return f"numpy=={version}" if version else None


def installed_distribution(name, paths=None):
    """``(version, location)`` of an installed distribution ``name`` on ``paths`` (default
    ``sys.path``), or None."""
    from importlib import metadata

    want = _canonical(name)
    for dist in metadata.distributions(path=list(paths) if paths is not None else sys.path):
        if _canonical(dist.metadata.get("Name", "")) == want:
            return dist.version, str(getattr(dist, "_path", ""))
    return None


def _canonical(name):
    return re.sub(r"[-_.]+", "-", str(name)).lower()


# ---------------------------------------------------------------------------------------------
# pip
# ---------------------------------------------------------------------------------------------
def _child_env(extra_path=None):
    env = dict(os.environ)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    if extra_path:
        env["PYTHONPATH"] = os.pathsep.join([p for p in [env.get("PYTHONPATH", ""), *extra_path] if p])
    return env


def _no_window():
    if sys.platform == "win32":
        return {"creationflags": getattr(subprocess, "CREATE_NO_WINDOW", 0)}
    return {}


def _pip_module_version(python):
    try:
        out = subprocess.run([python, "-c", "import pip; print(pip.__version__)"], capture_output=True,
                             text=True, timeout=60, env=_child_env(), **_no_window())
    except (OSError, subprocess.SubprocessError):
        return None
    return _version_tuple(out.stdout.strip()) if out.returncode == 0 else None


def _version_tuple(text):
    parts = []
    for piece in str(text).split(".")[:3]:
        digits = re.match(r"\d+", piece)
        if not digits:
            break
        parts.append(int(digits.group()))
    return tuple(parts)


def _wheel_version(path):
    match = re.match(r"pip-([^-]+)-", os.path.basename(path))
    return _version_tuple(match.group(1)) if match else ()


def pip_wheels(wheel_dir=None):
    """pip wheels this machine already has (newest first): the given wheel folder, ensurepip's bundled
    wheel, Debian's ``/usr/share/python-wheels``, the cache folder."""
    folders = [wheel_dir] if wheel_dir else []
    try:
        import ensurepip

        folders.append(os.path.join(os.path.dirname(ensurepip.__file__), "_bundled"))
    except ImportError:
        pass
    folders += ["/usr/share/python-wheels", os.path.join(data_dir(), "cache")]
    found = []
    for folder in folders:
        found += glob.glob(os.path.join(folder, "pip-*-py3-none-any.whl"))
    return sorted(set(found), key=_wheel_version, reverse=True)


def download_pip_wheel(index_url=None, monitor=None):
    """Download the newest pip wheel from the package index (simple JSON API) into the cache folder
    and check its SHA-256; returns its path."""
    import hashlib
    import urllib.request

    base = (index_url or "https://pypi.org/simple").rstrip("/")
    request = urllib.request.Request(f"{base}/pip/", headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 (https index)
        files = json.load(response)["files"]
    wheels = [f for f in files if re.fullmatch(r"pip-[\d.]+-py3-none-any\.whl", f["filename"]) and not f.get("yanked")]
    if not wheels:
        raise DependencyError(f"no pip wheel found on {base}")
    best = max(wheels, key=lambda f: _wheel_version(f["filename"]))
    cache = os.path.join(data_dir(), "cache")
    os.makedirs(cache, exist_ok=True)
    target = os.path.join(cache, best["filename"])
    tmp = target + ".partial"
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(best["url"], timeout=120) as response, open(tmp, "wb") as out:  # noqa: S310
            for chunk in iter(lambda: response.read(1 << 16), b""):
                digest.update(chunk)
                out.write(chunk)
        want = best.get("hashes", {}).get("sha256")
        if want and digest.hexdigest() != want:
            raise DependencyError(f"the downloaded {best['filename']} does not match its SHA-256")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    if monitor is not None:
        monitor.info(f"downloaded {best['filename']} to run pip from it")
    return target


def pip_command(python, wheel_dir=None, index_url=None, monitor=None, prefer_wheel=False):
    """How to run pip with ``python``: ``[python, "-m", "pip"]`` when it has a recent pip module,
    else ``[python, "<pip wheel>/pip"]`` (a pip wheel run from its path; nothing is installed)."""
    version = None if prefer_wheel else _pip_module_version(python)
    if version and version >= MIN_PIP:
        return [python, "-m", "pip"]
    for wheel in pip_wheels(wheel_dir):
        if _wheel_version(wheel) >= MIN_PIP:
            return [python, os.path.join(wheel, "pip")]
    if wheel_dir:  # offline install: do not reach for the network
        raise DependencyError(f"QGIS's Python ({python}) has no pip {'.'.join(map(str, MIN_PIP))} or newer and "
                              f"{wheel_dir} holds no pip wheel; add pip-*-py3-none-any.whl to that folder.")
    return [python, os.path.join(download_pip_wheel(index_url, monitor), "pip")]


def format_command(cmd):
    """A command list as one line to paste into this platform's shell (paths with spaces quoted)."""
    if sys.platform == "win32":
        return subprocess.list2cmdline(cmd)
    return " ".join(shlex.quote(part) for part in cmd)


# ---------------------------------------------------------------------------------------------
# The installer
# ---------------------------------------------------------------------------------------------
class Installer:
    """Install ONNX Runtime (and the ukis-csmask models) for QGIS's Python into :func:`deps_dir`.

    ``device``: ``auto`` (CUDA build when an NVIDIA GPU is present), ``cpu`` or ``cuda``.
    ``wheel_dir``: install offline from this folder of wheels (``pip --no-index --find-links``).
    ``index_url``: another package index (a mirror or a company proxy).
    ``python``: the interpreter (default :func:`python_executable`).
    ``target``: the folder (default :func:`deps_dir`).
    ``pip_from_wheel``: run pip from a pip wheel even when the Python has a pip module (as on Debian 13,
    whose QGIS Python has none; also a way round a broken pip)."""

    def __init__(self, device="auto", with_ukis=True, wheel_dir=None, index_url=None, python=None, target=None,
                 pip_from_wheel=False):
        if device not in ("auto", "cpu", "cuda"):
            raise DependencyError(f"device '{device}' is not one of auto, cpu, cuda.")
        if wheel_dir and not os.path.isdir(wheel_dir):
            raise DependencyError(f"wheel folder not found: {wheel_dir}")
        self.package = onnxruntime_package(device)
        self.with_ukis = with_ukis
        self.wheel_dir = os.path.abspath(wheel_dir) if wheel_dir else None
        self.index_url = index_url or None
        self._python = python
        self.target = os.path.abspath(target or deps_dir())
        self.pip_from_wheel = pip_from_wheel  # run pip from a wheel even when the Python has pip
        self.pip = None  # the pip command, chosen when run() starts
        self.log = []

    @property
    def python(self):
        if self._python is None:
            self._python = python_executable()
        return self._python

    def packages(self):
        return [self.package] + ([UKIS_PACKAGE] if self.with_ukis else [])

    def describe(self):
        """One paragraph for the consent dialog / the algorithm log."""
        what = f"'{self.package}'" + (" and the ukis-csmask cloud models (about 160 MB, Apache-2.0)"
                                      if self.with_ukis else "")
        return (f"Install {what} for QGIS's Python ({self.python}) into {self.target} "
                "(kept across plugin upgrades).")

    def _index_args(self):
        if self.wheel_dir:
            return ["--no-index", "--find-links", self.wheel_dir]
        return ["--index-url", self.index_url] if self.index_url else []

    # -- steps ----------------------------------------------------------------------------------
    def conflicts(self):
        """Message when the other ONNX Runtime build is installed outside our folder (we never put both
        side by side), else None."""
        other = "onnxruntime" if self.package == "onnxruntime-gpu" else "onnxruntime-gpu"
        paths = [p for p in sys.path if os.path.abspath(p or ".") != self.target]
        found = installed_distribution(other, paths)
        if found:
            return (f"'{other}' {found[0]} is already installed in QGIS's Python ({found[1]}); it and "
                    f"'{self.package}' break each other, so '{self.package}' is not installed. Uninstall "
                    f"'{other}' first, or keep using it.")
        return None

    def resolve(self, run):
        """Names==versions pip would add for ONNX Runtime, given what QGIS's Python already has."""
        report = tempfile.NamedTemporaryFile(prefix="spectraltf-pip-report-", suffix=".json", delete=False)
        report.close()
        constraints = self._constraints_file()
        try:
            cmd = [*self.pip, "install", "--dry-run", "--quiet", "--report", report.name, "--only-binary=:all:",
                   *self._index_args(), *(["-c", constraints] if constraints else []), self.package]
            run(cmd, env=_child_env([self.target]))
            with open(report.name, encoding="utf-8") as f:
                items = json.load(f).get("install", [])
        finally:
            os.remove(report.name)
            if constraints:
                os.remove(constraints)
        pins = [f"{i['metadata']['name']}=={i['metadata']['version']}" for i in items]
        bad = [p for p in pins if _canonical(p.split("==")[0]) == "numpy"]
        if bad:  # the constraint keeps numpy unless none is importable at all
            raise DependencyError(f"pip wants to install {bad[0]}, which would replace QGIS's NumPy "
                                  f"{numpy_version()}; no ONNX Runtime build fits it.")
        return pins

    def _constraints_file(self):
        pin = numpy_pin()
        if not pin:
            return None
        fd, path = tempfile.mkstemp(prefix="spectraltf-constraints-", suffix=".txt")
        with os.fdopen(fd, "w") as f:
            f.write(pin + "\n")
        return path

    def install(self, pins, staging, run):
        extra = [UKIS_PACKAGE] if self.with_ukis else []
        if not pins and not extra:
            return
        cmd = [*self.pip, "install", "--no-deps", "--only-binary=:all:", "--no-compile", "--target", staging,
               *self._index_args(), *pins, *extra]
        run(cmd, env=_child_env())

    def commit(self, staging):
        """Move the staged packages into the target folder (replacing older copies)."""
        os.makedirs(self.target, exist_ok=True)
        other = "onnxruntime" if self.package == "onnxruntime-gpu" else "onnxruntime-gpu"
        remove_distribution(other, self.target)
        names = os.listdir(staging)
        for name in names:  # a newer dist-info replaces the older one of the same project
            match = re.match(r"(.+?)-[^-]+\.dist-info$", name)
            if match:
                remove_distribution(match.group(1), self.target)
        for name in names:
            _move_into(os.path.join(staging, name), os.path.join(self.target, name))

    def run(self, monitor=None):
        """Do it; returns the list of installed ``name==version``. Raises DependencyError (with pip's
        last lines) or Cancelled; either way nothing is left half-installed."""
        from .monitor import ensure

        monitor = ensure(monitor)
        conflict = self.conflicts()
        if conflict:
            raise DependencyError(conflict)
        monitor.info(self.describe())
        self.pip = pip_command(self.python, self.wheel_dir, self.index_url, monitor, self.pip_from_wheel)
        monitor.info(f"pip: {format_command(self.pip)}")
        os.makedirs(os.path.dirname(self.target), exist_ok=True)
        staging = tempfile.mkdtemp(prefix=".staging-", dir=os.path.dirname(self.target))
        steps = {"done": 0}

        def run(cmd, env):
            monitor.info(format_command(cmd))
            steps["done"] += 1
            self._run_pip(cmd, env, monitor, steps["done"])

        try:
            monitor.progress(0.02)
            pins = self.resolve(run)
            monitor.info("to install: " + (", ".join(pins + ([UKIS_PACKAGE] if self.with_ukis else []))
                                           or "nothing"))
            self.install(pins, staging, run)
            monitor.check()
            self.commit(staging)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        installed = [f"{n}=={v[0]}" for n in self.packages()
                     for v in [installed_distribution(n, [self.target])] if v]
        monitor.progress(1.0)
        monitor.info(f"installed into {self.target}: {', '.join(installed)}")
        add_deps_to_path()
        return installed

    def _run_pip(self, cmd, env, monitor, step):
        try:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                    encoding="utf-8", errors="replace", **_no_window())
        except OSError as exc:
            raise DependencyError(f"could not start {cmd[0]}: {exc}") from None
        lines = []
        try:
            for line in proc.stdout:
                line = line.rstrip()
                if not line:
                    continue
                lines.append(line)
                self.log.append(line)
                if line.startswith(("Collecting", "Downloading", "Installing", "Successfully", "Processing")):
                    monitor.info(line.strip())
                # step 1 (resolve) is the first third, step 2 (download + unpack) the rest
                base, span = (0.02, 0.28) if step == 1 else (0.3, 0.65)
                monitor.progress(base + span * (1 - 1 / (1 + 0.1 * len(lines))))
                if monitor.cancelled():
                    proc.kill()
                    proc.wait()
                    raise Cancelled()
        finally:
            if proc.poll() is None and monitor.cancelled():
                proc.kill()
        proc.wait()
        if proc.returncode != 0:
            tail = " | ".join(line for line in lines[-6:] if line.strip())
            raise DependencyError(f"pip failed (exit code {proc.returncode}): {tail}")


def _move_into(src, dest):
    """Move ``src`` to ``dest``, replacing a package folder but merging namespace folders (no
    ``__init__.py``, e.g. protobuf's ``google/``) so other packages' parts survive."""
    if os.path.isdir(src) and os.path.isdir(dest) and not os.path.islink(dest) \
            and not os.path.exists(os.path.join(src, "__init__.py")):
        for child in os.listdir(src):
            _move_into(os.path.join(src, child), os.path.join(dest, child))
        return
    if os.path.isdir(dest) and not os.path.islink(dest):
        shutil.rmtree(dest)
    elif os.path.lexists(dest):
        os.remove(dest)
    shutil.move(src, dest)


def remove_distribution(name, folder):
    """Remove distribution ``name`` from ``folder`` (files listed in its RECORD, then the dist-info)."""
    want = _canonical(name)
    if not os.path.isdir(folder):
        return False
    removed = False
    for info in glob.glob(os.path.join(folder, "*.dist-info")):
        project = re.match(r"(.+?)-[^-]+\.dist-info$", os.path.basename(info))
        if not project or _canonical(project.group(1)) != want:
            continue
        record = os.path.join(info, "RECORD")
        tops = set()
        if os.path.isfile(record):
            with open(record, encoding="utf-8") as f:
                for row in f:
                    rel = row.split(",", 1)[0].strip()
                    if rel and not rel.startswith(".."):
                        tops.add(rel.replace("\\", "/").split("/", 1)[0])
        for top in tops:
            path = os.path.join(folder, top)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            elif os.path.lexists(path):
                os.remove(path)
        shutil.rmtree(info, ignore_errors=True)
        removed = True
    return removed


def install_hint(module="onnxruntime"):
    """What a user does when ``module`` is missing (desktop and headless)."""
    return ("In QGIS: Plugins ▸ Spectral Transformers ▸ Install dependencies… (or accept the offer at start-up); "
            "headless: qgis_process run spectraltf:installdependencies. "
            f"Packages go to {deps_dir()}; restart QGIS afterwards.")


def install_command(package=None):
    """A manual pip command equivalent to what :class:`Installer` does (for the log and the docs)."""
    package = package or onnxruntime_package()
    try:
        python = python_executable()
    except DependencyError:
        python = "python3"
    cmd = [python, "-m", "pip", "install", "--target", deps_dir(), package]
    pin = numpy_pin() if package.startswith("onnxruntime") else None
    return cmd + [pin] if pin else cmd


def missing_message(module, detail=""):
    why = f" ({detail})" if detail else ""
    return (f"ONNX Runtime is not installed: the Python package '{module}' cannot be imported by QGIS's "
            f"Python{why}. {install_hint(module)}")
