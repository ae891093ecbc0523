"""Refuse raster files shorter than their header implies (an interrupted download or copy).

GDAL reads raw formats (ENVI, EHdr, …) past the end of a short file as zeros, so a truncated cube
would silently become a block of zeros (a 100 % cloud mask). :func:`check_complete` compares, where
the format lets us tell, the bytes the header implies with the file's size — before any work:

* raw binary formats (ENVI, EHdr, GenBin, ISCE, PAux, …): ``header offset + samples · lines · bands ·
  bytes per value`` must fit in the data file;
* GeoTIFF (tiled or striped, any interleave): the last block of every band (offset + byte count
  from the TIFF directory) must lie inside the file.

Other formats (netCDF, HDF5, JPEG 2000, …) report truncation themselves when read.
"""
import os

from ..errors import InputError

#: GDAL drivers whose data are a plain binary array described by a header.
RAW_DRIVERS = {"ENVI", "EHdr", "GenBin", "ISCE", "PAux", "MFF", "LAN", "BT", "NDF", "FAST", "GSC", "ISIS2",
               "PDS", "SNODAS", "CPG", "LOSLAS", "NTv1", "ROI_PAC", "RRASTER", "KRO", "BYN", "NOAA_B"}


def _data_file(ds):
    files = ds.GetFileList() or []
    return files[0] if files else None


def _raw_expected(ds):
    from osgeo import gdal

    band = ds.GetRasterBand(1)
    size = gdal.GetDataTypeSize(band.DataType) // 8
    offset = 0
    envi = ds.GetMetadata("ENVI") or {}
    try:
        offset = int(float(envi.get("header_offset", 0) or 0))
    except ValueError:
        offset = 0
    return offset + ds.RasterXSize * ds.RasterYSize * ds.RasterCount * size


def _tiff_expected(ds):
    """End of the last block of any band (bytes), from the TIFF directory; None when unknown."""
    end = None
    for i in range(ds.RasterCount):
        band = ds.GetRasterBand(i + 1)
        bw, bh = band.GetBlockSize()
        nx, ny = -(-ds.RasterXSize // max(1, bw)), -(-ds.RasterYSize // max(1, bh))
        for bx, by in {(nx - 1, ny - 1), (0, 0)}:
            off = band.GetMetadataItem(f"BLOCK_OFFSET_{bx}_{by}", "TIFF")
            cnt = band.GetMetadataItem(f"BLOCK_SIZE_{bx}_{by}", "TIFF")
            if off and cnt and int(off) > 0:
                end = max(end or 0, int(off) + int(cnt))
        if i == 0 and (ds.GetMetadataItem("INTERLEAVE", "IMAGE_STRUCTURE") or "").upper() == "PIXEL":
            break  # pixel-interleaved: every band shares the same blocks
    return end


def check_complete(ds, parameter="input"):
    """Raise :class:`InputError` naming ``parameter`` when the data file of ``ds`` is shorter than its
    header implies (formats where that can be told; see the module docstring)."""
    try:
        driver = ds.GetDriver().ShortName
    except AttributeError:  # wrapped datasets (EMIT netCDF reader) check themselves
        return
    path = _data_file(ds)
    if not path or path.startswith("/vsi") or not os.path.isfile(path):
        return
    if driver in RAW_DRIVERS:
        expected = _raw_expected(ds)
    elif driver == "GTiff":
        expected = _tiff_expected(ds)
    else:
        return
    actual = os.path.getsize(path)
    if expected is not None and actual < expected:
        raise InputError(
            f"{path} is {actual:,} bytes but its header describes {ds.RasterXSize} × {ds.RasterYSize} pixels × "
            f"{ds.RasterCount} bands needing {expected:,} bytes ({100 * actual / expected:.0f} % present): the file "
            "is truncated (an interrupted download or copy?). Download or copy it again.", parameter)
