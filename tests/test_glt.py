"""Orthorectification with the EMIT GLT (runtime.physics.glt and spectraltf:orthorectify), on the real EMIT MASK
and OBS netCDF crops (200 × 200 sensor grid, 354 × 318 map grid)."""
import os

import numpy as np
import pytest

from fixtures_emit import MASK_NC, OBS_NC
from support import shared

from spectral_transformers.runtime.physics import glt
from spectral_transformers.runtime.io import raster_io
from spectral_transformers.runtime import pipeline
from spectral_transformers.runtime.errors import Cancelled, InputError
from spectral_transformers.runtime.monitor import RecordingMonitor


def nc(path):
    """Independent read with python-netCDF4: (data dict, global attributes)."""
    import netCDF4

    with netCDF4.Dataset(str(path)) as d:
        data = {"glt_x": np.asarray(d["location/glt_x"][:]), "glt_y": np.asarray(d["location/glt_y"][:])}
        for name in ("mask", "obs"):
            if name in d.variables:
                data[name] = np.ma.filled(d[name][:], -9999.0)
        return data, {k: d.getncattr(k) for k in d.ncattrs()}


def lookup(sensor, glt_x, glt_y, fill):
    """EMIT's convention written out: out[r, c] = sensor[glt_y − 1, glt_x − 1], 0 = outside the swath.
    ``sensor``: (rows, cols, bands) → (map rows, map cols, bands)."""
    out = np.full(glt_x.shape + sensor.shape[2:], fill, dtype=sensor.dtype)
    for r in range(glt_x.shape[0]):
        for c in range(glt_x.shape[1]):
            if glt_x[r, c] != 0 and glt_y[r, c] != 0:
                out[r, c] = sensor[abs(glt_y[r, c]) - 1, abs(glt_x[r, c]) - 1]
    return out


def test_real_mask_orthorectified_equals_glt_lookup(tmp_path):
    from osgeo import gdal, osr

    path = shared(*MASK_NC)
    data, attrs = nc(path)
    gx, gy = data["glt_x"], data["glt_y"]
    assert gx.shape == (318, 354) and gx.min() == 0 and gx.max() == 200 and gy.max() == 200  # 1-based
    mon = RecordingMonitor()
    out = glt.orthorectify(str(path), str(path), str(tmp_path / "mask_ortho.tif"), mon)
    ds = gdal.Open(out)
    assert (ds.RasterXSize, ds.RasterYSize, ds.RasterCount) == (354, 318, 8)
    np.testing.assert_allclose(ds.GetGeoTransform(), attrs["geotransform"], rtol=0, atol=1e-12)
    ref = osr.SpatialReference()
    ref.ImportFromWkt(attrs["spatial_ref"])
    assert ds.GetSpatialRef().IsSame(ref, ["IGNORE_DATA_AXIS_TO_SRS_AXIS_MAPPING=YES"])
    assert ds.GetSpatialRef().GetAuthorityCode(None) == ref.GetAuthorityCode(None) == "4326"
    expected = lookup(data["mask"], gx, gy, -9999.0)
    np.testing.assert_array_equal(np.moveaxis(ds.ReadAsArray(), 0, -1), expected)
    assert ds.GetRasterBand(1).GetNoDataValue() == -9999.0
    assert ds.GetRasterBand(8).GetDescription() == "Aggregate Flag"
    assert (expected[..., 0] == -9999.0).sum() == (gx == 0).sum() > 0  # outside the swath stays nodata
    assert mon.fractions[-1] == pytest.approx(1.0)


