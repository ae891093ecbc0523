"""runtime/physics/toa.py and spectraltf:toareflectance: parity with SpecTf's TOA formula, sanity on real
EMIT Libya-4, geometry sources, bad inputs, streaming, Processing and qgis_process."""
import glob
import math
import os
import re

import numpy as np
import pytest
from osgeo import gdal

from support import qgis_process, shared

from spectral_transformers.runtime import pipeline
from spectral_transformers.runtime.io import raster_io
from spectral_transformers.runtime.physics import toa
from spectral_transformers.runtime.errors import Cancelled, InputError
from spectral_transformers.runtime.monitor import RecordingMonitor

gdal.UseExceptions()


def _emit():
    return (str(shared("emit", "emit_l1b_rdn_libya4_25x22.img")),
            str(shared("emit", "emit_l1b_obs_libya4_25x22_derived.img")))


def _header_list(hdr, key):
    text = open(hdr).read()
    m = re.search(rf"^{key}\s*=\s*\{{(.*?)\}}", text, re.M | re.S)
    return [s.strip() for s in m.group(1).split(",") if s.strip()]


def spectf_reference(rdn, obs, irr_path, wl, fwhm):
    """SpecTf's l1b_to_toa formula written out independently: per-pixel zenith from OBS band 5,
    Earth–Sun distance = mean of OBS band 11 (valid pixels), irradiance = irr.npy weighted by a
    normalised Gaussian (sigma = FWHM / 2.355, isofit's resample_spectrum) per band."""
    rad = gdal.Open(rdn).ReadAsArray().astype(np.float64)
    o = gdal.Open(obs).ReadAsArray().astype(np.float64)
    zen = np.deg2rad(o[4])
    dist = o[10][o[10] != -9999].mean()
    irr = np.load(irr_path)
    e = np.empty(len(wl))
    for i in range(len(wl)):
        sigma = fwhm[i] / 2.355
        u = (irr[:, 0] - wl[i]) / sigma
        srf = np.exp(-u * u / 2.0) / (np.sqrt(2 * np.pi) * sigma)
        srf /= srf.sum()
        e[i] = np.dot(srf, irr[:, 1])
    e = e / dist ** 2
    out = np.pi / np.cos(zen)[None] * rad / e[:, None, None]
    out[rad == -9999] = np.nan
    return out


def _read(path):
    ds = gdal.Open(str(path))
    return ds.ReadAsArray().astype(np.float64), ds


def _assert_parity(got, ref):
    valid = np.isfinite(ref)
    assert valid.any()
    assert np.all(got[~valid] == toa.NODATA)
    rel = np.abs(got[valid] - ref[valid]) / np.maximum(np.abs(ref[valid]), 1e-3)
    assert rel.max() < 1e-4, rel.max()


# -- parity and sanity --------------------------------------------------------------------------
def test_emit_parity_with_spectf_formula(tmp_path):
    rdn, obs = _emit()
    irr = str(shared("spectf", "irr.npy"))
    hdr = rdn[:-4] + ".hdr"
    wl = np.array(_header_list(hdr, "wavelength"), float)
    fwhm = np.array(_header_list(hdr, "fwhm"), float)
    out = tmp_path / "rfl.tif"
    summary = toa.toa_reflectance(rdn, out, observation=obs, irradiance=irr)
    got, ds = _read(out)
    _assert_parity(got, spectf_reference(rdn, obs, irr, wl, fwhm))
    assert summary["valid_pixels"] == 266
    # metadata preserved
    band = ds.GetRasterBand(10)
    assert float(band.GetMetadataItem("wavelength")) == pytest.approx(wl[9], abs=1e-3)
    assert float(band.GetMetadataItem("fwhm")) == pytest.approx(fwhm[9], abs=1e-4)
    assert band.GetNoDataValue() == toa.NODATA
    assert ds.RasterXSize == 22 and ds.RasterYSize == 25 and ds.RasterCount == 285
    assert np.isfinite(got).all()
    # sanity on the Libya-4 desert (clear sky)
    valid = got[0] != toa.NODATA
    mean = {w: got[np.argmin(np.abs(wl - w))][valid].mean() for w in (450, 865, 1380)}
    assert 0.2 < mean[450] < 0.3
    assert 0.5 < mean[865] < 0.7
    assert abs(mean[1380]) < 0.02


