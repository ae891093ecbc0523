"""Processing algorithm ``spectraltf:toareflectance``: radiance → TOA reflectance (adapter over
:func:`..runtime.tasks.toareflectance`; parameters declared in :data:`..runtime.parameters.TOA`)."""
from .base import SpectralAlgorithm
from .output_styles import style_output


class ToaReflectanceAlgorithm(SpectralAlgorithm):
    TASK = "toareflectance"

    def style_outputs(self, context, results, kwargs):
        # the true-colour .qml was written beside the raster by the runtime (committed with it)
        style_output(context, results["OUTPUT"], "TOA reflectance")
