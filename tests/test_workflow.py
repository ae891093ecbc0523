"""The shipped graphical-modeler workflow: EMIT radiance → TOA → SpecTf cloud mask (+ attention):
valid in the Model Designer, in the Toolbox under the provider, inputs in natural order, optional
attention, and the same mask and probability as a direct spectraltf:cloudmask run."""
import numpy as np
import pytest
from osgeo import gdal

from support import REPO, built_model, qgis_process, shared

WORKFLOW = REPO / "resources" / "workflows" / "emit_radiance_to_cloud_mask.model3"


def _inputs():
    return (shared("emit", "emit_l1b_rdn_libya4_25x22.img"),
            shared("emit", "emit_l1b_obs_libya4_25x22_derived.img"))


def _read(path):
    ds = gdal.Open(str(path))  # keep the dataset referenced while reading (GDAL < 3.8 bindings)
    return ds.ReadAsArray()


def _check_outputs(mask, prob, att, top):
    valid = _read(_inputs()[0])[0] != -9999
    m = _read(mask)
    assert (m[valid] == 0).all(), "the Libya-4 desert clip is clear"
    assert (m[~valid] == 255).all()
    p = _read(prob)
    assert (p[valid] < 0.51).all() and (p[valid] >= 0).all()
    a = gdal.Open(str(att))
    assert a.RasterCount == 268
    assert float(a.GetRasterBand(1).GetMetadataItem("wavelength")) == pytest.approx(410.638, abs=0.01)
    sums = a.ReadAsArray()[:, valid].sum(axis=0)
    np.testing.assert_allclose(sums, 1.0, atol=1e-4)  # attention received, averaged over queries
    t = _read(top)
    assert ((t[valid] > 405) & (t[valid] < 2455)).all()


def test_workflow_headless_with_qgis_process(tmp_path):
    built_model("spectf-cloud-v0.1.0")
    rdn, obs = _inputs()
    out = {k: tmp_path / f"{k}.tif" for k in ("mask", "prob", "att", "top")}
    rc, result, stdout, stderr = qgis_process(
        "run", str(WORKFLOW), "--", f"radiance={rdn}", f"observation={obs}", "model=spectf-cloud-v0.1.0",
        "device=cpu", f"cloudmask:cloud_mask={out['mask']}", f"cloudmask:cloud_probability={out['prob']}",
        f"attention:band_attention={out['att']}", f"attention:top_wavelength={out['top']}",
        f"toa:toa_reflectance={tmp_path / 'toa.tif'}")
    assert rc == 0, stdout + stderr
    _check_outputs(out["mask"], out["prob"], out["att"], out["top"])


def test_workflow_by_id_with_qgis_process_and_defaults(tmp_path):
    """From the Toolbox id, only the mask requested: model, device, solar spectrum at their defaults."""
    built_model("spectf-cloud-v0.1.0")
    rdn, obs = _inputs()
    rc, result, stdout, stderr = qgis_process(
        "run", "spectraltf:emit_radiance_to_cloud_mask", "--", f"radiance={rdn}", f"observation={obs}",
        f"cloudmask:cloud_mask={tmp_path / 'mask.tif'}")
    assert rc == 0, stdout + stderr
    assert "spectf-cloud-v0.1.0.solar.csv" in stdout + stderr  # the model's own solar spectrum
    assert (_read(tmp_path / "mask.tif")[_read(rdn)[0] != -9999] == 0).all()


def test_workflow_through_processing(tmp_path, processing_provider):
    import processing
    from qgis.core import QgsProcessingModelAlgorithm

    built_model("spectf-cloud-v0.1.0")
    model = QgsProcessingModelAlgorithm()
    assert model.fromFile(str(WORKFLOW))
    rdn, obs = _inputs()
    out = {k: str(tmp_path / f"{k}.tif") for k in ("mask", "prob", "att", "top")}
    result = processing.run(model, {
        "radiance": str(rdn), "observation": str(obs), "model": "spectf-cloud-v0.1.0", "device": "cpu",
        "cloudmask:cloud_mask": out["mask"], "cloudmask:cloud_probability": out["prob"],
        "attention:band_attention": out["att"], "attention:top_wavelength": out["top"],
        "toa:toa_reflectance": str(tmp_path / "toa.tif")})
    assert result["cloudmask:cloud_mask"] == out["mask"]
    _check_outputs(out["mask"], out["prob"], out["att"], out["top"])


WORKFLOW_ID = "spectraltf:emit_radiance_to_cloud_mask"


