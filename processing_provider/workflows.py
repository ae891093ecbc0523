"""The shipped graphical-modeler workflows (``resources/workflows/*.model3``) as Toolbox algorithms.

Each file becomes ``spectraltf:<file name>`` in the group *Workflows* of the provider, so users find
it in the Processing Toolbox (and can open it in the Model Designer from there: right-click ▸ Edit
Model opens a copy) instead of hunting for the file inside the plugin folder.
"""
import glob
import os

from qgis.core import QgsMessageLog, QgsProcessing, QgsProcessingModelAlgorithm

from ..qgis_compat import ALGORITHM_FLAG_NO_THREADING, MESSAGE_WARNING, PARAMETER_FLAG_OPTIONAL as FLAG_OPTIONAL

FOLDER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "resources", "workflows")
GROUP, GROUP_ID = "Workflows", "workflows"


class WorkflowAlgorithm(QgsProcessingModelAlgorithm):
    """A ``.model3`` file under a stable id (its file name) and the provider's *Workflows* group."""

    def __init__(self, path):
        super().__init__()
        self.path = path
        self._id = os.path.splitext(os.path.basename(path))[0]
        self.loaded = self.fromFile(path)
        self._optional_outputs()

    def reload(self):
        """Read the file again: child steps resolve (and outputs appear) only once the provider's own
        algorithms are in the registry, i.e. after the provider has loaded."""
        self.loaded = self.fromFile(self.path)
        self._optional_outputs()
        return self.loaded

    def _optional_outputs(self):
        """Model outputs marked non-mandatory stay optional in the dialog even where the child step's
        own output is mandatory (QGIS copies the child's flag): an unset one goes to a temporary file."""
        optional = set()
        for child in self.childAlgorithms().values():
            for out in child.modelOutputs().values():
                if not out.isMandatory():
                    optional.add(f"{child.childId()}:{out.name()}")
        for definition in self.destinationParameterDefinitions():
            if definition.name() in optional:
                definition.setFlags(definition.flags() | FLAG_OPTIONAL)

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 (QGIS API name)
        """An optional output left unset still has to be written by its step (the step's own output is
        mandatory, and later steps may read it): a temporary file stands in. Inputs left unset take their
        default (qgis_process and scripts pass only what they set; the steps' expressions read them)."""
        parameters = dict(parameters)
        for definition in self.parameterDefinitions():
            name = definition.name()
            if parameters.get(name) not in (None, ""):
                continue
            if definition.isDestination():
                parameters[name] = QgsProcessing.TEMPORARY_OUTPUT
            elif definition.defaultValue() is not None:  # scripts may leave inputs at their defaults
                parameters[name] = definition.defaultValue()
        return super().processAlgorithm(parameters, context, feedback)

    def flags(self):
        """QGIS 3.22 runs every model on the main thread (FlagNoThreading); these steps are all
        thread-safe Spectral Transformers algorithms, so the workflow may run as a background task."""
        flags = super().flags()
        ids = [c.algorithmId() for c in self.childAlgorithms().values()]
        if ids and all(i.startswith("spectraltf:") for i in ids):  # all run in background tasks (tested)
            flags &= ~ALGORITHM_FLAG_NO_THREADING
        return flags

    def name(self):
        return self._id

    def group(self):
        return GROUP

    def groupId(self):  # noqa: N802
        return GROUP_ID

    def createInstance(self):  # noqa: N802
        return WorkflowAlgorithm(self.path)


def workflow_algorithms(folder=FOLDER):
    """One :class:`WorkflowAlgorithm` per ``.model3`` in ``folder`` (unreadable files are logged, skipped)."""
    algs = []
    for path in sorted(glob.glob(os.path.join(folder, "*.model3"))):
        alg = WorkflowAlgorithm(path)
        if alg.loaded:
            algs.append(alg)
        else:
            QgsMessageLog.logMessage(f"Spectral Transformers: cannot read the workflow {path}", "Processing",
                                     MESSAGE_WARNING)
    return algs
