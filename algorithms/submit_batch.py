"""``spectraltf:submitbatch`` — run one algorithm over a CSV list of scenes on Dask (adapter over
:func:`..runtime.tasks.submitbatch`, i.e. the batch runner's :func:`..batch.submit.submit`; parameters
declared in :data:`..runtime.parameters.SUBMIT_BATCH`). Dask is imported only when it runs: without
Dask in QGIS's Python the run stops with how to install it."""
from .base import SpectralAlgorithm


class SubmitBatchAlgorithm(SpectralAlgorithm):
    TASK = "submitbatch"
