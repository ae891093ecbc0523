"""Placeholder until the TOA algorithm lands (replaced by the real implementation)."""
from .base import SpectralAlgorithm


class ToaReflectanceAlgorithm(SpectralAlgorithm):
    NAME = "toareflectance"
    DISPLAY = "Radiance to TOA reflectance"
    GROUP = "radiometry"

    def initAlgorithm(self, config=None):
        pass
