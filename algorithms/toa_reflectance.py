"""Processing algorithm ``spectraltf:toareflectance``: radiance → TOA reflectance (adapter over
:func:`..runtime.tasks.toareflectance`; parameters declared in :data:`..runtime.parameters.TOA`)."""
from .base import SpectralAlgorithm


class ToaReflectanceAlgorithm(SpectralAlgorithm):
    TASK = "toareflectance"
