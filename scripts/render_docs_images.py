"""Render the README pictures with QGIS itself (run by `make docs-images` through scripts/docs_images.sh).

Usage: render_docs_images.py OUT_DIR IMAGES_DIR

Reads the real outputs that docs_images.sh produced in OUT_DIR and writes PNGs to IMAGES_DIR:
- maps rendered by ``QgsMapRendererParallelJob`` (each layer styled by the QML the algorithm wrote);
- screenshots of the cloud-mask and *Install model* (model manager) Processing dialogs.
The plugin is imported from ``SPECTRALTF_PLUGIN_DIR`` (the ZIP-installed copy made by
``scripts/zip_profile.sh``).
"""
import os
import sys

from qgis.core import (
    QgsApplication,
    QgsMapRendererParallelJob,
    QgsMapSettings,
    QgsMultiBandColorRenderer,
    QgsRasterLayer,
    QgsContrastEnhancement,
)
from qgis.PyQt.QtCore import QSize
from qgis.PyQt.QtGui import QColor


def load(path, name, qml=None):
    layer = QgsRasterLayer(path, name)
    if not layer.isValid():
        raise SystemExit(f"cannot load {path}")
    style = qml or os.path.splitext(path)[0] + ".qml"
    if os.path.exists(style):
        layer.loadNamedStyle(style)
    return layer


def rgb(path, name, bands, limits=None):
    """True-colour composite with a 2–98 % stretch, or fixed (min, max) ``limits``."""
    layer = QgsRasterLayer(path, name)
    renderer = QgsMultiBandColorRenderer(layer.dataProvider(), *bands)
    for setter, band in zip((renderer.setRedContrastEnhancement, renderer.setGreenContrastEnhancement,
                             renderer.setBlueContrastEnhancement), bands):
        ce = QgsContrastEnhancement(layer.dataProvider().dataType(band))
        ce.setContrastEnhancementAlgorithm(QgsContrastEnhancement.ContrastEnhancementAlgorithm.StretchToMinimumMaximum)
        lo, hi = limits or _percentiles(path, band)
        ce.setMinimumValue(lo)
        ce.setMaximumValue(hi)
        setter(ce)
    layer.setRenderer(renderer)
    return layer


def _percentiles(path, band, low=2, high=98):
    """2–98 % stretch limits of one band (nodata and NaN excluded)."""
    import numpy as np
    from osgeo import gdal
    gdal.UseExceptions()

    ds = gdal.Open(path)
    b = ds.GetRasterBand(band)
    a = b.ReadAsArray().astype("float64")
    nd = b.GetNoDataValue()
    v = a[np.isfinite(a) & ((a != nd) if nd is not None else True)]
    return (float(np.percentile(v, low)), float(np.percentile(v, high))) if v.size else (0.0, 1.0)


def render(layers, png, width=480):
    """Render ``layers`` (top first) to ``png`` with QGIS's parallel map renderer."""
    extent = layers[-1].extent()
    height = max(1, int(round(width * extent.height() / max(extent.width(), 1e-9))))
    settings = QgsMapSettings()
    settings.setLayers(layers)
    settings.setDestinationCrs(layers[-1].crs())
    settings.setExtent(extent)
    settings.setOutputSize(QSize(width, height))
    settings.setBackgroundColor(QColor(255, 255, 255))
    job = QgsMapRendererParallelJob(settings)
    job.start()
    job.waitForFinished()
    job.renderedImage().save(png, "PNG")
    print(f"wrote {png}")


def band_near(path, nm):
    from osgeo import gdal
    gdal.UseExceptions()

    ds = gdal.Open(path)
    best, err = 1, 1e9
    for i in range(ds.RasterCount):
        wl = ds.GetRasterBand(i + 1).GetMetadataItem("wavelength")
        if wl and abs(float(wl) - nm) < err:
            best, err = i + 1, abs(float(wl) - nm)
    return best


