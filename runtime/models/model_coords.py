"""Extra inputs of Prithvi-EO-2.0 ``_tl`` models: acquisition dates and location (QGIS-free).

* ``temporal_coords``: (T, 2) float32, per date ``[year, day of year − 1]`` (1 January = 0), as
  Prithvi-EO-2.0 and TerraTorch encode them;
* ``location_coords``: (2,) float32 ``[latitude, longitude]`` in degrees (WGS 84) of the raster
  centre (one location per raster, as TerraTorch's tiled inference passes one per image).

The runtime repeats them over every batch of tiles.
"""
import numpy as np

from ..io import dates as dates_mod
from ..errors import InputError


def temporal_coords(dates):
    """(T, 2) float32 ``[year, doy − 1]`` for a list of dates."""
    ds = [dates_mod.parse_date(d) for d in dates]
    return np.array([[d.year, d.timetuple().tm_yday - 1] for d in ds], dtype=np.float32)


def raster_centre_wgs84(ds, parameter="input"):
    """(latitude, longitude) in degrees of the centre of GDAL dataset ``ds``."""
    from osgeo import osr

    gt = ds.GetGeoTransform(can_return_null=True)
    wkt = ds.GetProjection()
    if gt is None or not wkt:
        raise InputError("the raster has no georeferencing (geotransform and CRS), but the model needs the "
                         "location of the raster centre (location_coords); assign a CRS first.", parameter)
    cx, cy = ds.RasterXSize / 2.0, ds.RasterYSize / 2.0
    x = gt[0] + cx * gt[1] + cy * gt[2]
    y = gt[3] + cx * gt[4] + cy * gt[5]
    src = osr.SpatialReference()
    src.ImportFromWkt(wkt)
    dst = osr.SpatialReference()
    dst.ImportFromEPSG(4326)
    for srs in (src, dst):
        srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    lon, lat, _ = osr.CoordinateTransformation(src, dst).TransformPoint(x, y)
    if not (np.isfinite(lat) and np.isfinite(lon) and -90 <= lat <= 90):
        raise InputError(f"the raster centre ({x}, {y}) does not transform to WGS 84.", parameter)
    return float(lat), float(lon)


def model_coords(card, datasets, paths, dates_text=None, monitor=None):
    """The extra inputs the card asks for: dict key → array (see module docstring)."""
    inp = card["input"]
    out = {}
    if inp.get("temporal_coords"):
        frames = inp["frames"]
        dates, source = dates_mod.resolve_dates(frames, dates_text, datasets, paths)
        out["temporal_coords"] = temporal_coords(dates)
        if monitor is not None:
            monitor.info(f"temporal_coords from {frames} date(s) ({source}): " + ", ".join(
                f"{d.isoformat()} (year {d.year}, doy-1 {d.timetuple().tm_yday - 1})" for d in dates))
    if inp.get("location_coords"):
        lat, lon = raster_centre_wgs84(datasets[0])
        out["location_coords"] = np.array([lat, lon], dtype=np.float32)
        if monitor is not None:
            monitor.info(f"location_coords: raster centre lat {lat:.6f}, lon {lon:.6f} (WGS 84)")
    return out
