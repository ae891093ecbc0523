"""Every algorithm opens in QGIS's Processing dialog (the Toolbox), with its help text.

With ``SPECTRALTF_SCREENSHOT_DIR`` set (``make docs-images``), the cloud-mask dialog is also saved as a
PNG for the README, with a real EMIT raster loaded as its input.
"""
import os

import pytest

from support import shared

ALGORITHMS = ["toareflectance", "cloudmask", "segment", "attentionmaps", "orthorectify", "models", "installmodel",
              "installdependencies"]


@pytest.fixture
def dialog_iface(qgis_iface, monkeypatch):
    from qgis.gui import QgsBrowserGuiModel

    model = QgsBrowserGuiModel()  # pytest-qgis's stub iface has no browser model
    monkeypatch.setattr(qgis_iface, "browserModel", lambda: model, raising=False)
    return qgis_iface


@pytest.mark.parametrize("name", ALGORITHMS)
def test_algorithm_dialog_builds(qgis_app, dialog_iface, processing_provider, name, tmp_path):
    from processing.gui.AlgorithmDialog import AlgorithmDialog
    from qgis.core import QgsApplication, QgsProject, QgsRasterLayer

    alg = QgsApplication.processingRegistry().createAlgorithmById(f"spectraltf:{name}")
    assert alg is not None
    assert len(alg.shortHelpString()) > 200, "complete help text"
    layer = None
    if name == "cloudmask":
        layer = QgsRasterLayer(str(shared("emit", "emit_l2a_rfl_10x10.img")), "EMIT L2A reflectance")
        assert layer.isValid()
        QgsProject.instance().addMapLayer(layer)
    try:
        dialog = AlgorithmDialog(alg)
        dialog.resize(960, 720)
        dialog.show()
        for _ in range(30):
            QgsApplication.processEvents()
        image = dialog.grab()
        assert image.width() > 500
        wrapped = dialog.mainWidget().wrappers if hasattr(dialog.mainWidget(), "wrappers") else {}
        for definition in alg.parameterDefinitions():
            assert definition.name() in wrapped, f"no widget for {definition.name()}"
        _check_dialog_widgets(name, alg, wrapped)
        out = os.environ.get("SPECTRALTF_SCREENSHOT_DIR")
        if out and name == "cloudmask":
            assert image.save(os.path.join(out, "dialog_cloudmask.png"), "PNG")
        dialog.close()
    finally:
        if layer is not None:
            QgsProject.instance().removeMapLayer(layer.id())


def _widget(wrapper):
    widget = wrapper.wrappedWidget() if hasattr(wrapper, "wrappedWidget") else None
    return widget if widget is not None else wrapper.widget  # C++ wrappers, or the Python MODEL widget


def _check_dialog_widgets(name, alg, wrapped):
    """What a GIS user fills: MODEL is a list of the task's registered models, one raster where one is
    expected, advanced (mode-specific) parameters collapsed in the Advanced group."""
    from qgis.PyQt.QtWidgets import QComboBox

    from spectral_transformers.runtime.parameters import TASKS

    task = TASKS[name]
    for p in task.params:
        widget = _widget(wrapped[p.name])
        if p.kind == "model":
            combos = [widget] if isinstance(widget, QComboBox) else widget.findChildren(QComboBox)
            assert combos, f"{name}: MODEL is not a drop-down"
            items = [combos[0].itemText(i) for i in range(combos[0].count())]
            assert p.default in items, (name, items)
        parent, in_advanced = widget.parentWidget(), False
        while parent is not None:
            in_advanced |= parent.objectName() == "grpAdvanced"  # the dialog's collapsed Advanced group
            parent = parent.parentWidget()
        assert in_advanced == p.advanced, f"{name}: {p.name} advanced={p.advanced} but in_advanced={in_advanced}"
    if name in ("segment", "attentionmaps"):
        assert alg.parameterDefinition("INPUT").type() == "raster"


def test_modeler_child_takes_a_model_path_or_an_unlisted_id(processing_provider, tmp_path):
    """In the graphical modeler the MODEL drop-down still accepts a static .onnx path or an id that is
    not (yet) registered: the model validates, and the run reaches the runtime's own model check."""
    import processing
    from qgis.core import (QgsProcessingException, QgsProcessingFeedback, QgsProcessingModelAlgorithm, QgsProcessingModelChildAlgorithm,
                           QgsProcessingModelChildParameterSource)

    from support import shared

    for value, expected in ((str(tmp_path / "missing.onnx"), "MODEL: model file not found"),
                            ("no-such-model", "MODEL: no model with id 'no-such-model'")):
        model = QgsProcessingModelAlgorithm("m", "g")
        child = QgsProcessingModelChildAlgorithm("spectraltf:cloudmask")
        child.setChildId("cm")
        child.addParameterSources("INPUT", [QgsProcessingModelChildParameterSource.fromStaticValue(
            str(shared("emit", "emit_l2a_rfl_10x10.img")))])
        child.addParameterSources("MODEL", [QgsProcessingModelChildParameterSource.fromStaticValue(value)])
        for name, static in (("DEVICE", "cpu"), ("INPUT_TYPE", "auto")):
            child.addParameterSources(name, [QgsProcessingModelChildParameterSource.fromStaticValue(static)])
        child.addParameterSources("OUTPUT", [QgsProcessingModelChildParameterSource.fromStaticValue(
            str(tmp_path / "m.tif"))])
        model.addChildAlgorithm(child)
        ok, issues = model.validateChildAlgorithm("cm")
        assert ok, issues
        feedback = QgsProcessingFeedback()
        with pytest.raises(QgsProcessingException) as raised:
            processing.run(model, {}, feedback=feedback)
        # QGIS 3.22 logs the child's error in the feedback; 3.44 only raises it
        said = feedback.textLog() + "\n" + str(raised.value)
        assert expected in said, said
        assert not (tmp_path / "m.tif").exists()


def test_model_widget_in_batch_and_modeler_dialogs(qgis_app, dialog_iface, processing_provider):
    """The batch dialog shows the MODEL drop-down in its table; the modeler's child dialog uses QGIS's own
    string widget (static value, model input or algorithm output) and stores what is typed there."""
    from processing.gui.BatchAlgorithmDialog import BatchAlgorithmDialog
    from processing.modeler.ModelerParametersDialog import ModelerParametersDialog
    from qgis.core import QgsApplication, QgsProcessingModelAlgorithm
    from qgis.gui import QgsProcessingModelerParameterWidget
    from qgis.PyQt.QtWidgets import QComboBox

    from spectral_transformers.gui.model_widget import ModelWidgetWrapper

    alg = QgsApplication.processingRegistry().createAlgorithmById("spectraltf:cloudmask")
    batch = BatchAlgorithmDialog(alg)
    batch.show()
    QgsApplication.processEvents()
    combos = batch.findChildren(QComboBox)
    assert any(c.isEditable() and c.findText("spectf-cloud-v0.1.0") >= 0 for c in combos)
    batch.close()

    model = QgsProcessingModelAlgorithm("m", "g")
    dialog = ModelerParametersDialog(alg, model)
    wrapper = dialog.widget.widget.wrappers["MODEL"]
    assert isinstance(wrapper, QgsProcessingModelerParameterWidget) and not isinstance(wrapper, ModelWidgetWrapper)
    dialog.close()
