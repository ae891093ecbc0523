"""Model manager and dependency installer as Processing algorithms (adapters over
:func:`..runtime.tasks.installdependencies` and :func:`..runtime.tasks.installmodel`; parameters
declared in :data:`..runtime.parameters.INSTALL_DEPENDENCIES` / ``INSTALL_MODEL``):

- ``spectraltf:installdependencies`` — ONNX Runtime (+ the ukis-csmask models) for QGIS's Python,
  into the plugin's data folder (:class:`..runtime.deps.Installer`);
- ``spectraltf:installmodel`` — a model from a URL or a file into the user model folder
  (:func:`..runtime.models.model_install.install_model`).

Both also open from Plugins ▸ Spectral Transformers (``gui/menu.py``) and run headless with
``qgis_process run``. Neither needs ONNX Runtime to be installed.
"""
from .base import SpectralAlgorithm


class InstallDependenciesAlgorithm(SpectralAlgorithm):
    TASK = "installdependencies"


class InstallModelAlgorithm(SpectralAlgorithm):
    TASK = "installmodel"
