"""``spectraltf:cloudmask`` — SpecTf cloud mask for imaging spectrometers (adapter over
:func:`..runtime.tasks.cloudmask`; parameters declared in :data:`..runtime.parameters.CLOUDMASK`)."""
from .base import SpectralAlgorithm
from .output_styles import style_output


class CloudMaskAlgorithm(SpectralAlgorithm):
    TASK = "cloudmask"
    NEEDS_ONNXRUNTIME = True

    def style_outputs(self, context, results, kwargs):
        style_output(context, results["OUTPUT"], "Cloud mask (SpecTf)")
        if results.get("OUTPUT_PROBABILITY"):
            style_output(context, results["OUTPUT_PROBABILITY"], "Cloud probability (SpecTf)")
