"""The MODEL widget: a drop-down of the registered models of the algorithm's task that also takes
any id or an ``.onnx`` path (typed, pasted or browsed).

``MODEL`` is a string parameter, so scripts, ``qgis_process``, batch runs and the graphical modeler
pass any id or path exactly as before; only the dialogs show this widget (named in the parameter's
``widget_wrapper`` metadata). In the modeler it hands over to QGIS's own string widget (static value,
model input or another algorithm's output).
"""
from processing.gui.wrappers import DIALOG_BATCH, DIALOG_MODELER, WidgetWrapper, dialogTypes
from qgis.gui import QgsGui
from qgis.PyQt.QtWidgets import QComboBox, QFileDialog, QHBoxLayout, QToolButton, QWidget


class ModelWidgetWrapper(WidgetWrapper):
    """Editable combo box of ``choices`` (the registered model ids, default first) plus a browse button."""

    def __new__(cls, param, dialog, row=0, col=0, **kwargs):
        if dialogTypes.get(dialog.__class__.__name__) == DIALOG_MODELER:
            return QgsGui.processingGuiRegistry().createModelerParameterWidget(
                dialog.model, dialog.childId, param, dialog.context)
        return super().__new__(cls)

    def __init__(self, param, dialog, row=0, col=0, choices=(), **kwargs):
        self._choices = list(choices)
        super().__init__(param, dialog, row, col, **kwargs)

    def createWidget(self, **kwargs):  # noqa: N802 (processing API)
        self.combo = QComboBox()
        self.combo.setEditable(True)
        self.combo.setToolTip("A registered model (see 'List models'), another id, or the path of an .onnx file.")
        for model_id in self._choices:
            self.combo.addItem(model_id, model_id)
        if self.dialogType == DIALOG_BATCH:
            return self.combo
        widget = QWidget()
        layout = QHBoxLayout(widget)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.combo, 1)
        browse = QToolButton()
        browse.setText("…")
        browse.setToolTip("Choose an .onnx model file")
        browse.clicked.connect(self._browse)
        layout.addWidget(browse)
        return widget

    def _browse(self):
        path, _ = QFileDialog.getOpenFileName(self.combo, "ONNX model", "", "ONNX models (*.onnx);;All files (*.*)")
        if path:
            self.combo.setEditText(path)

    def setValue(self, value):  # noqa: N802
        if value is None:
            return
        index = self.combo.findData(str(value))
        if index >= 0:
            self.combo.setCurrentIndex(index)
        else:
            self.combo.setEditText(str(value))

    def value(self):
        return self.combo.currentText().strip()
