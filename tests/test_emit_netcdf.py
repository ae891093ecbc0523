"""EMIT netCDF products read directly through runtime.io.raster_io.open_raster (real OBS/MASK crops and a
radiance file in the L1B RDN layout built from real Libya-4 spectra, see fixtures_emit.py)."""
import numpy as np
import pytest

from fixtures_emit import MASK_NC, OBS_NC, build_radiance_nc
from support import shared

from spectral_transformers.runtime.io import emit_netcdf, raster_io
from spectral_transformers.runtime import pipeline
from spectral_transformers.runtime.physics import toa
from spectral_transformers.runtime.errors import InputError
from spectral_transformers.runtime.io.spectral import read_spectral_info, write_spectral_metadata

OBS_BANDS = [
    "Path length (sensor-to-ground in meters)", "To-sensor azimuth (0 to 360 degrees CW from N)",
    "To-sensor zenith (0 to 90 degrees from zenith)", "To-sun azimuth (0 to 360 degrees CW from N)",
    "To-sun zenith (0 to 90 degrees from zenith)",
    "Solar phase (degrees between to-sensor and to-sun vectors in principal plane)",
    "Slope (local surface slope as derived from DEM in degrees)",
    "Aspect (local surface aspect 0 to 360 degrees clockwise from N)",
    "Cosine(i) (apparent local illumination factor based on DEM slope and aspect and to sun vector)",
    "UTC Time (decimal hours for mid-line pixels)", "Earth-sun distance (AU)",
]
MASK_BANDS = ["Cloud flag", "Cirrus flag", "Water flag", "Spacecraft Flag", "Dilated Cloud Flag", "AOD550",
              "H2O (g cm-2)", "Aggregate Flag"]


def nc_variable(path, name):
    """Independent read with python-netCDF4: (downtrack, crosstrack, bands) with −9999 fill."""
    import netCDF4

    with netCDF4.Dataset(str(path)) as d:
        return np.ma.filled(d[name][:], -9999.0)


@pytest.fixture(scope="module")
def radiance_nc(tmp_path_factory):
    path, cube = build_radiance_nc(tmp_path_factory.mktemp("emit") / "EMIT_L1B_RAD_fixture.nc")
    return str(path), cube


def test_obs_crop_layout_and_values():
    path = shared(*OBS_NC)
    ds = raster_io.open_raster(str(path))
    assert (ds.RasterXSize, ds.RasterYSize, ds.RasterCount) == (200, 200, 11)
    assert [ds.GetRasterBand(i + 1).GetDescription() for i in range(11)] == OBS_BANDS
    assert all(v == -9999.0 for v in raster_io.nodata_values(ds))
    assert ds.GetGeoTransform(can_return_null=True) is None  # raw sensor geometry
    assert ds.GetMetadataItem("acquisition_time") == "2022-08-27T06:07:53Z"
    assert ds.GetMetadataItem("start_acquisition_time", "ENVI") == "2022-08-27T06:07:53Z"
    assert ds.GetMetadataItem("EMIT_PRODUCT") == "L1B OBS"
    assert ds.GetMetadataItem("EMIT_HAS_GLT") == "YES"
    # The band numbers the TOA conversion uses: 5 = to-sun zenith, 11 = Earth–Sun distance.
    assert "To-sun zenith" in OBS_BANDS[emit_netcdf.OBS_SOLAR_ZENITH_BAND - 1]
    assert "Earth-sun distance" in OBS_BANDS[emit_netcdf.OBS_EARTH_SUN_DISTANCE_BAND - 1]
    window = raster_io.Window(13, 70, 150, 90)
    values, valid = raster_io.read_block(ds, window)
    assert valid.all()
    ref = nc_variable(path, "obs")[70:160, 13:163]
    np.testing.assert_array_equal(values, np.moveaxis(ref, -1, 0))
    zenith, distance = values[4], values[10]
    assert 35.5 < zenith.min() < zenith.max() < 35.8  # 06:07 UTC over Afghanistan/Turkmenistan, late August
    np.testing.assert_allclose(distance, 1.0105, atol=2e-4)
    assert 422_000 < values[0].min() < values[0].max() < 423_000  # ISS altitude path length (m)