def test_geolocation_consistent_with_lat_lon():
    """The GLT convention (1-based, glt_x = sample) puts each sensor pixel within ~1 map pixel of its
    own lat/lon (independent check of the index convention with the product's location arrays)."""
    import netCDF4

    with netCDF4.Dataset(str(shared(*OBS_NC))) as d:
        gx, gy = d["location/glt_x"][:], d["location/glt_y"][:]
        lat, lon = d["location/lat"][:], d["location/lon"][:]
        gt = d.geotransform
    rows, cols = np.nonzero(gx > 0)
    x = gt[0] + (cols + 0.5) * gt[1]
    y = gt[3] + (rows + 0.5) * gt[5]
    err_lon = np.abs(lon[gy[rows, cols] - 1, gx[rows, cols] - 1] - x) / gt[1]
    err_lat = np.abs(lat[gy[rows, cols] - 1, gx[rows, cols] - 1] - y) / -gt[5]
    assert err_lon.max() < 1.2 and err_lat.max() < 1.2
    # Swapping the axes or using 0-based indices would be visibly worse.
    err_swapped = np.abs(lon[gx[rows, cols] - 1, gy[rows, cols] - 1] - x) / gt[1]
    assert err_swapped.max() > 5


def test_class_raster_output_hook_keeps_colours_and_style(tmp_path):
    """orthorectify on a uint8 class raster without nodata: colour table, band name and .qml are kept;
    outside the swath gets 255."""
    from osgeo import gdal

    path = shared(*OBS_NC)
    data, _ = nc(path)
    classes = (data["obs"][..., 4] > 35.67).astype(np.uint8)  # a sensor-geometry class raster
    sensor = str(tmp_path / "classes.tif")
    pipeline.write_array(sensor, classes)
    ds = gdal.Open(sensor, gdal.GA_Update)
    ct = gdal.ColorTable()
    ct.SetColorEntry(0, (0, 128, 0, 255))
    ct.SetColorEntry(1, (255, 255, 255, 255))
    ds.GetRasterBand(1).SetColorTable(ct)
    ds.GetRasterBand(1).SetDescription("high sun zenith")
    ds = None
    with open(str(tmp_path / "classes.qml"), "w") as f:
        f.write("<qgis><!-- style --></qgis>\n")
    out = glt.orthorectify(sensor, str(path), str(tmp_path / "classes_ortho.tif"))
    assert out == str(tmp_path / "classes_ortho.tif")
    assert os.path.exists(str(tmp_path / "classes_ortho.qml"))
    o = gdal.Open(out)
    band = o.GetRasterBand(1)
    assert band.DataType == gdal.GDT_Byte and band.GetNoDataValue() == 255
    assert band.GetColorTable().GetColorEntry(1) == (255, 255, 255, 255)
    assert band.GetDescription() == "high sun zenith"
    expected = lookup(classes[..., None], data["glt_x"], data["glt_y"], 255)[..., 0]
    np.testing.assert_array_equal(band.ReadAsArray(), expected)
    assert glt.glt_source_for(str(shared(*MASK_NC))) == str(shared(*MASK_NC))
    assert glt.glt_source_for(sensor) is None


def test_two_band_glt_raster_and_small_blocks(tmp_path):
    """A georeferenced 2-band GLT raster gives the same result as the netCDF GLT, also with a tiny block
    budget (many tiles, tiles split to bound the sensor window)."""
    from osgeo import gdal

    path = shared(*MASK_NC)
    data, attrs = nc(path)
    glt_tif = str(tmp_path / "glt.tif")
    grid = raster_io.Grid(354, 318, tuple(attrs["geotransform"]), attrs["spatial_ref"])
    pipeline.write_array(glt_tif, np.stack([data["glt_x"], data["glt_y"]]).astype(np.int32), grid=grid)
    a = glt.orthorectify(str(path), str(path), str(tmp_path / "a.tif"))
    b = glt.orthorectify(str(path), glt_tif, str(tmp_path / "b.tif"), block_bytes=64 * 1024)
    np.testing.assert_array_equal(gdal.Open(a).ReadAsArray(), gdal.Open(b).ReadAsArray())
    assert gdal.Open(b).GetGeoTransform() == gdal.Open(a).GetGeoTransform()


