"""``spectraltf:segment`` — tiled semantic segmentation with an ONNX model and its model card
(adapter over :func:`..runtime.tasks.segment`; parameters declared in :data:`..runtime.parameters.SEGMENT`)."""
from .base import SpectralAlgorithm
from .output_styles import style_output


class SegmentAlgorithm(SpectralAlgorithm):
    TASK = "segment"
    NEEDS_ONNXRUNTIME = True

    def style_outputs(self, context, results, kwargs):
        model_id = results["_result"].model_id
        style_output(context, results["OUTPUT"], f"Classes ({model_id})")
        if results.get("OUTPUT_CONFIDENCE"):
            style_output(context, results["OUTPUT_CONFIDENCE"], f"Confidence ({model_id})")
