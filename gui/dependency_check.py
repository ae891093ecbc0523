"""QGIS desktop: notice a missing ONNX Runtime and offer to install it (never silently).

:func:`check_once` (called from the plugin's ``initGui``):

- ONNX Runtime importable → log its version and execution providers; forget any earlier "declined".
- Missing, not declined before → a question box names the package (``onnxruntime-gpu`` when an
  NVIDIA GPU is present, else ``onnxruntime``), the target folder (the plugin's ``ext-libs``, on
  QGIS's ``sys.path``) and the exact command. *Yes* runs the install as a background
  :class:`InstallTask`; *No* is remembered in QgsSettings.
- Missing and declined earlier → only a message-bar notice with an *Install…* button (no dialog).

At most one notice per QGIS session. Headless runs never get here: their error message
(``runtime.deps.missing_message``) prints the command instead.
"""
import importlib
import subprocess
import sys
import time

from qgis.core import QgsApplication, QgsMessageLog, QgsSettings, QgsTask
from qgis.PyQt.QtWidgets import QMessageBox, QPushButton

from ..qgis_compat import (
    BUTTON_NO,
    BUTTON_YES,
    MESSAGE_CRITICAL,
    MESSAGE_INFO,
    MESSAGE_SUCCESS,
    MESSAGE_WARNING,
    TASK_CAN_CANCEL,
)
from ..runtime import deps
from ..runtime.errors import DependencyError

TITLE = "Spectral Transformers"
LOG_TAG = "Spectral Transformers"
#: QgsSettings key: the ONNX Runtime install offer was declined (cleared once it is installed).
DECLINED_KEY = "spectral_transformers/onnxruntime_install_declined"

_state = {"checked": False, "tasks": []}


def onnxruntime_status():
    """``(True, "ONNX Runtime x.y; available execution providers: ...")`` or ``(False, why)``."""
    deps.add_ext_libs_to_path()
    importlib.invalidate_caches()
    from ..runtime import onnx_backend

    try:
        return True, onnx_backend.runtime_summary()
    except DependencyError as exc:
        return False, str(exc)
    except Exception as exc:  # a broken install (e.g. missing shared libraries) must not break QGIS
        return False, f"onnxruntime failed to import: {exc}"


def _log(message, level=MESSAGE_INFO):
    QgsMessageLog.logMessage(message, LOG_TAG, level)


def _parent(iface):
    try:
        return iface.mainWindow()
    except Exception:
        return None


def reset_session():
    """Forget that this session already checked (tests; after an install)."""
    _state["checked"] = False


def check_once(iface, package=None):
    """Check for ONNX Runtime once per session; returns what happened:
    ``"ok"``, ``"already-checked"``, ``"installing"``, ``"declined"`` or ``"notified"``."""
    if _state["checked"]:
        return "already-checked"
    _state["checked"] = True
    ok, detail = onnxruntime_status()
    settings = QgsSettings()
    if ok:
        settings.remove(DECLINED_KEY)
        _log(detail)
        return "ok"
    _log(detail, MESSAGE_WARNING)
    package = package or deps.onnxruntime_package()
    if settings.value(DECLINED_KEY, False, type=bool):
        _notify_missing(iface, package)
        return "notified"
    if ask_install(iface, package):
        start_install(iface, package)
        return "installing"
    settings.setValue(DECLINED_KEY, True)
    _notify_missing(iface, package)
    return "declined"


def ask_install(iface, package):
    """Ask whether to install ``package`` (QMessageBox); True on Yes."""
    command = deps.format_command(deps.install_command(package))
    gpu = " (an NVIDIA GPU was found, so the CUDA build is proposed)" if package == "onnxruntime-gpu" else ""
    text = (f"Spectral Transformers runs its models with ONNX Runtime, which QGIS's Python cannot import.\n\n"
            f"Install '{package}'{gpu} now into the plugin folder\n{deps.EXT_LIBS}\n\n"
            "This downloads the package with pip and runs in the background; restart QGIS afterwards.\n\n"
            f"Command:\n{command}")
    answer = QMessageBox.question(_parent(iface), TITLE, text, BUTTON_YES | BUTTON_NO, BUTTON_YES)
    return answer == BUTTON_YES


