"""gui/dependency_check.py: the ONNX Runtime install offer (GUI parts stubbed, QMessageBox patched)."""
import sys

import pytest

from spectral_transformers.gui import dependency_check as dc
from spectral_transformers.runtime import deps
from spectral_transformers.runtime.models import onnx_backend
from spectral_transformers.runtime.errors import DependencyError


@pytest.fixture
def fresh(qgis_app, qgis_iface, monkeypatch):
    from qgis.core import QgsSettings

    QgsSettings().remove(dc.DECLINED_KEY)
    dc.reset_session()
    qgis_iface.messageBar().clear_messages()
    qgis_iface.messageBar().clearWidgets()
    started = []
    monkeypatch.setattr(dc, "start_install",
                        lambda iface, installer=None: started.append(dc._installer(installer).package))
    yield started
    QgsSettings().remove(dc.DECLINED_KEY)
    dc.reset_session()


@pytest.fixture
def missing(monkeypatch):
    """ONNX Runtime not importable (as the runtime reports it)."""
    def fail():
        raise DependencyError(deps.missing_message("onnxruntime", "No module named 'onnxruntime'"))
    monkeypatch.setattr(onnx_backend, "import_onnxruntime", fail)


class Questions:
    def __init__(self, answer):
        self.answer = answer
        self.asked = []

    def __call__(self, parent, title, text, buttons, default):
        self.asked.append(text)
        return self.answer


def _patch_question(monkeypatch, answer):
    from qgis.PyQt.QtWidgets import QMessageBox

    questions = Questions(answer)
    monkeypatch.setattr(dc.QMessageBox, "question", questions)
    return questions, QMessageBox


def test_installed_runtime_is_reported_without_asking(fresh, qgis_iface, monkeypatch):
    pytest.importorskip("onnxruntime")
    from qgis.core import QgsSettings

    questions, _ = _patch_question(monkeypatch, None)
    QgsSettings().setValue(dc.DECLINED_KEY, True)
    assert dc.check_once(qgis_iface) == "ok"
    assert questions.asked == [] and fresh == []
    assert not QgsSettings().contains(dc.DECLINED_KEY)
    ok, summary = dc.onnxruntime_status()
    assert ok and summary.startswith("ONNX Runtime ")


@pytest.mark.parametrize("gpu,package", [(True, "onnxruntime-gpu"), (False, "onnxruntime")])
def test_missing_yes_starts_install_of_right_package(fresh, missing, qgis_iface, monkeypatch, gpu, package):
    monkeypatch.setattr(deps, "has_nvidia_gpu", lambda: gpu)
    questions, box = _patch_question(monkeypatch, None)
    questions.answer = box.Yes
    assert dc.check_once(qgis_iface) == "installing"
    assert fresh == [package]
    (text,) = questions.asked
    assert f"'{package}'" in text and deps.deps_dir() in text and "ukis-csmask" in text  # one consent for both
    assert deps.python_executable() in text
    assert dc.check_once(qgis_iface) == "already-checked"  # once per session
    assert len(questions.asked) == 1


def test_missing_no_is_remembered_and_later_sessions_only_notify(fresh, missing, qgis_iface, monkeypatch):
    from qgis.core import QgsSettings

    questions, box = _patch_question(monkeypatch, None)
    questions.answer = box.No
    assert dc.check_once(qgis_iface) == "declined"
    assert fresh == []
    assert QgsSettings().value(dc.DECLINED_KEY, False, type=bool)
    bar = qgis_iface.messageBar()
    assert bar.currentItem() is not None and "ONNX Runtime is missing" in bar.currentItem().text()
    assert len(bar.currentItem().text()) <= 70  # fits the message bar (the old text was cut off)

    dc.reset_session()  # next QGIS session: no dialog, just the notice
    bar.clearWidgets()
    assert dc.check_once(qgis_iface) == "notified"
    assert len(questions.asked) == 1
    notice = bar.currentItem()
    assert notice is not None

    # The notice's Install… button asks again and installs on Yes.
    from qgis.PyQt.QtWidgets import QPushButton

    questions.answer = box.Yes
    (button,) = [b for b in notice.findChildren(QPushButton) if b.text() == "Install…"]
    button.click()
    assert len(questions.asked) == 2 and fresh == [deps.onnxruntime_package()]


