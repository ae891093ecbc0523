"""QGIS 4 (Qt6) readiness, checked statically over every Python file of the plugin and its tests.

QGIS 4 cannot be installed on the machines this suite runs on (Debian packages no Qt6 QGIS), so this
is the check that stands in for running it. The source is parsed (never imported); each dotted name
built from an import of ``qgis.*`` is looked up in the QGIS this suite runs on, which tells an enum
value spelled unscoped (``Qgis.Info``, ``QMessageBox.Yes``: gone in PyQt6 / QGIS 4) from a scoped one
(``Qt.ConnectionType.DirectConnection``). Also refused: ``exec_()``, ``PyQt5``/``sip`` imported
directly instead of through ``qgis.PyQt``, Qt5-only classes, and the QGIS enums that 3.36 moved into
``Qgis`` spelled at their old place. ``qgis_compat.py`` is the one file allowed to spell the old names.
"""
import ast
import enum
import importlib
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
COMPAT = "qgis_compat.py"

# Enums QGIS 3.36 moved into the Qgis namespace; QGIS 4 drops the old place. qgis_compat resolves them.
MOVED = {
    ("QgsProcessing", "SourceType"): "Qgis.ProcessingSourceType",
    ("QgsProcessingParameterNumber", "Type"): "Qgis.ProcessingNumberParameterType",
    ("QgsProcessingParameterFile", "Behavior"): "Qgis.ProcessingFileParameterBehavior",
    ("QgsProcessingParameterDefinition", "Flag"): "Qgis.ProcessingParameterFlag",
    ("QgsProcessingAlgorithm", "Flag"): "Qgis.ProcessingAlgorithmFlag",
}
# Qt5 classes that Qt6 removed or moved out of the modules qgis.PyQt maps.
QT5_ONLY = {"QRegExp", "QRegExpValidator", "QDesktopWidget", "QTextCodec", "QMatrix", "QGLWidget",
            "QSound", "QLinkedList", "QStringRef"}


def _is_enum_member(value):
    if isinstance(value, enum.Enum):
        return True
    return type(type(value)).__name__ == "enumtype"  # sip's (PyQt5) enums


def _is_enum_type(value):
    return isinstance(value, type) and (issubclass(value, enum.Enum) or type(value).__name__ == "enumtype")


class _Checker(ast.NodeVisitor):
    def __init__(self, allow_old_names):
        self.allow_old_names = allow_old_names
        self.bound = {}  # local name -> object from qgis.*
        self.problems = []

    def add(self, node, text):
        self.problems.append((node.lineno, text))

    def visit_Import(self, node):
        for alias in node.names:
            top = alias.name.split(".")[0]
            if top in ("PyQt5", "PyQt6", "sip"):
                self.add(node, f"`import {alias.name}`: import it from qgis.PyQt")
            elif top == "qgis":
                try:
                    module = importlib.import_module(alias.name if alias.asname else top)
                except ImportError:
                    continue
                self.bound[alias.asname or top] = module

    def visit_ImportFrom(self, node):
        module_name = node.module or ""
        top = module_name.split(".")[0]
        if node.level == 0 and top in ("PyQt5", "PyQt6", "sip"):
            self.add(node, f"`from {module_name} import ...`: import it from qgis.PyQt")
            return
        for alias in node.names:
            if alias.name in QT5_ONLY:
                self.add(node, f"{alias.name} is Qt5-only (removed in Qt6)")
        if node.level or top != "qgis":
            return
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            return
        for alias in node.names:
            value = getattr(module, alias.name, None)
            if value is None:
                try:
                    value = importlib.import_module(f"{module_name}.{alias.name}")
                except ImportError:
                    continue
            self.bound[alias.asname or alias.name] = value

    def resolve(self, node):
        if isinstance(node, ast.Name):
            return self.bound.get(node.id)
        if isinstance(node, ast.Attribute):
            owner = self.resolve(node.value)
            return None if owner is None else getattr(owner, node.attr, None)
        return None

    def visit_Attribute(self, node):
        if node.attr == "exec_":
            self.add(node, "exec_(): PyQt6 has only exec()")
        owner = self.resolve(node.value)
        if owner is not None and not isinstance(owner, type(ast)) and node.attr[:1].isupper():
            dotted = f"{ast.unparse(node.value)}.{node.attr}"
            value = getattr(owner, node.attr, None)
            owner_name = getattr(owner, "__name__", "")
            if not self.allow_old_names:
                if value is None and not hasattr(owner, node.attr):
                    self.add(node, f"{dotted} does not exist in this QGIS: resolve it in {COMPAT}")
                elif _is_enum_member(value) and not _is_enum_type(owner):
                    self.add(node, f"{dotted} is an unscoped enum value (gone in PyQt6/QGIS 4): "
                                   f"use its enum's scoped name or {COMPAT}")
                elif (owner_name, node.attr) in MOVED:
                    self.add(node, f"{dotted} moved to {MOVED[owner_name, node.attr]} in QGIS 3.36 "
                                   f"(gone in QGIS 4): use {COMPAT}")
        self.generic_visit(node)

    def visit_Name(self, node):
        if node.id in QT5_ONLY and node.id not in self.bound:
            self.add(node, f"{node.id} is Qt5-only (removed in Qt6)")


