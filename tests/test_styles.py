"""runtime/pipeline/styles.py writes QML that QGIS 3.22 loads with the intended renderer and colours."""

import numpy as np
import pytest
from osgeo import gdal, osr

from spectral_transformers.runtime.pipeline import styles

#: A cloud mask with a shadow class (value, label, RGBA): the plugin's own mask colours.
CLOUD_MASK_CLASSES = styles.CLOUD_MASK_CLASSES


def _raster(path, array, dtype=gdal.GDT_Byte, nodata=None):
    ds = gdal.GetDriverByName("GTiff").Create(str(path), array.shape[1], array.shape[0], 1, dtype)
    ds.SetGeoTransform((500000, 60, 0, 4000000, 0, -60))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32611)
    ds.SetProjection(srs.ExportToWkt())
    band = ds.GetRasterBand(1)
    if nodata is not None:
        band.SetNoDataValue(nodata)
    band.WriteArray(array)
    ds = None
    return str(path)


def _load(raster, qml):
    from qgis.core import QgsRasterLayer

    layer = QgsRasterLayer(raster, "out")
    assert layer.isValid()
    message, ok = layer.loadNamedStyle(qml)
    assert ok, message
    return layer


def test_qml_path_for():
    assert styles.qml_path_for("/a/b/out.tif") == "/a/b/out.qml"
    assert styles.qml_path_for("mask.v1.tif") == "mask.v1.qml"


def test_cloud_mask_classes_load_as_paletted(qgis_app, tmp_path):
    raster = _raster(tmp_path / "mask.tif", np.array([[0, 1], [2, 255]], dtype=np.uint8), nodata=255)
    qml = styles.write_class_qml(styles.qml_path_for(raster), CLOUD_MASK_CLASSES)
    assert qml == str(tmp_path / "mask.qml")
    layer = _load(raster, qml)
    renderer = layer.renderer()
    assert renderer.type() == "paletted"
    assert renderer.usesBands() == [1]  # band() is deprecated since 3.38
    got = {c.value: (c.label, c.color.getRgb()) for c in renderer.classes()}
    assert got == {
        0: ("clear", styles.CLEAR_COLOR),
        1: ("cloud", styles.CLOUD_COLOR),
        2: ("cloud shadow", styles.SHADOW_COLOR),
        255: ("no data", (0, 0, 0, 0)),
    }
    # A clear scene is visibly a result and its legend swatch shows (not fully transparent); cloud
    # stands out on QGIS's white canvas.
    assert 40 <= styles.CLEAR_COLOR[3] <= 128
    assert min(styles.CLOUD_COLOR[:3]) < 200 and styles.CLOUD_COLOR[3] == 255


def test_class_qml_custom_labels_are_escaped(qgis_app, tmp_path):
    raster = _raster(tmp_path / "seg.tif", np.array([[0, 3], [3, 7]], dtype=np.uint8))
    classes = [(0, "water & <ice>", (0, 0, 255)), (3, 'crop "A"', (10, 200, 30, 128)), (7, "urban", (200, 0, 0, 255))]
    layer = _load(raster, styles.write_class_qml(tmp_path / "seg.qml", classes))
    got = {c.value: (c.label, c.color.getRgb()) for c in layer.renderer().classes()}
    assert got == {0: ("water & <ice>", (0, 0, 255, 255)), 3: ('crop "A"', (10, 200, 30, 128)),
                   7: ("urban", (200, 0, 0, 255))}


@pytest.mark.parametrize("ramp", ["viridis", "magma"])
def test_pseudocolor_loads_with_ramp_and_range(qgis_app, tmp_path, ramp):
    from qgis.PyQt.QtGui import QColor

    raster = _raster(tmp_path / "prob.tif", np.linspace(0, 1, 16, dtype=np.float32).reshape(4, 4), gdal.GDT_Float32)
    layer = _load(raster, styles.write_pseudocolor_qml(tmp_path / "prob.qml", 0.0, 1.0, ramp=ramp))
    renderer = layer.renderer()
    assert renderer.type() == "singlebandpseudocolor"
    assert renderer.usesBands() == [1]  # band() is deprecated since 3.38
    assert renderer.classificationMin() == 0.0
    assert renderer.classificationMax() == 1.0
    shader = renderer.shader().rasterShaderFunction()
    items = shader.colorRampItemList()
    assert len(items) == len(styles.RAMPS[ramp])
    assert items[0].value == 0.0 and items[-1].value == 1.0
    assert items[0].color.name() == styles.RAMPS[ramp][0]
    assert items[-1].color.name() == styles.RAMPS[ramp][-1]
    # The shader maps data values to the ramp: the middle value gets the middle stop colour.
    ok, r, g, b, a = shader.shade(0.5)
    assert ok and QColor(r, g, b).name() == styles.RAMPS[ramp][5]


