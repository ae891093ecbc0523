"""Writable raster formats (a whitelist) and the files each output and input occupies on disk.

Only formats whose every file the pipeline knows are written, so it can stage them in a temporary
folder and move them into place together:

=====================================  ======  ==============================================
Extension                              Driver  Files at the destination
=====================================  ======  ==============================================
``.tif`` ``.tiff`` (or none)           GTiff   ``x.tif`` [+ ``x.tif.aux.xml``] [+ ``x.qml``]
``.img`` ``.dat`` ``.bsq`` ``.bil``    ENVI    ``x.img`` + ``x.hdr`` [+ ``x.img.aux.xml``]
``.bip``                                       [+ ``x.qml``] (interleave from the extension)
=====================================  ======  ==============================================

Everything else is refused before any work with a line saying what to use instead (``.vrt``
would only point at temporary data, ``.hdr`` is an ENVI header, not a raster, ``.gpkg``/``.jpg``
and friends cannot hold float data or are written by copying a finished raster).
"""
import os

import numpy as np

from ..errors import InputError

GTIFF_EXTENSIONS = ("", ".tif", ".tiff")
ENVI_INTERLEAVE = {".img": "BSQ", ".dat": "BSQ", ".bsq": "BSQ", ".bil": "BIL", ".bip": "BIP"}

#: Why a known extension is not written, and what to use.
REFUSED = {
    ".vrt": "a .vrt only points at other files; write a GeoTIFF (.tif) instead",
    ".hdr": "a .hdr file is an ENVI header, not a raster; give the data file name (e.g. result.img) and the "
            "header is written beside it",
    ".aux.xml": "an .aux.xml file is a GDAL side file, not a raster; use .tif",
    ".xml": "an .xml file is not a raster; use .tif",
    ".qml": "a .qml file is a QGIS style, not a raster; use .tif",
    ".gpkg": "GeoPackage rasters hold only 8-bit/16-bit tiles here; use .tif (GeoTIFF)",
    ".jpg": "JPEG is lossy and 8-bit only; use .tif (GeoTIFF)",
    ".jpeg": "JPEG is lossy and 8-bit only; use .tif (GeoTIFF)",
    ".png": "PNG is 8/16-bit only without georeferencing; use .tif (GeoTIFF)",
    ".nc": "netCDF outputs are not supported; use .tif (GeoTIFF) or .img (ENVI)",
    ".jp2": "JPEG 2000 is not supported as an output; use .tif (GeoTIFF)",
    ".asc": "ASCII grids hold one band only; use .tif (GeoTIFF)",
    ".onnx": "an .onnx file is a model, not a raster; use .tif",
    ".json": "a .json file is not a raster; use .tif",
}


def extension(path):
    name = os.path.basename(str(path)).lower()
    if name.endswith(".aux.xml"):
        return ".aux.xml"
    return os.path.splitext(name)[1]


def driver_for(path, parameter="output"):
    """``(driver short name, creation details)`` for an output path, or :class:`InputError`."""
    ext = extension(path)
    if ext in GTIFF_EXTENSIONS:
        return "GTiff"
    if ext in ENVI_INTERLEAVE:
        return "ENVI"
    why = REFUSED.get(ext) or (f"'{ext}' is not a raster format written here; use .tif (GeoTIFF) or .img/.dat/"
                               ".bsq/.bil/.bip (ENVI)")
    raise InputError(f"cannot write {os.path.basename(str(path))}: {why}.", parameter)


def envi_header(path):
    """The ENVI header GDAL writes for ``path`` (``x.img`` → ``x.hdr``)."""
    return os.path.splitext(str(path))[0] + ".hdr"


def qml_path_for(path):
    """The style QGIS loads automatically for ``path`` (``x.tif`` → ``x.qml``)."""
    return os.path.splitext(str(path))[0] + ".qml"


def output_files(path, driver):
    """Every file an output at ``path`` may create or replace at its destination (data first)."""
    path = str(path)
    files = [path, path + ".aux.xml", path + ".ovr", path + ".msk"]
    if driver == "ENVI":
        files += [envi_header(path), path + ".hdr", os.path.splitext(path)[0] + ".sta"]
    return files


def sidecars_of_input(path):
    """Side files GDAL or QGIS may read or write beside an input raster file."""
    stem = os.path.splitext(path)[0]
    return [path + ".aux.xml", stem + ".hdr", path + ".hdr", stem + ".aux", path + ".ovr", path + ".msk",
            stem + ".qml"]


def creation_options(driver, path, dtype, bands, tile, tile_width, compression="ZSTD"):
    """GDAL creation options: tiled, compressed GeoTIFF; ENVI with the extension's interleave."""
    if driver == "ENVI":
        return [f"INTERLEAVE={ENVI_INTERLEAVE.get(extension(path), 'BSQ')}"]
    from osgeo import gdal

    available = gdal.GetDriverByName("GTiff").GetMetadataItem("DMD_CREATIONOPTIONLIST") or ""
    method = str(compression or "ZSTD").upper()
    if method == "ZSTD" and "ZSTD" not in available:
        method = "DEFLATE"
    options = ["TILED=YES", f"BLOCKXSIZE={tile_width}", f"BLOCKYSIZE={tile}", "BIGTIFF=IF_SAFER",
               "NUM_THREADS=ALL_CPUS", "INTERLEAVE=BAND" if bands > 4 else "INTERLEAVE=PIXEL"]
    if method == "NONE":
        return options + ["COMPRESS=NONE"]
    options.append(f"COMPRESS={method}")
    if method == "ZSTD":
        options.append("ZSTD_LEVEL=1")
    elif method == "DEFLATE":
        options.append("ZLEVEL=1")
    if np.dtype(dtype) != np.uint8:
        options.append("PREDICTOR=3" if np.dtype(dtype).kind == "f" else "PREDICTOR=2")
    return options
