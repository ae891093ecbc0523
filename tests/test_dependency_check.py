"""gui/dependency_check.py: the ONNX Runtime install offer (GUI parts stubbed, QMessageBox patched)."""
import sys

import pytest

from spectral_transformers.gui import dependency_check as dc
from spectral_transformers.runtime import deps, onnx_backend
from spectral_transformers.runtime.errors import DependencyError


@pytest.fixture
def fresh(qgis_app, qgis_iface, monkeypatch):
    from qgis.core import QgsSettings

    QgsSettings().remove(dc.DECLINED_KEY)
    dc.reset_session()
    qgis_iface.messageBar().clear_messages()
    qgis_iface.messageBar().clearWidgets()
    started = []
    monkeypatch.setattr(dc, "start_install", lambda iface, package=None, command=None: started.append(package))
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
    assert f"'{package}'" in text and deps.EXT_LIBS in text and "--target" in text
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
    assert bar.currentItem() is not None and "ONNX Runtime is not installed" in bar.currentItem().text()

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


def test_install_task_success_reports_runtime(qgis_app, qgis_iface, monkeypatch):
    pytest.importorskip("onnxruntime")
    from qgis.core import QgsSettings

    from spectral_transformers.qgis_compat import MESSAGE_SUCCESS

    QgsSettings().setValue(dc.DECLINED_KEY, True)
    bar = qgis_iface.messageBar()
    bar.clear_messages()
    task = dc.start_install(qgis_iface, "onnxruntime",
                            [sys.executable, "-c", "print('Collecting onnxruntime'); print('Successfully installed')"])
    assert dc.wait_for(task)
    assert task.returncode == 0 and "Successfully installed" in task.output
    (message,) = bar.get_messages(MESSAGE_SUCCESS)
    assert "Installed onnxruntime" in message and "ONNX Runtime" in message
    assert not QgsSettings().contains(dc.DECLINED_KEY)


def test_install_task_failure_reports_command(qgis_app, qgis_iface):
    from spectral_transformers.qgis_compat import MESSAGE_CRITICAL

    bar = qgis_iface.messageBar()
    bar.clear_messages()
    task = dc.start_install(qgis_iface, "onnxruntime",
                            [sys.executable, "-c", "import sys; print('ERROR: no matching distribution'); sys.exit(1)"])
    assert dc.wait_for(task)
    assert task.returncode == 1
    (message,) = bar.get_messages(MESSAGE_CRITICAL)
    assert "failed (exit code 1)" in message


def test_plugin_init_gui_runs_the_check(qgis_iface, monkeypatch):
    import spectral_transformers
    from spectral_transformers.plugin import SpectralTransformersPlugin

    calls = []
    monkeypatch.setattr(SpectralTransformersPlugin, "initProcessing", lambda self: None)
    monkeypatch.setattr(dc, "check_once", lambda iface: calls.append(iface))
    plugin = spectral_transformers.classFactory(qgis_iface)
    plugin.initGui()
    assert calls == [qgis_iface]


def test_headless_message_gives_exact_command(monkeypatch):
    monkeypatch.setattr(deps, "has_nvidia_gpu", lambda: False)
    message = deps.missing_message("onnxruntime")
    assert deps.format_command(deps.install_command("onnxruntime")) in message
    assert "--target" in message and deps.EXT_LIBS in message
    import numpy

    assert f"numpy=={numpy.__version__}" in deps.install_command("onnxruntime")
