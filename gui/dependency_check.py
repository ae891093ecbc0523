"""QGIS desktop: notice a missing ONNX Runtime and offer to install it (never silently).

:func:`check_once` (called from the plugin's ``initGui``):

- ONNX Runtime importable → log its version and execution providers; forget any earlier "declined".
- Missing, not declined before → one question box: install ONNX Runtime (``onnxruntime-gpu`` when an
  NVIDIA GPU is present, else ``onnxruntime``) *and* the ukis-csmask models, for QGIS's own Python,
  into the plugin's data folder in the QGIS profile (:func:`..runtime.deps.deps_dir`). *Yes* runs
  :class:`..runtime.deps.Installer` as one background :class:`InstallTask` (progress and cancel in
  QGIS's task bar); *No* is remembered in QgsSettings.
- Missing and declined earlier → only a short message-bar notice with an *Install…* button.

At most one notice per QGIS session. Headless runs never get here: their error message
(``runtime.deps.missing_message``) names ``spectraltf:installdependencies`` instead.
"""
import importlib
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
from ..runtime.errors import Cancelled, DependencyError
from ..runtime.monitor import Monitor

TITLE = "Spectral Transformers"
LOG_TAG = "Spectral Transformers"
#: QgsSettings key: the ONNX Runtime install offer was declined (cleared once it is installed).
DECLINED_KEY = "spectral_transformers/onnxruntime_install_declined"

_state = {"checked": False, "tasks": []}


def onnxruntime_status():
    """``(True, "ONNX Runtime x.y; available execution providers: ...")`` or ``(False, why)``."""
    deps.add_deps_to_path()
    importlib.invalidate_caches()
    from ..runtime.models import onnx_backend

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


def check_once(iface, installer=None):
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
    if settings.value(DECLINED_KEY, False, type=bool):
        _notify_missing(iface)
        return "notified"
    if ask_install(iface, installer):
        start_install(iface, installer)
        return "installing"
    settings.setValue(DECLINED_KEY, True)
    _notify_missing(iface)
    return "declined"


def _installer(installer=None):
    return installer or deps.Installer()


def ask_install(iface, installer=None):
    """One consent for everything (QMessageBox); True on Yes."""
    installer = _installer(installer)
    gpu = " (an NVIDIA GPU was found, so the CUDA build is proposed)" if installer.package == "onnxruntime-gpu" else ""
    try:
        python = installer.python
    except DependencyError as exc:
        QMessageBox.warning(_parent(iface), TITLE, str(exc))
        return False
    text = (f"Spectral Transformers runs its models with ONNX Runtime, which QGIS's Python cannot import yet.\n\n"
            f"Install now, in the background:\n"
            f"  • '{installer.package}'{gpu}\n"
            + ("  • the ukis-csmask cloud and cloud-shadow models (about 160 MB, Apache-2.0)\n" if installer.with_ukis
               else "")
            + f"\nfor QGIS's Python ({python}) into\n{installer.target}\n"
            "(in your QGIS profile: kept when the plugin is upgraded; QGIS's own NumPy is not touched).\n\n"
            "Needs internet access (PyPI). Progress and Cancel are in QGIS's task bar; restart QGIS afterwards.")
    answer = QMessageBox.question(_parent(iface), TITLE, text, BUTTON_YES | BUTTON_NO, BUTTON_YES)
    return answer == BUTTON_YES


def _notify_missing(iface):
    bar = iface.messageBar()
    widget = bar.createMessage(TITLE, "ONNX Runtime is missing: the model algorithms cannot run.")
    widget.setToolTip(deps.install_hint())
    button = QPushButton("Install…", widget)

    def clicked():
        if ask_install(iface):
            bar.popWidget(widget)
            start_install(iface)

    button.clicked.connect(clicked)
    widget.layout().addWidget(button)
    bar.pushWidget(widget, MESSAGE_WARNING)
    return widget


class _TaskMonitor(Monitor):
    """Runtime monitor over a QgsTask (worker thread: logs go to the message log, no GUI)."""

    def __init__(self, task):
        self.task = task

    def info(self, message):
        self.task.lines.append(message)
        _log(message)

    def warn(self, message):
        self.task.lines.append("Warning: " + message)
        _log(message, MESSAGE_WARNING)

    def progress(self, fraction):
        self.task.setProgress(max(0.0, min(100.0, 100.0 * float(fraction))))

    def cancelled(self):
        return self.task.isCanceled()


class InstallTask(QgsTask):
    """Runs :meth:`..runtime.deps.Installer.run` in a background thread; reports on the main thread."""

    def __init__(self, iface, installer=None):
        installer = _installer(installer)
        super().__init__(f"Installing {' and '.join(installer.packages())} for Spectral Transformers", TASK_CAN_CANCEL)
        self.iface = iface
        self.installer = installer
        self.package = installer.package
        self.lines = []
        self.installed = []
        self.error = None
        self.cancelled = False
        self.summary = ""
        self.done = False  # set on the main thread once finished() has reported

    def run(self):  # worker thread: no GUI access
        try:
            self.installed = self.installer.run(_TaskMonitor(self))
            return True
        except Cancelled:
            self.cancelled = True
        except DependencyError as exc:
            self.error = str(exc)
        except Exception as exc:  # noqa: BLE001 - report, never crash QGIS's task manager
            self.error = f"{type(exc).__name__}: {exc}"
        return False

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
            _log(f"installed {', '.join(self.installed)}: {self.summary}")
            if bar is not None:
                if ok:
                    bar.pushMessage(TITLE, f"Installed {self.package}. Restart QGIS to use it.", MESSAGE_SUCCESS, 0)
                else:
                    bar.pushMessage(TITLE, f"Installed {self.package}; restart QGIS to load it.", MESSAGE_WARNING, 0)
            return
        if self.cancelled:
            message = f"Installing {self.package} was cancelled; nothing was installed."
        else:
            message = f"Installing {self.package} failed: {self.error}"
        _log(message, MESSAGE_CRITICAL)
        if bar is not None:
            short = message if len(message) < 90 else message[:87].rsplit(" ", 1)[0] + "…"
            bar.pushMessage(TITLE, short + " Details: View ▸ Panels ▸ Log Messages.", MESSAGE_CRITICAL, 0)


def start_install(iface, installer=None):
    """Queue :class:`InstallTask` in QGIS's task manager (a reference is kept until QGIS exits)."""
    task = InstallTask(iface, installer)
    _state["tasks"].append(task)
    QgsApplication.taskManager().addTask(task)
    _log(f"installing {', '.join(task.installer.packages())} into {task.installer.target}")
    return task


def wait_for(task, timeout=60.0):
    """Process Qt events until ``task`` has reported (tests and scripts); returns ``task.done``.
    (The task manager deletes the C++ task afterwards: read only its Python attributes.)"""
    end = time.monotonic() + timeout
    while time.monotonic() < end and not task.done:
        QgsApplication.processEvents()
        time.sleep(0.01)
    return task.done
