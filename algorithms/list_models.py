"""``spectraltf:models`` — list every registered model with its card (adapter over
:func:`..runtime.tasks.models`; parameters declared in :data:`..runtime.parameters.LIST_MODELS`)."""
from .base import SpectralAlgorithm


class ListModelsAlgorithm(SpectralAlgorithm):
    TASK = "models"
