"""Make outputs look right when a dialog run loads them: layer name + QML style.

Call from an algorithm's ``run`` after the output raster is written::

    from ..runtime.pipeline import styles
    from .output_styles import style_output

    out = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
    ...write out...
    qml = styles.write_class_qml(styles.qml_path_for(out), classes)   # or write_pseudocolor_qml
    style_output(context, out, "Cloud mask (SpecTf)", qml)

The ``.qml`` beside the raster is also what QGIS loads automatically when the file is added to a
map later; the post-processor applies it explicitly (and sets the layer name) when the dialog
loads the result. Headless runs (``qgis_process``) load nothing, so this is a no-op there.
"""
import os
import threading

from qgis.core import QgsProcessingLayerPostProcessorInterface

from ..qgis_compat import STYLE_ALL_CATEGORIES
from ..runtime.pipeline.styles import qml_path_for

# Post-processors must outlive the algorithm run (QGIS keeps only a raw C++ pointer): keep
# references here. They are tiny; the oldest are dropped past a bound.
_KEEP = []
_KEEP_MAX = 512
_lock = threading.Lock()


class StylePostProcessor(QgsProcessingLayerPostProcessorInterface):
    """Applies a QML style file (and optionally a name) to the loaded layer on the main thread."""

    def __init__(self, qml_path, layer_name=None, output_path=None):
        super().__init__()
        self.qml_path = str(qml_path)
        self.layer_name = layer_name
        self.output_path = output_path
        self.applied = False

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802 (QGIS API name)
        if layer is None or not layer.isValid():
            return
        if self.layer_name:
            layer.setName(self.layer_name)
        message, ok = layer.loadNamedStyle(self.qml_path, categories=STYLE_ALL_CATEGORIES)
        if not ok:
            if feedback is not None:
                feedback.reportError(f"Could not apply style {self.qml_path}: {message}", fatalError=False)
            return
        layer.triggerRepaint()
        self.applied = True


def _keep(obj):
    with _lock:
        _KEEP.append(obj)
        if len(_KEEP) > _KEEP_MAX:
            del _KEEP[: len(_KEEP) - _KEEP_MAX]


def style_output(context, output_path, layer_name=None, qml_path=None):
    """Give the output layer ``output_path`` a name and a QML style when the run loads it.

    ``qml_path`` defaults to the style beside the output (:func:`~..runtime.pipeline.styles.qml_path_for`).
    Returns the post-processor, or ``None`` when the output is not loaded on completion (headless
    runs, or "Open output file after running" unchecked)."""
    output_path = str(output_path)
    if context is None or not context.willLoadLayerOnCompletion(output_path):
        return None
    details = context.layerToLoadOnCompletionDetails(output_path)
    if layer_name:
        details.name = layer_name
        details.forceName = True
    processor = StylePostProcessor(qml_path or qml_path_for(output_path), layer_name, output_path)
    _keep(processor)
    details.setPostProcessor(processor)
    return processor


def name_after_input(context, results, input_name):
    """Append the input's name to the layer name of every output that a dialog run loads
    ("Cloud mask (SpecTf)" → "Cloud mask (SpecTf) — scene_042"), so two runs read apart in the
    Layers panel. Called once per run by the algorithm base class."""
    if context is None or not input_name:
        return []
    renamed = []
    for value in (results or {}).values():
        if not isinstance(value, str) or not value or not context.willLoadLayerOnCompletion(value):
            continue
        details = context.layerToLoadOnCompletionDetails(value)
        base = details.name or os.path.splitext(os.path.basename(value))[0]
        if input_name in base:
            continue
        details.name = f"{base} — {input_name}"
        details.forceName = True
        processor = next((p for p in _KEEP if getattr(p, "layer_name", None) == base
                          and getattr(p, "output_path", None) == value), None)
        if processor is not None:
            processor.layer_name = details.name
        renamed.append(details.name)
    return renamed