def test_mask_crop_layout_and_values():
    path = shared(*MASK_NC)
    ds = raster_io.open_raster(str(path))
    assert (ds.RasterXSize, ds.RasterYSize, ds.RasterCount) == (200, 200, 8)
    assert [ds.GetRasterBand(i + 1).GetDescription() for i in range(8)] == MASK_BANDS
    assert ds.GetRasterBand(1).GetNoDataValue() == -9999.0
    assert ds.GetMetadataItem("EMIT_PRODUCT") == "L2A MASK"
    data = raster_io.read_window(ds, raster_io.Window(0, 0, 200, 200))
    np.testing.assert_array_equal(data, np.moveaxis(nc_variable(path, "mask"), -1, 0))
    flags = data[[0, 1, 2, 3, 4, 7]]
    assert set(np.unique(flags)) <= {0.0, 1.0}
    assert 0 < data[5].min() and data[5].max() < 1.0  # AOD550
    assert 0.3 < data[6].min() and data[6].max() < 1.5  # H2O g cm-2
    assert read_spectral_info(ds).wavelength_nm is None  # masks have no wavelengths


def test_radiance_wavelengths_fwhm_and_windowed_reads(radiance_nc):
    import netCDF4

    path, cube = radiance_nc
    ds = raster_io.open_raster(path)
    assert (ds.RasterXSize, ds.RasterYSize, ds.RasterCount) == (200, 200, 285)
    with netCDF4.Dataset(path) as d:
        wl = d["sensor_band_parameters/wavelengths"][:]
        fwhm = d["sensor_band_parameters/fwhm"][:]
    info = read_spectral_info(ds)
    assert info.source == "band metadata"
    np.testing.assert_allclose(info.wavelength_nm, wl, atol=6e-3)  # written with 6 significant digits
    np.testing.assert_allclose(info.fwhm_nm, fwhm, atol=1e-5)
    assert 380 < info.wavelength_nm[0] < 382 and 2492 < info.wavelength_nm[-1] < 2494
    assert ds.GetRasterBand(1).GetNoDataValue() == -9999.0
    assert ds.GetMetadataItem("EMIT_PRODUCT") == "L1B RDN"
    # A window spanning several netCDF chunks (32 rows each), through the all-band fast path ...
    window = raster_io.Window(5, 20, 120, 100)
    values, valid = raster_io.read_block(ds, window)
    expected = np.moveaxis(cube[20:120, 5:125], -1, 0)
    np.testing.assert_array_equal(valid, np.all(expected != -9999.0, axis=0))
    np.testing.assert_array_equal(values[:, valid], expected[:, valid])
    assert np.isnan(values[:, ~valid]).all() and (~valid).any()  # Libya clip nodata pixels tiled in
    # ... and through the per-band path (band subset).
    sub = raster_io.read_window(ds, window, bands=[3, 100])
    np.testing.assert_array_equal(sub, expected[[2, 99]])
    # Iterating blocks covers the whole cube exactly once.
    total = 0
    for w in raster_io.iter_windows(200, 200, raster_io.block_rows_for(200, 285, budget=8 << 20)):
        total += raster_io.read_block(ds, w)[1].sum()
    assert total == np.all(cube != -9999.0, axis=-1).sum()


def test_variable_override_syntax(radiance_nc):
    obs = str(shared(*OBS_NC))
    for spec in (f"{obs}|location/elev", f"{obs}|variable=location/elev", f'NETCDF:"{obs}":location/elev'):
        ds = raster_io.open_raster(spec)
        assert (ds.RasterXSize, ds.RasterYSize, ds.RasterCount) == (200, 200, 1), spec
        assert ds.GetMetadataItem("EMIT_VARIABLE") == "location/elev"
    elev = raster_io.read_window(ds, raster_io.Window(0, 0, 200, 200))[0]
    np.testing.assert_allclose(elev, nc_variable(obs, "location/elev"))
    with pytest.raises(InputError, match=r"input.*no variable 'radiance'.*available: .*obs"):
        raster_io.open_raster(f"{obs}|radiance")