def _notify_missing(iface, package):
    bar = iface.messageBar()
    text = (f"ONNX Runtime is not installed: the model algorithms cannot run. "
            f"Install '{package}' (plugin-local, via pip).")
    widget = bar.createMessage(TITLE, text)
    button = QPushButton("Install…", widget)

    def clicked():
        if ask_install(iface, package):
            bar.popWidget(widget)
            start_install(iface, package)

    button.clicked.connect(clicked)
    widget.layout().addWidget(button)
    bar.pushWidget(widget, MESSAGE_WARNING)
    return widget


class InstallTask(QgsTask):
    """Runs the pip install command in a background thread; reports on the main thread."""

    def __init__(self, iface, package, command=None):
        super().__init__(f"Installing {package} for Spectral Transformers", TASK_CAN_CANCEL)
        self.iface = iface
        self.package = package
        self.command = list(command or deps.install_command(package))
        self.returncode = None
        self.output = ""
        self.summary = ""
        self.cancelled = False
        self.done = False  # set on the main thread once finished() has reported

    def run(self):  # worker thread: no GUI access
        try:
            proc = subprocess.Popen(self.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                    **_no_window())
        except OSError as exc:
            self.output = f"could not start {self.command[0]}: {exc}"
            return False
        lines = []
        for line in proc.stdout:  # pip prints one line per step
            lines.append(line)
            self.setProgress(min(95.0, 2.0 * len(lines)))
            if self.isCanceled():
                proc.kill()
                break
        proc.wait()
        self.returncode = proc.returncode
        self.output = "".join(lines)
        if self.isCanceled():
            self.cancelled = True
            return False
        return proc.returncode == 0

    def finished(self, result):  # main thread
        try:
            self._report(result)
        finally:
            self.done = True

    def _report(self, result):
        bar = self.iface.messageBar() if self.iface is not None else None
        if result:
            ok, self.summary = onnxruntime_status()
            QgsSettings().remove(DECLINED_KEY)
            _log(f"installed {self.package}: {self.summary}")
            if bar is not None:
                if ok:
                    bar.pushMessage(TITLE, f"Installed {self.package}: {self.summary}. Restart QGIS to be safe.",
                                    MESSAGE_SUCCESS, 0)
                else:
                    bar.pushMessage(TITLE, f"pip installed {self.package}, but it cannot be imported yet; "
                                    "restart QGIS.", MESSAGE_WARNING, 0)
            return
        if self.cancelled:
            message = f"Installing {self.package} was cancelled."
        else:
            tail = "\n".join(self.output.strip().splitlines()[-15:])
            message = (f"Installing {self.package} failed (exit code {self.returncode}).\n{tail}\n\n"
                       f"Install it yourself with:\n{deps.format_command(self.command)}")
        _log(message, MESSAGE_CRITICAL)
        if bar is not None:
            bar.pushMessage(TITLE, message.splitlines()[0] + " See the log (Spectral Transformers tab).",
                            MESSAGE_CRITICAL, 0)


def _no_window():
    if sys.platform == "win32":
        return {"creationflags": getattr(subprocess, "CREATE_NO_WINDOW", 0)}
    return {}


def start_install(iface, package=None, command=None):
    """Queue :class:`InstallTask` in QGIS's task manager (a reference is kept until QGIS exits)."""
    task = InstallTask(iface, package or deps.onnxruntime_package(), command)
    _state["tasks"].append(task)
    QgsApplication.taskManager().addTask(task)
    _log(f"installing {task.package}: {deps.format_command(task.command)}")
    return task


def wait_for(task, timeout=60.0):
    """Process Qt events until ``task`` has reported (tests and scripts); returns ``task.done``.
    (The task manager deletes the C++ task afterwards: read only its Python attributes.)"""
    end = time.monotonic() + timeout
    while time.monotonic() < end and not task.done:
        QgsApplication.processEvents()
        time.sleep(0.01)
    return task.done