def main(out_dir, images_dir):
    os.makedirs(images_dir, exist_ok=True)
    j = lambda *p: os.path.join(out_dir, *p)  # noqa: E731
    toa = j("toa_reflectance.tif")
    if os.path.exists(j("cloudmask_synthetic.tif")):
        src = j("synthetic_cloudy_toa.tif")
        render([load(j("cloudprob_synthetic.tif"), "SpecTf cloud probability")],
               os.path.join(images_dir, "cloudprob.png"))
        render([load(j("cloudmask_synthetic.tif"), "SpecTf cloud mask"),
                rgb(src, "TOA RGB", [band_near(src, 650), band_near(src, 560), band_near(src, 470)], (0.0, 0.9))],
               os.path.join(images_dir, "cloudmask.png"))
    if os.path.exists(j("segment_sentinel2.tif")):
        src = j("sentinel2_chip.tif")
        render([load(j("segment_sentinel2.tif"), "ukis-csmask classes"), rgb(src, "Sentinel-2 RGB", [3, 2, 1])],
               os.path.join(images_dir, "segmentation.png"))
    if os.path.exists(j("attention_top_wavelength.tif")):
        render([load(j("attention_top_wavelength.tif"), "Most-attended wavelength")],
               os.path.join(images_dir, "attention_top_wavelength.png"))
    if os.path.exists(j("ltae_attention.tif")):
        render([load(j("ltae_attention.tif"), "LTAE attention")], os.path.join(images_dir, "ltae_attention.png"))
    if os.path.exists(toa):  # the true-colour style spectraltf:toareflectance wrote beside it
        render([load(toa, "EMIT TOA reflectance")], os.path.join(images_dir, "toa_rgb.png"))
    if os.path.exists(j("cloud_mask.tif")) and os.path.exists(toa):  # a clear scene is visibly a result
        render([load(j("cloud_mask.tif"), "SpecTf cloud mask"), load(toa, "EMIT TOA reflectance")],
               os.path.join(images_dir, "cloudmask_clear.png"))


def grab_dialog(algorithm_id, png, layer_path=None, size=(960, 720)):
    """Open ``algorithm_id`` in QGIS's Processing dialog (as the Toolbox does) and save a screenshot."""
    from processing.gui.AlgorithmDialog import AlgorithmDialog
    from qgis.core import QgsProject

    layer = None
    if layer_path:
        layer = QgsRasterLayer(layer_path, os.path.splitext(os.path.basename(layer_path))[0])
        QgsProject.instance().addMapLayer(layer)
    alg = QgsApplication.processingRegistry().createAlgorithmById(algorithm_id)
    if alg is None:
        raise SystemExit(f"{algorithm_id} is not registered")
    dialog = AlgorithmDialog(alg)
    dialog.resize(*size)
    dialog.show()
    for _ in range(40):
        QgsApplication.processEvents()
    if not dialog.grab().save(png, "PNG"):
        raise SystemExit(f"cannot write {png}")
    print(f"wrote {png}")
    dialog.close()
    if layer is not None:
        QgsProject.instance().removeMapLayer(layer.id())


class _StubIface:
    """What the Processing dialogs ask of ``qgis.utils.iface`` outside the QGIS desktop."""

    def __init__(self):
        from qgis.gui import QgsBrowserGuiModel, QgsMapCanvas, QgsMessageBar
        from qgis.PyQt.QtWidgets import QMainWindow

        self._window = QMainWindow()
        self._canvas = QgsMapCanvas(self._window)
        self._bar = QgsMessageBar(self._window)
        self._browser = QgsBrowserGuiModel()

    def mainWindow(self):  # noqa: N802
        return self._window

    def mapCanvas(self):  # noqa: N802
        return self._canvas

    def messageBar(self):  # noqa: N802
        return self._bar

    def browserModel(self):  # noqa: N802
        return self._browser

    def activeLayer(self):  # noqa: N802
        return None

    def __getattr__(self, name):  # anything else: a harmless no-op
        return lambda *args, **kwargs: None


def _stub_iface():
    import qgis.utils

    qgis.utils.iface = _StubIface()
    return qgis.utils.iface


if __name__ == "__main__":
    app = QgsApplication([], True)
    app.initQgis()
    sys.path.append(os.path.join(QgsApplication.pkgDataPath(), "python", "plugins"))  # Processing plugin
    from processing.core.Processing import Processing

    Processing.initialize()
    # The plugin as installed from the ZIP (scripts/zip_profile.sh), not this source tree.
    plugin_dir = os.environ.get("SPECTRALTF_PLUGIN_DIR") or os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "build", "plugins")
    sys.path.insert(0, plugin_dir)
    import spectral_transformers
    from spectral_transformers.processing_provider.provider import SpectralTransformersProvider

    print(f"plugin: {os.path.dirname(spectral_transformers.__file__)}")
    provider = SpectralTransformersProvider()
    QgsApplication.processingRegistry().addProvider(provider)
    main(sys.argv[1], sys.argv[2])
    keep = _stub_iface()
    grab_dialog("spectraltf:cloudmask", os.path.join(sys.argv[2], "dialog_cloudmask.png"),
                os.environ.get("SPECTRALTF_EMIT_LAYER"))
    grab_dialog("spectraltf:installmodel", os.path.join(sys.argv[2], "dialog_installmodel.png"), size=(900, 560))
    app.exitQgis()