def test_netcdf_without_data_variables(tmp_path, radiance_nc):
    path, _ = build_radiance_nc(tmp_path / "EMIT_broken.nc", rows=20, cols=20, drop=("radiance",))
    with pytest.raises(InputError, match=r"input.*EMIT netCDF without a data variable"):
        raster_io.open_raster(str(path))
    # A netCDF that is not an EMIT product is left to GDAL's own netCDF driver.
    import netCDF4

    plain = tmp_path / "plain.nc"
    with netCDF4.Dataset(str(plain), "w") as d:
        d.createDimension("y", 4)
        d.createDimension("x", 5)
        d.createVariable("t", "f4", ("y", "x"))[:] = np.arange(20, dtype=np.float32).reshape(4, 5)
    assert emit_netcdf.open_if_emit(str(plain)) is None
    ds = raster_io.open_raster(str(plain))
    assert (ds.RasterXSize, ds.RasterYSize) == (5, 4)


def test_toa_converter_reads_netcdf_obs(radiance_nc):
    """The runtime TOA converter takes the netCDF radiance + the real netCDF OBS (bands 5 and 11)."""
    path, cube = radiance_nc
    conv = toa.ToaConverter.create(raster_io.open_raster(path), observation_ds=str(shared(*OBS_NC)))
    window = raster_io.Window(0, 0, 200, 25)
    rad, valid = raster_io.read_block(raster_io.open_raster(path), window)
    rho = conv.convert(window, rad)
    obs = nc_variable(shared(*OBS_NC), "obs")
    # Independent check of the geometry used: ρ·cosθs/d² is the same for every pixel of a band.
    cos_sz = np.cos(np.deg2rad(obs[:25, :, 4]))
    ratio = rho[:, valid] * cos_sz[valid] / rad[:, valid]
    np.testing.assert_allclose(ratio, ratio[:, :1] * np.ones_like(ratio), rtol=1e-4)
    b865 = int(np.argmin(np.abs(read_spectral_info(raster_io.open_raster(path)).wavelength_nm - 865)))
    assert 0.2 < np.nanmedian(rho[b865][valid]) < 0.8  # bright desert


def _to_geotiff(src_path, out_path):
    """Copy an opened EMIT variable to a GeoTIFF with the same band metadata (reference route)."""
    ds = raster_io.open_raster(src_path)
    data = raster_io.read_window(ds, raster_io.Window(0, 0, ds.RasterXSize, ds.RasterYSize))
    pipeline.write_array(str(out_path), data, nodata=-9999.0)
    from osgeo import gdal

    out = gdal.Open(str(out_path), gdal.GA_Update)
    info = read_spectral_info(ds)
    if info.wavelength_nm is not None:
        write_spectral_metadata(out, info.wavelength_nm, info.fwhm_nm)
    for i in range(ds.RasterCount):
        out.GetRasterBand(i + 1).SetDescription(ds.GetRasterBand(i + 1).GetDescription())
    out = None
    return str(out_path)


def test_processing_toa_from_netcdf_equals_geotiff_route(processing_provider, radiance_nc, tmp_path):
    """spectraltf:toareflectance on the netCDF radiance + real netCDF OBS gives exactly what it gives on
    GeoTIFF copies of the same arrays (so the netCDF path is transparent to the algorithm)."""
    import processing
    from osgeo import gdal

    path, cube = radiance_nc
    obs = str(shared(*OBS_NC))
    res = processing.run("spectraltf:toareflectance", {
        "INPUT": path, "OBSERVATION": obs, "OUTPUT": str(tmp_path / "toa_nc.tif")})
    ref = processing.run("spectraltf:toareflectance", {
        "INPUT": _to_geotiff(path, tmp_path / "rdn.tif"), "OBSERVATION": _to_geotiff(obs, tmp_path / "obs.tif"),
        "OUTPUT": str(tmp_path / "toa_tif.tif")})
    a = gdal.Open(res["OUTPUT"]).ReadAsArray()
    b = gdal.Open(ref["OUTPUT"]).ReadAsArray()
    assert a.shape == (285, 200, 200)
    np.testing.assert_array_equal(a, b)
    valid = np.all(cube != -9999.0, axis=-1)
    assert np.all(a[:, ~valid] == -9999.0)
    out = raster_io.open_raster(res["OUTPUT"])
    np.testing.assert_allclose(read_spectral_info(out).wavelength_nm,
                               read_spectral_info(raster_io.open_raster(path)).wavelength_nm)
