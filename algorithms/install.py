"""Model manager and dependency installer as Processing algorithms (thin adapters):

- ``spectraltf:installdependencies`` — ONNX Runtime (+ the ukis-csmask models) for QGIS's Python,
  into the plugin's data folder (:class:`..runtime.deps.Installer`);
- ``spectraltf:installmodel`` — a model from a URL or a file into the user model folder
  (:func:`..runtime.model_install.install_model`).

Both also open from Plugins ▸ Spectral Transformers (``gui/menu.py``) and run headless with
``qgis_process run``. Neither needs ONNX Runtime to be installed.
"""
from qgis.core import (
    QgsProcessingOutputFolder,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFile,
    QgsProcessingParameterString,
)

from ..qgis_compat import FILE_BEHAVIOR_FOLDER, PARAMETER_FLAG_ADVANCED
from ..runtime import deps, model_install
from .base import SpectralAlgorithm, enum_value, static_enum

DEVICES = ("auto", "cpu", "cuda")


def _advanced(param):
    param.setFlags(param.flags() | PARAMETER_FLAG_ADVANCED)
    return param


class InstallDependenciesAlgorithm(SpectralAlgorithm):
    NAME = "installdependencies"
    DISPLAY = "Install dependencies (ONNX Runtime, ukis-csmask models)"
    GROUP = "models"
    NEEDS_ONNXRUNTIME = False

    BUILD = "BUILD"
    UKIS = "UKIS"
    WHEELS = "WHEELS"
    INDEX_URL = "INDEX_URL"
    FOLDER = "FOLDER"
    INSTALLED = "INSTALLED"

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(static_enum(self.BUILD, "ONNX Runtime build (auto: CUDA build when an NVIDIA GPU is "
                                      "present)", DEVICES, "auto"))
        self.addParameter(QgsProcessingParameterBoolean(
            self.UKIS, "Also install the ukis-csmask cloud and cloud-shadow models (about 160 MB)", True))
        self.addParameter(_advanced(QgsProcessingParameterFile(
            self.WHEELS, "Install offline from this folder of wheel files", behavior=FILE_BEHAVIOR_FOLDER,
            optional=True)))
        self.addParameter(_advanced(QgsProcessingParameterString(
            self.INDEX_URL, "Package index URL (a mirror; default: PyPI)", optional=True)))
        self.addOutput(QgsProcessingOutputFolder(self.FOLDER, "Folder the packages were installed into"))
        self.addOutput(QgsProcessingOutputString(self.INSTALLED, "Installed packages"))

    def shortHelpString(self):  # noqa: N802
        return (
            "<p>Installs <b>ONNX Runtime</b>, which every model algorithm needs, for the Python that QGIS runs, "
            "and (by default) the <b>ukis-csmask</b> cloud/cloud-shadow models (Apache-2.0, DLR).</p>"
            "<p>Packages go to the <i>spectral_transformers</i> folder of your QGIS profile, outside the "
            "plugin folder, so upgrading the plugin keeps them; QGIS's own packages (NumPy, GDAL) are never "
            "replaced: NumPy is pinned to the version QGIS runs. pip comes from QGIS's Python, or is run "
            "from a pip wheel when that Python has none. Restart QGIS afterwards.</p>"
            "<p><b>ONNX Runtime build</b>: auto picks onnxruntime-gpu when an NVIDIA GPU is present, else "
            "onnxruntime; the two are never installed side by side. <b>Install offline from this folder</b>: a "
            "folder of .whl files (e.g. made with <code>pip download</code> on a connected machine). "
            "<b>Package index URL</b>: a PyPI mirror.</p>")

    def execute(self, parameters, context, monitor):
        installer = deps.Installer(
            device=enum_value(self, parameters, self.BUILD, context, DEVICES),
            with_ukis=self.parameterAsBool(parameters, self.UKIS, context),
            wheel_dir=self.parameterAsFile(parameters, self.WHEELS, context) or None,
            index_url=self.parameterAsString(parameters, self.INDEX_URL, context).strip() or None)
        installed = installer.run(monitor)
        monitor.info("Restart QGIS (or start a new qgis_process) to use them.")
        return {self.FOLDER: installer.target, self.INSTALLED: ", ".join(installed)}


class InstallModelAlgorithm(SpectralAlgorithm):
    NAME = "installmodel"
    DISPLAY = "Install model"
    GROUP = "models"
    NEEDS_ONNXRUNTIME = False

    SOURCE = model_install.SOURCE
    CARD = model_install.CARD
    SHA256 = model_install.SHA256
    OVERWRITE = "OVERWRITE"
    FOLDER = "FOLDER"
    MODEL_IDS = "MODEL_IDS"
    COUNT = "COUNT"

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterString(
            self.SOURCE, "Model: URL or file (.onnx with its card, or a .zip of models)"))
        self.addParameter(QgsProcessingParameterString(
            self.SHA256, "SHA-256 of the file (checked when given)", optional=True))
        self.addParameter(_advanced(QgsProcessingParameterString(
            self.CARD, "Model card: URL or file (only for an .onnx without an embedded or sidecar card)",
            optional=True)))
        self.addParameter(QgsProcessingParameterBoolean(
            self.OVERWRITE, "Replace an installed model with the same id", False))
        self.addOutput(QgsProcessingOutputFolder(self.FOLDER, "Model folder"))
        self.addOutput(QgsProcessingOutputString(self.MODEL_IDS, "Installed model ids"))
        self.addOutput(QgsProcessingOutputNumber(self.COUNT, "Number of installed models"))

    def shortHelpString(self):  # noqa: N802
        return (
            "<p>Installs a model into your model folder (the <i>spectral_transformers/models</i> folder of "
            "your QGIS profile, kept across plugin upgrades), where every algorithm's <b>Model</b> finds it "
            "by id.</p>"
            "<p><b>Model</b>: an http(s):// or file:// URL or a local path of an <b>.onnx</b> file (with its "
            "model card embedded, or the card <i>name</i>.json beside it) or of a <b>.zip</b> holding models and "
            "their cards. <b>SHA-256</b>: when given, the downloaded file must match it. <b>Model card</b>: "
            "for an .onnx whose card is a separate download. <b>Replace an installed model</b>: otherwise an "
            "id that is already installed is refused.</p>"
            "<p>The card is validated, the files it names must be present and the graph is test-loaded with "
            "ONNX Runtime before anything is copied; on any error or cancel nothing is installed. "
            "See <i>List models</i> for what is installed.</p>")

    def execute(self, parameters, context, monitor):
        installed = model_install.install_model(
            self.parameterAsString(parameters, self.SOURCE, context),
            card=self.parameterAsString(parameters, self.CARD, context),
            sha256=self.parameterAsString(parameters, self.SHA256, context),
            overwrite=self.parameterAsBool(parameters, self.OVERWRITE, context),
            monitor=monitor)
        return {self.FOLDER: deps.models_dir(), self.MODEL_IDS: ", ".join(m["id"] for m in installed),
                self.COUNT: len(installed)}
