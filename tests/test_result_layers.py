"""Results that read well when a dialog run loads them: layer names carry the input's name, TOA
reflectance opens in true colour, the mask shows its classes; "Solar spectrum" is logged once."""
import pytest

from support import built_model, shared

RDN = ("emit", "emit_l1b_rdn_libya4_25x22.img")
OBS = ("emit", "emit_l1b_obs_libya4_25x22_derived.img")


def test_solar_spectrum_is_logged_once_for_radiance_input(tmp_path):
    from spectral_transformers.runtime.models import spectf
    from spectral_transformers.runtime.monitor import RecordingMonitor

    built_model("spectf-cloud-v0.1.0")
    mon = RecordingMonitor()
    spectf.run_spectf(str(shared(*RDN)), outputs={"mask": str(tmp_path / "m.tif")}, observation=str(shared(*OBS)),
                      device="cpu", monitor=mon)
    solar = [m for m in mon.infos if m.startswith("Solar spectrum")]
    assert len(solar) == 1 and "spectf-cloud-v0.1.0.solar.csv" in solar[0], mon.infos


def test_loaded_layers_are_named_after_the_input_and_styled(processing_provider, qgis_iface, tmp_path, monkeypatch):
    import processing
    from processing.gui import Postprocessing
    from qgis.core import QgsProject

    # No layer tree here: QGIS 3.44 passes iface.layerTreeView() on to C++, which a mock iface cannot be.
    monkeypatch.setattr(Postprocessing, "iface", None, raising=False)

    built_model("spectf-cloud-v0.1.0")
    project = QgsProject.instance()
    project.removeAllMapLayers()
    processing.runAndLoadResults("spectraltf:toareflectance", {
        "INPUT": str(shared(*RDN)), "OBSERVATION": str(shared(*OBS)), "OUTPUT": str(tmp_path / "toa.tif")})
    processing.runAndLoadResults("spectraltf:cloudmask", {
        "INPUT": str(shared(*RDN)), "OBSERVATION": str(shared(*OBS)), "DEVICE": "cpu",
        "OUTPUT": str(tmp_path / "mask.tif"), "OUTPUT_PROBABILITY": str(tmp_path / "prob.tif")})
    layers = {layer.name(): layer for layer in project.mapLayers().values()}
    assert set(layers) == {"TOA reflectance — emit_l1b_rdn_libya4_25x22",
                           "Cloud mask (SpecTf) — emit_l1b_rdn_libya4_25x22",
                           "Cloud probability (SpecTf) — emit_l1b_rdn_libya4_25x22"}, set(layers)
    toa = layers["TOA reflectance — emit_l1b_rdn_libya4_25x22"].renderer()
    assert toa.type() == "multibandcolor"
    from spectral_transformers.runtime.io.spectral import read_spectral_info
    from osgeo import gdal

    wl = read_spectral_info(gdal.Open(str(tmp_path / "toa.tif"))).wavelength_nm
    for band, target in ((toa.redBand(), 650), (toa.greenBand(), 560), (toa.blueBand(), 470)):
        assert abs(wl[band - 1] - target) <= 5, (band, wl[band - 1], target)
    mask = layers["Cloud mask (SpecTf) — emit_l1b_rdn_libya4_25x22"].renderer()
    assert mask.type() == "paletted"
    colors = {c.value: c.color.alpha() for c in mask.classes()}
    assert colors[0] > 0 and colors[1] == 255  # the clear class shows, on imagery and in the legend
    project.removeAllMapLayers()