class FakeInstaller:
    """Stands in for runtime.deps.Installer (the real one is tested in test_deps / test_zip_install)."""

    package, with_ukis, target, python = "onnxruntime", True, "/tmp/deps", sys.executable

    def __init__(self, outcome):
        self.outcome = outcome

    def packages(self):
        return ["onnxruntime", "ukis-csmask"]

    def run(self, monitor):
        monitor.info("Collecting onnxruntime")
        monitor.progress(0.5)
        if self.outcome == "fail":
            raise DependencyError("pip failed (exit code 1): ERROR: No matching distribution found for onnxruntime")
        if self.outcome == "cancel":
            raise dc.Cancelled()
        return ["onnxruntime==1.0", "ukis-csmask==1.0.0"]


def test_install_task_success_reports_runtime(qgis_app, qgis_iface, monkeypatch):
    pytest.importorskip("onnxruntime")
    from qgis.core import QgsSettings

    from spectral_transformers.qgis_compat import MESSAGE_SUCCESS

    QgsSettings().setValue(dc.DECLINED_KEY, True)
    bar = qgis_iface.messageBar()
    bar.clear_messages()
    task = dc.start_install(qgis_iface, FakeInstaller("ok"))
    assert dc.wait_for(task)
    assert task.installed == ["onnxruntime==1.0", "ukis-csmask==1.0.0"] and "Collecting onnxruntime" in task.lines
    (message,) = bar.get_messages(MESSAGE_SUCCESS)
    assert "Installed onnxruntime" in message and "Restart QGIS" in message
    assert not QgsSettings().contains(dc.DECLINED_KEY)


@pytest.mark.parametrize("outcome,expected", [("fail", "failed: pip failed (exit code 1)"),
                                              ("cancel", "was cancelled; nothing was installed")])
def test_install_task_failure_or_cancel_reports_one_line(qgis_app, qgis_iface, outcome, expected):
    from spectral_transformers.qgis_compat import MESSAGE_CRITICAL

    bar = qgis_iface.messageBar()
    bar.clear_messages()
    task = dc.start_install(qgis_iface, FakeInstaller(outcome))
    assert dc.wait_for(task)
    (message,) = bar.get_messages(MESSAGE_CRITICAL)
    assert expected[:40] in message and "\n" not in message and len(message) < 160


def test_plugin_init_gui_runs_the_check(qgis_iface, monkeypatch):
    import spectral_transformers
    from spectral_transformers.plugin import SpectralTransformersPlugin

    calls = []
    monkeypatch.setattr(SpectralTransformersPlugin, "initProcessing", lambda self: None)
    monkeypatch.setattr(dc, "check_once", lambda iface: calls.append(iface))
    plugin = spectral_transformers.classFactory(qgis_iface)
    plugin.initGui()
    assert calls == [qgis_iface]


def test_headless_message_names_the_installer(monkeypatch):
    message = deps.missing_message("onnxruntime")
    assert "spectraltf:installdependencies" in message and deps.deps_dir() in message
    assert "make " not in message


def test_plugin_menu_opens_the_model_manager_and_the_installer(qgis_iface, monkeypatch, tmp_path):
    """Plugins ▸ Spectral Transformers: Install model…, List models, Install dependencies…, Open model folder."""
    from spectral_transformers.gui import menu

    monkeypatch.setenv(deps.ENV_DATA_DIR, str(tmp_path / "data"))
    opened = []
    monkeypatch.setattr(menu, "open_algorithm_dialog", lambda algorithm_id: opened.append(algorithm_id))
    monkeypatch.setattr(menu.QDesktopServices, "openUrl", lambda url: opened.append(url.toLocalFile()))
    monkeypatch.setattr(qgis_iface, "removePluginMenu", lambda name, action: None, raising=False)
    plugin_menu = menu.PluginMenu(qgis_iface)
    actions = {a.text(): a for a in plugin_menu.add()}
    assert list(actions) == ["Install model…", "List models", "Install dependencies…", "Open model folder"]
    for action in actions.values():
        action.trigger()
    assert opened == ["spectraltf:installmodel", "spectraltf:models", "spectraltf:installdependencies",
                      deps.models_dir()]
    plugin_menu.remove()
    assert plugin_menu.actions == []
