"""``spectraltf:attentionmaps``: where a transformer looks — band attention (SpecTf) or temporal
attention (L-TAE), chosen by the model's card (adapter over :func:`..runtime.tasks.attentionmaps`;
parameters declared in :data:`..runtime.parameters.ATTENTION`)."""
from .base import SpectralAlgorithm
from .output_styles import style_output


class AttentionMapsAlgorithm(SpectralAlgorithm):
    TASK = "attentionmaps"
    NEEDS_ONNXRUNTIME = True

    def style_outputs(self, context, results, kwargs):
        if results["_mode"] == "spectral":
            style_output(context, results["OUTPUT"], "Band attention (SpecTf)")
            if results.get("OUTPUT_TOP_WAVELENGTH"):
                style_output(context, results["OUTPUT_TOP_WAVELENGTH"], "Most-attended wavelength (nm)")
        else:
            style_output(context, results["OUTPUT"], "Temporal attention (L-TAE)")
            if results.get("OUTPUT_CLASSES"):
                style_output(context, results["OUTPUT_CLASSES"], "Classes (L-TAE)")
