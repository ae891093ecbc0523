"""Every algorithm opens in QGIS's Processing dialog (the Toolbox), with its help text.

With ``SPECTRALTF_SCREENSHOT_DIR`` set (``make docs-images``), the cloud-mask dialog is also saved as a
PNG for the README, with a real EMIT raster loaded as its input.
"""
import os

import pytest

from support import shared

ALGORITHMS = ["toareflectance", "cloudmask", "segment", "attentionmaps", "orthorectify", "models", "installmodel",
              "installdependencies"]


@pytest.fixture
def dialog_iface(qgis_iface, monkeypatch):
    from qgis.gui import QgsBrowserGuiModel

    model = QgsBrowserGuiModel()  # pytest-qgis's stub iface has no browser model
    monkeypatch.setattr(qgis_iface, "browserModel", lambda: model, raising=False)
    return qgis_iface


@pytest.mark.parametrize("name", ALGORITHMS)
def test_algorithm_dialog_builds(qgis_app, dialog_iface, processing_provider, name, tmp_path):
    from processing.gui.AlgorithmDialog import AlgorithmDialog
    from qgis.core import QgsApplication, QgsProject, QgsRasterLayer

    alg = QgsApplication.processingRegistry().createAlgorithmById(f"spectraltf:{name}")
    assert alg is not None
    assert len(alg.shortHelpString()) > 200, "complete help text"
    layer = None
    if name == "cloudmask":
        layer = QgsRasterLayer(str(shared("emit", "emit_l2a_rfl_10x10.img")), "EMIT L2A reflectance")
        assert layer.isValid()
        QgsProject.instance().addMapLayer(layer)
    try:
        dialog = AlgorithmDialog(alg)
        dialog.resize(960, 720)
        dialog.show()
        for _ in range(30):
            QgsApplication.processEvents()
        image = dialog.grab()
        assert image.width() > 500
        wrapped = dialog.mainWidget().wrappers if hasattr(dialog.mainWidget(), "wrappers") else {}
        for definition in alg.parameterDefinitions():
            assert definition.name() in wrapped, f"no widget for {definition.name()}"
        out = os.environ.get("SPECTRALTF_SCREENSHOT_DIR")
        if out and name == "cloudmask":
            assert image.save(os.path.join(out, "dialog_cloudmask.png"), "PNG")
        dialog.close()
    finally:
        if layer is not None:
            QgsProject.instance().removeMapLayer(layer.id())