def test_workflow_validates_and_is_in_the_toolbox(processing_provider):
    from qgis.core import QgsApplication, QgsProcessingModelAlgorithm

    model = QgsProcessingModelAlgorithm()
    assert model.fromFile(str(WORKFLOW))
    assert model.validate() == (True, [])
    for child in model.childAlgorithms().values():  # every step's algorithm resolves
        assert child.algorithm() is not None, child.childId()
    alg = QgsApplication.processingRegistry().algorithmById(WORKFLOW_ID)
    assert alg is not None and alg.provider().id() == "spectraltf" and alg.group() == "Workflows"
    instance = alg.createInstance()
    assert instance.validate() == (True, [])
    inputs = [d.name() for d in instance.parameterDefinitions() if not d.isDestination()]
    assert inputs == ["radiance", "observation", "solar_spectrum", "model", "device"]
    from spectral_transformers.qgis_compat import PARAMETER_FLAG_OPTIONAL

    optional = {d.name(): bool(d.flags() & PARAMETER_FLAG_OPTIONAL) for d in instance.parameterDefinitions()}
    assert optional["solar_spectrum"] and not optional["radiance"] and not optional["cloudmask:cloud_mask"]
    for name in ("attention:band_attention", "attention:top_wavelength", "cloudmask:cloud_probability",
                 "toa:toa_reflectance"):
        assert optional[name], name


def test_workflow_equals_a_direct_cloudmask_run(processing_provider, tmp_path):
    """Only mask + probability requested (attention left out); radiance converted with the model's own
    solar spectrum in both, so the results agree."""
    import processing

    built_model("spectf-cloud-v0.1.0")
    rdn, obs = _inputs()
    wf = processing.run(WORKFLOW_ID, {"radiance": str(rdn), "observation": str(obs), "device": "cpu",
                                      "cloudmask:cloud_mask": str(tmp_path / "wf_mask.tif"),
                                      "cloudmask:cloud_probability": str(tmp_path / "wf_prob.tif")})
    direct = processing.run("spectraltf:cloudmask", {
        "INPUT": str(rdn), "OBSERVATION": str(obs), "DEVICE": "cpu", "OUTPUT": str(tmp_path / "mask.tif"),
        "OUTPUT_PROBABILITY": str(tmp_path / "prob.tif")})
    np.testing.assert_array_equal(_read(wf["cloudmask:cloud_mask"]), _read(direct["OUTPUT"]))
    p_wf, p_direct = _read(wf["cloudmask:cloud_probability"]), _read(direct["OUTPUT_PROBABILITY"])
    valid = p_direct != -9999
    np.testing.assert_array_equal(p_wf == -9999, ~valid)
    # float32 TOA written to a file and read back vs converted in memory: last-bit differences only
    np.testing.assert_allclose(p_wf[valid], p_direct[valid], rtol=0, atol=5e-5)
    # with ASTM E-490 instead (the old workflow's conversion) the probabilities differ measurably
    astm = processing.run(WORKFLOW_ID, {"radiance": str(rdn), "observation": str(obs), "device": "cpu",
                                        "solar_spectrum": str(REPO / "resources" / "solar" / "astm_e490_00a.csv"),
                                        "cloudmask:cloud_mask": str(tmp_path / "a_mask.tif"),
                                        "cloudmask:cloud_probability": str(tmp_path / "a_prob.tif")})
    assert np.abs(_read(astm["cloudmask:cloud_probability"])[valid] - p_direct[valid]).max() > 1e-3


def test_workflow_runs_in_a_background_task(processing_provider, tmp_path):
    """The Toolbox runs it in a QgsProcessingAlgRunnerTask (worker thread), as the other algorithms."""
    from test_background_tasks import TaskRun, run_tasks

    built_model("spectf-cloud-v0.1.0")
    rdn, obs = _inputs()
    run = TaskRun(WORKFLOW_ID, {"radiance": str(rdn), "observation": str(obs), "device": "cpu",
                                "cloudmask:cloud_mask": str(tmp_path / "mask.tif")})
    run_tasks([run])
    assert run.ok, run.log
    assert (_read(tmp_path / "mask.tif")[_read(rdn)[0] != -9999] == 0).all()


def test_toa_solar_spectrum_from_a_model_id_or_path(processing_provider, tmp_path):
    """IRRADIANCE takes a model id or .onnx path (its own spectrum); an unknown id is one clear error."""
    import processing
    from qgis.core import QgsProcessingException

    path = built_model("spectf-cloud-v0.1.0")
    rdn, obs = _inputs()
    outs = []
    for value in ("spectf-cloud-v0.1.0", str(path),
                  str(REPO.joinpath("models", "spectf-cloud-v0.1.0.solar.csv"))):
        out = str(tmp_path / f"toa{len(outs)}.tif")
        processing.run("spectraltf:toareflectance", {"INPUT": str(rdn), "OBSERVATION": str(obs), "IRRADIANCE": value,
                                                     "OUTPUT": out})
        outs.append(_read(out))
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_array_equal(outs[0], outs[2])
    with pytest.raises(QgsProcessingException, match="IRRADIANCE: no model with id 'no-such-model'"):
        processing.run("spectraltf:toareflectance", {"INPUT": str(rdn), "OBSERVATION": str(obs),
                                                     "IRRADIANCE": "no-such-model", "OUTPUT": str(tmp_path / "x.tif")})
