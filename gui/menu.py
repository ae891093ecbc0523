"""Plugins ▸ Spectral Transformers menu: the model manager and the dependency installer.

Each entry opens the Processing dialog of the algorithm that does the work (so the desktop, the
modeler and ``qgis_process`` share one implementation): *Install model…* (``spectraltf:installmodel``),
*List models* (``spectraltf:models``), *Install dependencies…* (``spectraltf:installdependencies``),
and *Open model folder* (the user model folder in the file manager).
"""
import os

from qgis.PyQt.QtCore import QUrl
from qgis.PyQt.QtGui import QDesktopServices, QIcon
from qgis.PyQt.QtWidgets import QAction

from ..runtime import deps

MENU = "&Spectral Transformers"
ICON = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "resources", "icon.svg")
ENTRIES = (
    ("Install model…", "spectraltf:installmodel"),
    ("List models", "spectraltf:models"),
    ("Install dependencies…", "spectraltf:installdependencies"),
)


def open_algorithm_dialog(algorithm_id):
    import processing

    return processing.execAlgorithmDialog(algorithm_id, {})


def open_model_folder():
    folder = deps.models_dir()
    os.makedirs(folder, exist_ok=True)
    QDesktopServices.openUrl(QUrl.fromLocalFile(folder))
    return folder


class PluginMenu:
    def __init__(self, iface):
        self.iface = iface
        self.actions = []

    def add(self):
        parent = self.iface.mainWindow()
        for label, algorithm_id in ENTRIES:
            action = QAction(QIcon(ICON), label, parent)
            action.setObjectName(algorithm_id)
            action.triggered.connect(lambda _checked=False, a=algorithm_id: open_algorithm_dialog(a))
            self.actions.append(action)
        folder = QAction("Open model folder", parent)
        folder.setObjectName("spectraltf:modelfolder")
        folder.triggered.connect(lambda _checked=False: open_model_folder())
        self.actions.append(folder)
        for action in self.actions:
            self.iface.addPluginToMenu(MENU, action)
        return self.actions

    def remove(self):
        for action in self.actions:
            self.iface.removePluginMenu(MENU, action)
        self.actions = []