def test_aviris_ng_parity_band_spacing(tmp_path):
    rdn = str(shared("aviris-ng", "ang20160910t185702_rdn.img"))
    obs = str(shared("aviris-ng", "ang20160910t185702_obs.img"))
    irr = str(shared("spectf", "irr.npy"))
    wl = np.array([float(n.split()[0]) for n in _header_list(rdn[:-4] + ".hdr", "band names")])
    fwhm = np.abs(np.gradient(wl))  # no fwhm in the header: band spacing
    mon = RecordingMonitor()
    out = tmp_path / "ang.tif"
    toa.toa_reflectance(rdn, out, observation=obs, irradiance=irr, monitor=mon)
    got, _ = _read(out)
    _assert_parity(got, spectf_reference(rdn, obs, irr, wl, fwhm))
    assert any("band spacing" in m for m in mon.infos)


def test_streaming_blocks_equal_and_cancel(tmp_path):
    rdn, obs = _emit()
    whole = tmp_path / "whole.tif"
    toa.toa_reflectance(rdn, whole, observation=obs)
    mon = RecordingMonitor()
    small = tmp_path / "small.tif"
    toa.toa_reflectance(rdn, small, observation=obs, monitor=mon, block_bytes=22 * 287 * 4 * 3)
    np.testing.assert_array_equal(_read(whole)[0], _read(small)[0])
    assert len(mon.fractions) >= 8 and mon.fractions[-1] == 1.0
    cancelled = tmp_path / "cancelled.tif"
    with pytest.raises(Cancelled):
        toa.toa_reflectance(rdn, cancelled, observation=obs, monitor=RecordingMonitor(cancel_after=4),
                            block_bytes=22 * 287 * 4 * 3)
    assert not cancelled.exists() and not glob.glob(str(tmp_path / ".cancelled*"))


def test_blocks_end_on_output_tile_rows(tmp_path, monkeypatch):
    """Each block the TOA loop writes completes whole rows of output tiles, so the writer can flush
    them from GDAL's cache; a block ending inside a tile row kept those tiles dirty in the cache until
    a later block completed them (≈ 320 MB on a 285-band EMIT scene, bench/toa_memory.py)."""
    from spectral_transformers.runtime.pipeline.writer import RasterWriter

    rdn, obs = _emit()
    seen, original = [], RasterWriter.write

    def spy(self, window, array):
        seen.append((self.tile, window.yoff + window.ysize, self.grid.height))
        return original(self, window, array)

    monkeypatch.setattr(RasterWriter, "write", spy)
    # a block share of 14 rows of 22 px × (285 + 2) values: a 16-row tile row is within 2 × the share
    toa.toa_reflectance(rdn, tmp_path / "toa.tif", observation=obs, block_bytes=3 * 14 * 22 * 287 * 4)
    assert len(seen) >= 2
    assert all(bottom % tile == 0 or bottom == height for tile, bottom, height in seen), seen


def test_converter_band_subset_and_units():
    rdn, obs = _emit()
    ds = gdal.Open(rdn)
    full = toa.ToaConverter.create(ds, obs)
    sub = toa.ToaConverter.create(ds, obs, bands=[10, 50, 200])
    win = raster_io.Window(0, 5, 22, 10)
    rad, valid = raster_io.read_block(ds, win)
    a = full.convert(win, rad)
    b = sub.convert(win, rad[[9, 49, 199]])
    assert b.dtype == np.float32 and b.shape == (3, 10, 22)
    np.testing.assert_allclose(b[:, valid], a[[9, 49, 199]][:, valid], rtol=1e-6)
    np.testing.assert_allclose(sub.wavelength_nm, full.wavelength_nm[[9, 49, 199]])
    assert np.all(np.isnan(b[:, ~valid]))
    w = toa.ToaConverter.create(ds, obs, bands=[10, 50, 200], radiance_units="W_m2_um_sr")
    np.testing.assert_allclose(w.convert(win, rad[[9, 49, 199]])[:, valid], 0.1 * b[:, valid], rtol=1e-6)


