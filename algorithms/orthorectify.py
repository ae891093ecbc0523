"""Processing algorithm ``spectraltf:orthorectify``: sensor geometry → map grid with an EMIT GLT
(adapter over :func:`..runtime.tasks.orthorectify`; parameters declared in
:data:`..runtime.parameters.ORTHORECTIFY`)."""
from .base import SpectralAlgorithm


class OrthorectifyAlgorithm(SpectralAlgorithm):
    TASK = "orthorectify"
