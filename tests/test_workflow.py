"""The shipped graphical-modeler workflow: EMIT radiance → TOA → SpecTf cloud mask (+ attention)."""
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
        f"attention:band_attention={out['att']}", f"attention:top_wavelength={out['top']}")
    assert rc == 0, stdout + stderr
    _check_outputs(out["mask"], out["prob"], out["att"], out["top"])


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
        "attention:band_attention": out["att"], "attention:top_wavelength": out["top"]})
    assert result["cloudmask:cloud_mask"] == out["mask"]
    _check_outputs(out["mask"], out["prob"], out["att"], out["top"])
