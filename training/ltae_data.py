"""L-TAE training data: the eo-learn time-series patch, pixel series, spatial split, per-date rasters."""
import datetime as _dt
import json
import os

import numpy as np


def load_eolearn(folder):
    """The eo-learn Slovenia patch: dict with ``cube`` (T, 1, H, W) NDVI float32, ``dates`` (list of
    date), ``labels`` (H, W) int, ``clm`` (T, H, W) uint8 cloud mask, ``clp`` cloud probability,
    ``valid`` (T, H, W) bool, ``bbox`` (xmin, ymin, xmax, ymax) metres, ``epsg``."""
    def load(name):
        return np.load(os.path.join(folder, f"{name}.npy"))

    with open(os.path.join(folder, "timestamps.json")) as fh:
        stamps = json.load(fh)
    with open(os.path.join(folder, "bbox.geojson")) as fh:
        geo = json.load(fh)
    coords = np.asarray(geo["coordinates"][0], np.float64)
    crs = geo.get("crs", {}).get("properties", {}).get("name", "EPSG::32633")
    ndvi = load("ndvi")
    return {
        "cube": np.ascontiguousarray(np.transpose(ndvi, (0, 3, 1, 2)).astype(np.float32)),
        "dates": [_dt.date.fromisoformat(s[:10]) for s in stamps],
        "labels": load("lulc")[..., 0].astype(np.int64),
        "clm": load("clm")[..., 0],
        "clp": load("clp")[..., 0],
        "valid": load("is_data")[..., 0].astype(bool),
        "bbox": (coords[:, 0].min(), coords[:, 1].min(), coords[:, 0].max(), coords[:, 1].max()),
        "epsg": int(crs.split(":")[-1]),
        "channels": ["NDVI"],
    }


def pixels(cube, rows=None, cols=None, mask=None):
    """(T, C, H, W) cube → (N, T, C) float32 series of the pixels where ``mask`` (H, W) is True."""
    t, c, h, w = cube.shape
    flat = cube.reshape(t, c, h * w).transpose(2, 0, 1)
    if mask is not None:
        flat = flat[np.asarray(mask, bool).reshape(-1)]
    return np.ascontiguousarray(flat, dtype=np.float32)


def spatial_split(height, width, block=25, seed=0):
    """Checkerboard of ``block``-pixel squares: (train, test) boolean (H, W) masks (spatially disjoint)."""
    r = np.arange(height)[:, None] // block
    c = np.arange(width)[None, :] // block
    train = (r + c + seed) % 2 == 0
    return train, ~train


def write_date_rasters(cube, dates, folder, bbox=None, epsg=None, prefix="series", metadata_dates=True):
    """Write a (T, C, H, W) cube as one GeoTIFF per date (``<prefix>_<index>_<YYYYMMDD>.tif``),
    georeferenced from ``bbox`` (xmin, ymin, xmax, ymax) in ``epsg``, with the date as
    ``ACQUISITION_DATE`` metadata. Returns the paths in date order."""
    from osgeo import gdal, osr

    from ..runtime import pipeline
    from ..runtime.io import raster_io

    t, c, h, w = cube.shape
    grid = raster_io.Grid(w, h)
    if bbox is not None:
        xmin, ymin, xmax, ymax = bbox
        grid.geotransform = (xmin, (xmax - xmin) / w, 0.0, ymax, 0.0, -(ymax - ymin) / h)
    if epsg:
        srs = osr.SpatialReference()
        srs.ImportFromEPSG(int(epsg))
        grid.projection = srs.ExportToWkt()
    os.makedirs(folder, exist_ok=True)
    paths = []
    for i, d in enumerate(dates):
        iso = d.isoformat() if hasattr(d, "isoformat") else str(d)[:10]
        path = os.path.join(folder, f"{prefix}_{i:03d}_{iso.replace('-', '')}.tif")
        pipeline.write_array(path, cube[i], grid=grid)
        if metadata_dates:
            ds = gdal.Open(path, gdal.GA_Update)
            ds.SetMetadataItem("ACQUISITION_DATE", iso)
            ds = None
        paths.append(path)
    return paths