def test_pseudocolor_other_band_and_explicit_colours(qgis_app, tmp_path):
    ds = gdal.GetDriverByName("GTiff").Create(str(tmp_path / "two.tif"), 3, 3, 2, gdal.GDT_Float32)
    ds.SetGeoTransform((0, 1, 0, 0, 0, -1))
    ds = None
    layer = _load(str(tmp_path / "two.tif"),
                  styles.write_pseudocolor_qml(tmp_path / "two.qml", 400, 2500, band=2,
                                               ramp=[(0, 0, 0), (255, 0, 0, 255)]))
    renderer = layer.renderer()
    assert renderer.usesBands() == [2]  # band() is deprecated since 3.38
    assert (renderer.classificationMin(), renderer.classificationMax()) == (400.0, 2500.0)
    items = renderer.shader().rasterShaderFunction().colorRampItemList()
    assert [(i.value, i.color.name()) for i in items] == [(400.0, "#000000"), (2500.0, "#ff0000")]


@pytest.mark.parametrize("args", [(1.0, 1.0), (0.0, float("nan")), (2.0, 1.0)])
def test_pseudocolor_rejects_bad_range(tmp_path, args):
    with pytest.raises(ValueError):
        styles.write_pseudocolor_qml(tmp_path / "x.qml", *args)
    assert not (tmp_path / "x.qml").exists()


def test_bad_classes_rejected(tmp_path):
    with pytest.raises(ValueError, match="twice"):
        styles.class_qml([(1, "a", (0, 0, 0)), (1, "b", (1, 1, 1))])
    with pytest.raises(ValueError, match="0-255"):
        styles.class_qml([(1, "a", (0, 0, 300))])
    with pytest.raises(ValueError, match="unknown colour ramp"):
        styles.pseudocolor_qml(0, 1, ramp="rainbowz")


# --- algorithms/output_styles.py: name + style applied when a dialog run loads the output ----------

_PROCESSORS = []


def _styling_algorithm():
    from qgis.core import QgsProcessingAlgorithm, QgsProcessingParameterRasterDestination

    from spectral_transformers.algorithms.output_styles import style_output

    class StyledOutput(QgsProcessingAlgorithm):
        OUTPUT = "OUTPUT"

        def name(self):
            return "styledoutput"

        def displayName(self):  # noqa: N802
            return "Styled output"

        def createInstance(self):  # noqa: N802
            return StyledOutput()

        def initAlgorithm(self, config=None):  # noqa: N802
            self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, "Mask"))

        def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
            out = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
            _raster(out, np.array([[0, 1], [2, 255]], dtype=np.uint8), nodata=255)
            # A style file somewhere else than beside the output: only the post-processor applies it.
            qml = styles.write_class_qml(out + ".mask-style.qml", CLOUD_MASK_CLASSES)
            _PROCESSORS.append(style_output(context, out, "Cloud mask", qml))
            return {self.OUTPUT: out}

    alg = StyledOutput()
    alg.initAlgorithm()
    return alg


def test_style_output_applied_by_dialog_postprocessing(qgis_app, qgis_processing, tmp_path, monkeypatch):
    import gc

    from processing.gui import Postprocessing
    from processing.gui.Postprocessing import handleAlgorithmResults
    from qgis.core import (QgsProcessingContext, QgsProcessingFeedback, QgsProcessingOutputLayerDefinition,
                           QgsProject)

    project = QgsProject()
    context = QgsProcessingContext()
    context.setProject(project)
    feedback = QgsProcessingFeedback()
    alg = _styling_algorithm()
    out = str(tmp_path / "mask.tif")
    params = {"OUTPUT": QgsProcessingOutputLayerDefinition(out, project)}  # what the dialog passes
    ok, _ = alg.run(params, context, feedback)
    assert ok
    assert _PROCESSORS[-1] is not None
    processor_id = id(_PROCESSORS.pop())
    del alg  # the post-processor must survive the run without references held by the caller
    gc.collect()
    details = context.layerToLoadOnCompletionDetails(out)
    assert details.name == "Cloud mask" and details.forceName

    # No layer tree here: QGIS 3.44 passes iface.layerTreeView() on to C++, which a mock iface cannot be.
    monkeypatch.setattr(Postprocessing, "iface", None, raising=False)
    assert handleAlgorithmResults(_styling_algorithm(), context, feedback)
    layers = list(project.mapLayers().values())
    assert id(context.layerToLoadOnCompletionDetails(out).postProcessor()) == processor_id
    assert len(layers) == 1
    layer = layers[0]
    assert layer.name() == "Cloud mask"
    assert layer.renderer().type() == "paletted"
    assert {c.value: c.label for c in layer.renderer().classes()} == {0: "clear", 1: "cloud", 2: "cloud shadow",
                                                                      255: "no data"}