# -- geometry sources ---------------------------------------------------------------------------
def _georeferenced_copy(tmp_path, time="2022-08-27T09:16:26Z"):
    """The EMIT clip as a GeoTIFF placed at the Libya-4 centre used for the derived OBS
    (28.55 N, 23.39 E; 60 m ≈ 0.00054° pixels), with an acquisition time."""
    rdn, _ = _emit()
    src = gdal.Open(rdn)
    path = str(tmp_path / "geo.tif")
    ds = gdal.Translate(path, src, format="GTiff", outputSRS="EPSG:4326",
                        outputBounds=[23.39 - 11 * 0.00061, 28.55 + 12.5 * 0.00054, 23.39 + 11 * 0.00061, 28.55 - 12.5 * 0.00054])
    if time:
        ds.SetMetadataItem("acquisition_time", time)
    ds = None
    return path


def test_geometry_from_acquisition_time(tmp_path):
    rdn, obs = _emit()
    mon = RecordingMonitor()
    conv = toa.ToaConverter.create(_georeferenced_copy(tmp_path), monitor=mon)
    o = gdal.Open(obs).ReadAsArray()
    assert conv.solar_zenith == pytest.approx(float(o[4].mean()), abs=0.005)
    assert conv.earth_sun_distance == pytest.approx(float(o[10].mean()), abs=1e-6)
    assert any("NOAA" in m for m in mon.infos)


def test_not_georeferenced_needs_zenith(tmp_path):
    rdn, _ = _emit()
    with pytest.raises(InputError, match="^solar_zenith.*not georeferenced"):
        toa.toa_reflectance(rdn, tmp_path / "o.tif")
    assert not (tmp_path / "o.tif").exists()
    # the distance alone comes from the date (the header's year is 2085: warned as future)
    mon = RecordingMonitor()
    conv = toa.ToaConverter.create(rdn, solar_zenith=25.0, monitor=mon)
    assert conv.earth_sun_distance == pytest.approx(1.0104, abs=5e-4)
    assert any("future" in m for m in mon.warnings)


def test_explicit_geometry_matches_obs_mean(tmp_path):
    rdn, obs = _emit()
    o = gdal.Open(obs).ReadAsArray()
    a = toa.ToaConverter.create(rdn, obs)
    b = toa.ToaConverter.create(rdn, solar_zenith=float(o[4, 12, 11]), earth_sun_distance=float(o[10].mean()))
    win = raster_io.Window(11, 12, 1, 1)
    rad, _ = raster_io.read_block(gdal.Open(rdn), win)
    np.testing.assert_allclose(a.convert(win, rad), b.convert(win, rad), rtol=1e-5)


# -- bad inputs ---------------------------------------------------------------------------------
def _no_partials(folder):
    return not [p for p in os.listdir(folder) if p.startswith(".") or p.endswith(".tif")]


def test_raster_without_wavelengths(tmp_path):
    src = tmp_path / "plain.tif"
    pipeline.write_array(src, np.ones((3, 4, 5), np.float32))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(InputError, match="^input.*wavelength"):
        toa.toa_reflectance(src, out_dir / "o.tif", solar_zenith=30)
    assert _no_partials(out_dir)


@pytest.mark.parametrize("shape,match", [((11, 5, 5), "same size"), ((5, 25, 22), "11-band")])
def test_bad_observation_raster(tmp_path, shape, match):
    rdn, _ = _emit()
    bad = tmp_path / "obs.tif"
    pipeline.write_array(bad, np.full(shape, 1.0, np.float32))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(InputError, match=f"^observation.*{match}"):
        toa.toa_reflectance(rdn, out_dir / "o.tif", observation=bad)
    assert _no_partials(out_dir)


@pytest.mark.parametrize("zenith", [90.0, 95.0, -1.0])
def test_bad_zenith_values(tmp_path, zenith):
    rdn, obs = _emit()
    with pytest.raises(InputError, match="^solar_zenith.*0–90"):
        toa.toa_reflectance(rdn, tmp_path / "o.tif", solar_zenith=zenith, earth_sun_distance=1.0)
    o = gdal.Open(obs).ReadAsArray()
    o[4, 20, 3] = zenith
    bad = tmp_path / "obs.tif"
    pipeline.write_array(bad, o, nodata=-9999)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(InputError, match="^observation.*row 20, column 3"):
        toa.toa_reflectance(rdn, out_dir / "o.tif", observation=bad)
    assert _no_partials(out_dir)


