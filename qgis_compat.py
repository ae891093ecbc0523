"""QGIS / Qt names that moved between QGIS 3.22 and QGIS 4 (Qt6), resolved once.

QGIS 3.36 introduced scoped enums in the ``Qgis`` namespace (``Qgis.ProcessingSourceType.Raster``
instead of ``QgsProcessing.TypeRaster``); QGIS 4 with PyQt6 removes the old unscoped names, and
PyQt6 accepts Qt enums only fully scoped (``QMessageBox.StandardButton.Yes``). Plugin code imports
the names below and never spells either form itself, so one plugin runs on 3.22 … 4.x.
"""
from qgis.core import (
    Qgis,
    QgsMapLayer,
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsTask,
)
from qgis.PyQt.QtWidgets import QMessageBox


def _pick(*candidates):
    """The first ``(owner, "Dotted.path")`` that resolves; the newest spelling comes first."""
    for owner, path in candidates:
        value = owner
        try:
            for part in path.split("."):
                value = getattr(value, part)
        except AttributeError:
            continue
        return value
    raise AttributeError(f"none of {[path for _, path in candidates]} exists in this QGIS")


NUMBER_DOUBLE = _pick((Qgis, "ProcessingNumberParameterType.Double"),
                      (QgsProcessingParameterNumber, "Type.Double"), (QgsProcessingParameterNumber, "Double"))
NUMBER_INTEGER = _pick((Qgis, "ProcessingNumberParameterType.Integer"),
                       (QgsProcessingParameterNumber, "Type.Integer"), (QgsProcessingParameterNumber, "Integer"))
SOURCE_RASTER = _pick((Qgis, "ProcessingSourceType.Raster"),
                      (QgsProcessing, "SourceType.TypeRaster"), (QgsProcessing, "TypeRaster"))
FILE_BEHAVIOR_FILE = _pick((Qgis, "ProcessingFileParameterBehavior.File"),
                           (QgsProcessingParameterFile, "Behavior.File"), (QgsProcessingParameterFile, "File"))
FILE_BEHAVIOR_FOLDER = _pick((Qgis, "ProcessingFileParameterBehavior.Folder"),
                             (QgsProcessingParameterFile, "Behavior.Folder"), (QgsProcessingParameterFile, "Folder"))
PARAMETER_FLAG_OPTIONAL = _pick((Qgis, "ProcessingParameterFlag.Optional"),
                                (QgsProcessingParameterDefinition, "Flag.FlagOptional"),
                                (QgsProcessingParameterDefinition, "FlagOptional"))
PARAMETER_FLAG_ADVANCED = _pick((Qgis, "ProcessingParameterFlag.Advanced"),
                                (QgsProcessingParameterDefinition, "Flag.FlagAdvanced"),
                                (QgsProcessingParameterDefinition, "FlagAdvanced"))
PARAMETER_FLAG_OPTIONAL = _pick((Qgis, "ProcessingParameterFlag.Optional"),
                                (QgsProcessingParameterDefinition, "Flag.FlagOptional"),
                                (QgsProcessingParameterDefinition, "FlagOptional"))
ALGORITHM_FLAG_NO_THREADING = _pick((Qgis, "ProcessingAlgorithmFlag.NoThreading"),
                                    (QgsProcessingAlgorithm, "Flag.FlagNoThreading"),
                                    (QgsProcessingAlgorithm, "FlagNoThreading"))
MESSAGE_INFO = _pick((Qgis, "MessageLevel.Info"), (Qgis, "Info"))
MESSAGE_WARNING = _pick((Qgis, "MessageLevel.Warning"), (Qgis, "Warning"))
MESSAGE_CRITICAL = _pick((Qgis, "MessageLevel.Critical"), (Qgis, "Critical"))
MESSAGE_SUCCESS = _pick((Qgis, "MessageLevel.Success"), (Qgis, "Success"))
STYLE_ALL_CATEGORIES = _pick((QgsMapLayer, "StyleCategory.AllStyleCategories"),
                             (QgsMapLayer, "AllStyleCategories"))
TASK_CAN_CANCEL = _pick((QgsTask, "Flag.CanCancel"), (QgsTask, "CanCancel"))
TASK_RUNNING = _pick((QgsTask, "TaskStatus.Running"), (QgsTask, "Running"))
BUTTON_YES = _pick((QMessageBox, "StandardButton.Yes"), (QMessageBox, "Yes"))
BUTTON_NO = _pick((QMessageBox, "StandardButton.No"), (QMessageBox, "No"))