def test_style_output_noop_when_not_loaded(qgis_app, tmp_path):
    from qgis.core import QgsProcessingContext

    from spectral_transformers.algorithms.output_styles import style_output

    context = QgsProcessingContext()
    assert style_output(context, str(tmp_path / "x.tif"), "X") is None
    assert style_output(None, str(tmp_path / "x.tif"), "X") is None



def test_true_color_style_picks_650_560_470_with_cumulative_cut(qgis_app, tmp_path):
    """TOA reflectance: bands nearest 650/560/470 nm, 2–98 % stretch from the data, loads as multiband colour."""
    from osgeo import gdal

    wl = np.arange(380.0, 2500.0, 7.5)[:285]
    rng = np.random.default_rng(0)
    data = rng.uniform(0.0, 0.5, (wl.size, 20, 30)).astype(np.float32)
    data[:, 0, 0] = -9999.0
    path = tmp_path / "toa.tif"
    ds = gdal.GetDriverByName("GTiff").Create(str(path), 30, 20, wl.size, gdal.GDT_Float32)
    for i in range(wl.size):
        band = ds.GetRasterBand(i + 1)
        band.WriteArray(data[i])
        band.SetNoDataValue(-9999.0)
        band.SetMetadataItem("wavelength", str(wl[i]))
        band.SetMetadataItem("wavelength_units", "Nanometers")
    ds = None
    qml = styles.write_reflectance_style(path)
    assert qml == str(tmp_path / "toa.qml")
    expect = [int(np.argmin(np.abs(wl - t))) + 1 for t in (650, 560, 470)]
    layer = _load(str(path), qml)
    r = layer.renderer()
    assert r.type() == "multibandcolor"
    assert [r.redBand(), r.greenBand(), r.blueBand()] == expect
    lo, hi = np.quantile(data[expect[0] - 1][data[expect[0] - 1] != -9999], [0.02, 0.98])
    ce = r.redContrastEnhancement()
    assert ce.minimumValue() == pytest.approx(lo, rel=1e-6) and ce.maximumValue() == pytest.approx(hi, rel=1e-6)
    assert "<limits>CumulativeCut</limits>" in open(qml).read()
    assert styles.true_color_bands([1000.0, 1500.0, 2000.0]) is None  # no visible bands: no style


def test_progress_reporter_logs_blocks_rate_and_eta_at_an_interval():
    from spectral_transformers.runtime.monitor import ProgressReporter, RecordingMonitor

    now = [0.0]
    mon = RecordingMonitor()
    rep = ProgressReporter(mon, total_pixels=1000, total_blocks=10, interval=10.0, clock=lambda: now[0])
    for _ in range(10):
        now[0] += 4.0  # 100 pixels per 4 s
        rep.block(100)
    rep.finish()
    lines = [m for m in mon.infos if m.startswith("Progress:")]
    assert len(lines) == 3  # at 12, 24, 36 s: not per block
    assert lines[0] == "Progress: block 3/10, 300 of 1,000 pixels (30 %), 25 pixels/s, ETA 28 s"
    assert mon.infos[-1] == "Done: 10 blocks, 1,000 pixels in 40 s (25 pixels/s)"
    assert mon.fractions[-1] == 1.0 and mon.fractions == sorted(mon.fractions)
    quick = RecordingMonitor()
    fast = ProgressReporter(quick, 10, 1, clock=lambda: 0.0)
    fast.block(10)
    fast.finish()
    assert quick.infos == []  # short runs stay quiet