def test_bad_irradiance(tmp_path):
    rdn, obs = _emit()
    junk = tmp_path / "junk.txt"
    junk.write_text("this is not\na spectrum\n")
    with pytest.raises(InputError, match="^irradiance"):
        toa.toa_reflectance(rdn, tmp_path / "a.tif", observation=obs, irradiance=junk)
    vnir = tmp_path / "vnir.txt"
    vnir.write_text("\n".join(f"{w} 180.0" for w in range(350, 1001)))
    with pytest.raises(InputError, match="^irradiance.*outside"):
        toa.toa_reflectance(rdn, tmp_path / "b.tif", observation=obs, irradiance=vnir)
    assert not list(tmp_path.glob("*.tif"))


def test_unwritable_output(tmp_path):
    rdn, obs = _emit()
    with pytest.raises(InputError, match="^output.*does not exist"):
        toa.toa_reflectance(rdn, tmp_path / "missing" / "o.tif", observation=obs)
    with pytest.raises(InputError, match="^output.*folder"):
        toa.toa_reflectance(rdn, tmp_path, observation=obs)


def test_reflectance_input_warns(tmp_path):
    """Real EMIT L2A surface reflectance given as radiance → warning (still converts)."""
    rfl = shared("emit", "emit_l2a_rfl_10x10.img")
    mon = RecordingMonitor()
    toa.toa_reflectance(rfl, tmp_path / "o.tif", solar_zenith=30, earth_sun_distance=1.0, monitor=mon)
    assert any("already reflectance" in w for w in mon.warnings)
    mon2 = RecordingMonitor()
    rdn, obs = _emit()
    toa.toa_reflectance(rdn, tmp_path / "p.tif", observation=obs, monitor=mon2)
    assert not any("already reflectance" in w for w in mon2.warnings)


def test_unknown_units_value():
    rdn, obs = _emit()
    with pytest.raises(InputError, match="^radiance_units"):
        toa.ToaConverter.create(rdn, obs, radiance_units="furlongs")


# -- Processing and qgis_process ----------------------------------------------------------------
def test_processing_run(processing_provider, tmp_path):
    import processing
    from qgis.core import QgsProcessingException

    rdn, obs = _emit()
    out = str(tmp_path / "p.tif")
    res = processing.run("spectraltf:toareflectance", {
        "INPUT": rdn, "OBSERVATION": obs, "IRRADIANCE": str(shared("spectf", "irr.npy")),
        "RADIANCE_UNITS": "uW_cm2_nm_sr", "OUTPUT": out})
    assert res["OUTPUT"] == out
    ref = tmp_path / "r.tif"
    toa.toa_reflectance(rdn, ref, observation=obs, irradiance=str(shared("spectf", "irr.npy")))
    np.testing.assert_array_equal(_read(out)[0], _read(ref)[0])
    with pytest.raises(QgsProcessingException, match="SOLAR_ZENITH"):
        processing.run("spectraltf:toareflectance", {"INPUT": rdn, "OUTPUT": str(tmp_path / "q.tif")})
    assert not (tmp_path / "q.tif").exists()
    alg = processing_provider.algorithm("toareflectance")
    assert "OBS" in alg.shortHelpString() and alg.group() == "Radiometry"


@pytest.mark.qgis_process
def test_qgis_process_cli(tmp_path):
    rdn, obs = _emit()
    out = tmp_path / "cli.tif"
    rc, parsed, stdout, stderr = qgis_process("run", "spectraltf:toareflectance", "--", f"INPUT={rdn}",
                                              f"OBSERVATION={obs}", f"OUTPUT={out}")
    assert rc == 0, stdout + stderr
    assert parsed["results"]["OUTPUT"] == str(out)
    got, ds = _read(out)
    assert ds.RasterCount == 285 and (got[0] != toa.NODATA).sum() == 266
    bad_obs = tmp_path / "obs5.tif"
    pipeline.write_array(bad_obs, np.ones((5, 25, 22), np.float32))
    rc, _, stdout, stderr = qgis_process("run", "spectraltf:toareflectance", "--", f"INPUT={rdn}",
                                         f"OBSERVATION={bad_obs}", f"OUTPUT={tmp_path / 'bad.tif'}")
    assert rc != 0 and "OBSERVATION" in stdout + stderr
    assert not (tmp_path / "bad.tif").exists()