def qt6_problems(source, filename="<snippet>"):
    """``[(line, message)]`` for everything in ``source`` that breaks or warns under QGIS 4 / Qt6."""
    checker = _Checker(allow_old_names=Path(filename).name == COMPAT)
    checker.visit(ast.parse(source, filename))
    return sorted(checker.problems)


#: Folders that hold no plugin code: local environments, build outputs, installed dependencies.
NOT_SOURCE = {".git", ".venv", "build", "out", "dist", "ext-libs", "__pycache__", ".pytest_cache", ".hypothesis"}


def plugin_python_files():
    """Every .py file of the repository (walked, so a copy without .git works too)."""
    found = []
    for root, dirs, names in os.walk(REPO):
        dirs[:] = [d for d in dirs if d not in NOT_SOURCE and not d.startswith(".venv")]  # .venv-terratorch …
        found += [Path(root) / n for n in names if n.endswith(".py")]
    return sorted(found)


def test_plugin_code_is_qt6_ready():
    files = plugin_python_files()
    assert len(files) > 50 and REPO / "plugin.py" in files and REPO / "qgis_compat.py" in files
    report = [f"{path.relative_to(REPO)}:{line}: {text}"
              for path in files for line, text in qt6_problems(path.read_text(encoding="utf-8"), str(path))]
    assert not report, "QGIS 4 / Qt6 problems:\n" + "\n".join(report)


BAD = """\
from qgis.core import Qgis, QgsProcessing, QgsProcessingParameterNumber, QgsTask
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import QMessageBox, QDialog
from PyQt5.QtGui import QColor
import sip
level = Qgis.Info
kind = QgsProcessing.TypeRaster
number = QgsProcessingParameterNumber.Double
moved = QgsProcessing.SourceType.TypeRaster
task = QgsTask.CanCancel
conn = Qt.DirectConnection
answer = QMessageBox.Yes | QMessageBox.No
QDialog().exec_()
pattern = QRegExp("a+")
"""


def test_checker_finds_each_qt5_only_use():
    problems = qt6_problems(BAD)
    lines = {line for line, _ in problems}
    assert lines == {4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14}, problems
    text = "\n".join(message for _, message in problems)
    for needle in ("Qgis.Info is an unscoped enum value", "QgsProcessing.TypeRaster is an unscoped",
                   "Qt.DirectConnection is an unscoped", "QMessageBox.No is an unscoped",
                   "QgsProcessing.SourceType moved to Qgis.ProcessingSourceType", "exec_()",
                   "from PyQt5.QtGui", "`import sip`", "QRegExp is Qt5-only"):
        assert needle in text, (needle, text)


def test_checker_accepts_scoped_names_and_the_compat_module():
    good = """\
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import QMessageBox, QDialog
from qgis.core import QgsTask, QgsApplication
from ..qgis_compat import MESSAGE_INFO, SOURCE_RASTER
conn = Qt.ConnectionType.DirectConnection
answer = QMessageBox.StandardButton.Yes
task = QgsTask.Flag.CanCancel
registry = QgsApplication.processingRegistry()
QDialog().exec()
"""
    assert qt6_problems(good) == []
    compat = (REPO / COMPAT).read_text(encoding="utf-8")
    assert qt6_problems(compat, COMPAT) == []
    # The compat module may spell old names, nobody else may.
    assert qt6_problems("from qgis.core import Qgis\nx = Qgis.Info\n", COMPAT) == []


def test_metadata_accepts_qgis_4():
    meta = dict(line.split("=", 1) for line in (REPO / "metadata.txt").read_text().splitlines() if "=" in line)
    assert meta["qgisMinimumVersion"] == "3.22"
    assert meta["qgisMaximumVersion"] == "4.99"