def test_size_mismatch_and_bad_glt(tmp_path):
    path = str(shared(*MASK_NC))
    small = str(tmp_path / "small.tif")
    pipeline.write_array(small, np.zeros((1, 100, 120), np.float32))
    out = tmp_path / "o.tif"
    with pytest.raises(InputError, match=r"^input: the raster is 120 × 100 .* GLT .*200 × 200 sensor grid"):
        glt.orthorectify(small, path, str(out))
    assert not out.exists()
    # 2-band GLT raster (sensor size unknown): indices beyond the input are caught too.
    data, attrs = nc(path)
    glt_tif = str(tmp_path / "glt.tif")
    grid = raster_io.Grid(354, 318, tuple(attrs["geotransform"]), attrs["spatial_ref"])
    pipeline.write_array(glt_tif, np.stack([data["glt_x"], data["glt_y"]]).astype(np.int32), grid=grid)
    with pytest.raises(InputError, match=r"^input: the GLT in glt addresses sensor sample 200 / line 200"):
        glt.orthorectify(small, glt_tif, str(out))
    # Not a GLT: a netCDF without location/glt_x, a 1-band raster, an ungeoreferenced raster.
    from fixtures_emit import build_radiance_nc

    no_loc, _ = build_radiance_nc(tmp_path / "noloc.nc", rows=10, cols=10, drop=("location",))
    with pytest.raises(InputError, match=r"^glt: .*no geometry lookup table"):
        glt.orthorectify(path, str(no_loc), str(out))
    with pytest.raises(InputError, match=r"^glt: .*1 band"):
        glt.orthorectify(path, _one_band(tmp_path), str(out))
    with pytest.raises(InputError, match=r"^glt: .*no georeferencing"):
        glt.open_glt(_two_band_plain(tmp_path))
    assert not out.exists()


def _one_band(tmp_path):
    p = str(tmp_path / "one.tif")
    pipeline.write_array(p, np.ones((1, 4, 4), np.int32), grid=raster_io.Grid(4, 4, (0, 1, 0, 0, 0, -1)))
    return p


def _two_band_plain(tmp_path):
    p = str(tmp_path / "plain2.tif")
    pipeline.write_array(p, np.ones((2, 4, 4), np.int32))
    return p


def test_cancel_leaves_no_output(tmp_path):
    path = str(shared(*MASK_NC))
    out = tmp_path / "c.tif"
    with pytest.raises(Cancelled):
        glt.orthorectify(path, path, str(out), RecordingMonitor(cancel_after=3), block_bytes=64 * 1024)
    assert not out.exists()
    assert not [p for p in os.listdir(tmp_path) if "partial" in p]


def test_processing_algorithm(processing_provider, tmp_path):
    import processing
    from osgeo import gdal
    from qgis.core import QgsProcessingException

    mask = str(shared(*MASK_NC))
    obs = str(shared(*OBS_NC))
    # EMIT netCDF as INPUT, GLT taken from it.
    res = processing.run("spectraltf:orthorectify", {"INPUT": mask, "OUTPUT": str(tmp_path / "m.tif")})
    ref = glt.orthorectify(mask, mask, str(tmp_path / "ref.tif"))
    np.testing.assert_array_equal(gdal.Open(res["OUTPUT"]).ReadAsArray(), gdal.Open(ref).ReadAsArray())
    # A GeoTIFF in sensor geometry with the OBS netCDF as GLT (variable override syntax as INPUT too).
    res = processing.run("spectraltf:orthorectify", {
        "INPUT": f"{obs}|location/elev", "GLT": obs, "OUTPUT": str(tmp_path / "elev.tif")})
    assert gdal.Open(res["OUTPUT"]).RasterCount == 1
    small = str(tmp_path / "small.tif")
    pipeline.write_array(small, np.zeros((1, 10, 10), np.float32))
    with pytest.raises(QgsProcessingException, match="INPUT: the raster is 10 × 10"):
        processing.run("spectraltf:orthorectify", {"INPUT": small, "GLT": mask, "OUTPUT": str(tmp_path / "x.tif")})
    with pytest.raises(QgsProcessingException, match="GLT: no geometry lookup table given"):
        processing.run("spectraltf:orthorectify", {"INPUT": small, "OUTPUT": str(tmp_path / "y.tif")})
    alg = processing_provider.algorithm("orthorectify")
    assert alg.displayName() == "Orthorectify with EMIT GLT" and "GLT" in alg.shortHelpString()
