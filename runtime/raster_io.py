"""Windowed raster reading and writing through GDAL.

Memory stays bounded whatever the raster size: callers iterate over :func:`iter_windows` (full-width
strips whose height is chosen from a byte budget and aligned to the output tile height), read a
window with :func:`read_window`, and write it with :class:`RasterWriter`.

Outputs are written to a hidden temporary file beside the destination and renamed into place only
when complete, so a failed or cancelled run never leaves a partial file that looks finished.
"""
import os
import tempfile
import uuid
from dataclasses import dataclass
from typing import NamedTuple, Optional, Sequence

import numpy as np

from .errors import InputError

try:  # GDAL is always present inside QGIS; give a clear error elsewhere.
    from osgeo import gdal, osr  # noqa: F401

    gdal.UseExceptions()
except ImportError:  # pragma: no cover - exercised only on machines without GDAL
    gdal = None

#: Default budget for one block of input data, in bytes.
DEFAULT_BLOCK_BYTES = 64 * 1024 * 1024

_GDAL_TO_NUMPY = {}
_NUMPY_TO_GDAL = {}


def _require_gdal():
    if gdal is None:
        raise InputError("GDAL's Python bindings (osgeo.gdal) are required; install python3-gdal.")


def _type_maps():
    if not _NUMPY_TO_GDAL:
        pairs = [
            (np.uint8, gdal.GDT_Byte), (np.uint16, gdal.GDT_UInt16), (np.int16, gdal.GDT_Int16),
            (np.uint32, gdal.GDT_UInt32), (np.int32, gdal.GDT_Int32),
            (np.float32, gdal.GDT_Float32), (np.float64, gdal.GDT_Float64),
        ]
        for np_type, gdal_type in pairs:
            _NUMPY_TO_GDAL[np.dtype(np_type)] = gdal_type
            _GDAL_TO_NUMPY[gdal_type] = np.dtype(np_type)
    return _NUMPY_TO_GDAL, _GDAL_TO_NUMPY


class Window(NamedTuple):
    """A pixel window: column offset, row offset, width, height."""

    xoff: int
    yoff: int
    xsize: int
    ysize: int

    @property
    def slices(self):
        """(row slice, column slice) for indexing a full-size array."""
        return slice(self.yoff, self.yoff + self.ysize), slice(self.xoff, self.xoff + self.xsize)


@dataclass
class Grid:
    """Size and georeferencing of a raster (what an output must share with its input)."""

    width: int
    height: int
    geotransform: Optional[tuple] = None
    projection: str = ""
    gcps: tuple = ()
    gcp_projection: str = ""

    @classmethod
    def of(cls, ds):
        gt = ds.GetGeoTransform(can_return_null=True)
        gcps = tuple(ds.GetGCPs() or ())
        return cls(ds.RasterXSize, ds.RasterYSize, gt, ds.GetProjection() or "",
                   gcps, ds.GetGCPProjection() or "" if gcps else "")

    def same_size(self, other):
        return self.width == other.width and self.height == other.height


def open_raster(path, parameter="INPUT"):
    """Open a raster read-only; raise :class:`InputError` naming ``parameter`` when that fails."""
    _require_gdal()
    if path is None or str(path).strip() == "":
        raise InputError("no raster given; expected the path of a raster file.", parameter)
    path = str(path)
    local = path.split("|")[0]
    if not local.startswith(("/vsi", "NETCDF:", "HDF5:")) and not os.path.exists(local):
        raise InputError(f"file not found: {local}", parameter)
    from .emit_netcdf import open_if_emit  # EMIT netCDF swaths: spectral bands in sensor geometry

    emit = open_if_emit(path, parameter)
    if emit is not None:
        return emit
    try:
        ds = gdal.Open(path, gdal.GA_ReadOnly)
    except RuntimeError as exc:
        raise InputError(f"cannot open {path} as a raster ({exc}).", parameter) from None
    if ds is None or ds.RasterCount == 0:
        raise InputError(f"{path} is not a raster with bands.", parameter)
    return ds


def nodata_values(ds):
    """Per-band nodata value (``None`` where unset)."""
    return [ds.GetRasterBand(i + 1).GetNoDataValue() for i in range(ds.RasterCount)]


def tile_size_for(width, bands, bytes_per_value=4, budget=DEFAULT_BLOCK_BYTES, preferred=256):
    """Output tile edge (multiple of 16, at most ``preferred``) such that one full-width row of tiles
    for all bands fits in ``budget`` bytes. Many-band outputs get smaller tiles."""
    per_row = max(1, width * bands * bytes_per_value)
    edge = preferred
    while edge > 16 and edge * per_row > budget:
        edge //= 2
    return max(16, edge - edge % 16)


def block_rows_for(width, bands, bytes_per_value=4, budget=DEFAULT_BLOCK_BYTES, align=1):
    """Rows per full-width block so that ``bands`` × rows × ``width`` values fit in ``budget``;
    a multiple of ``align`` (the output tile height) when possible."""
    rows = max(1, budget // max(1, width * bands * bytes_per_value))
    if rows >= align:
        rows -= rows % align
    return int(rows)


def iter_windows(width, height, block_rows, block_cols=None):
    """Windows covering a ``width`` × ``height`` raster in row-major order (full-width strips unless
    ``block_cols`` is given)."""
    block_cols = block_cols or width
    out = []
    for yoff in range(0, height, block_rows):
        for xoff in range(0, width, block_cols):
            out.append(Window(xoff, yoff, min(block_cols, width - xoff), min(block_rows, height - yoff)))
    return out


def read_window(ds, window, bands=None, dtype=np.float32):
    """Read ``window`` of the 1-based ``bands`` (all when None) as an array (bands, rows, cols)."""
    bands = list(bands) if bands is not None else list(range(1, ds.RasterCount + 1))
    if len(bands) == ds.RasterCount and bands == list(range(1, ds.RasterCount + 1)):
        arr = ds.ReadAsArray(window.xoff, window.yoff, window.xsize, window.ysize)
        arr = np.asarray(arr)
        if arr.ndim == 2:
            arr = arr[None]
        return arr.astype(dtype, copy=False)
    out = np.empty((len(bands), window.ysize, window.xsize), dtype=dtype)
    for i, b in enumerate(bands):
        out[i] = ds.GetRasterBand(int(b)).ReadAsArray(window.xoff, window.yoff, window.xsize, window.ysize)
    return out


def scales_offsets(ds, bands=None):
    """Per-band (scale, offset) arrays for the 1-based ``bands`` (1 and 0 where unset)."""
    bands = list(bands) if bands is not None else list(range(1, ds.RasterCount + 1))
    scales = np.array([ds.GetRasterBand(int(b)).GetScale() or 1.0 for b in bands], dtype=np.float64)
    offsets = np.array([ds.GetRasterBand(int(b)).GetOffset() or 0.0 for b in bands], dtype=np.float64)
    return scales, offsets


def read_block(ds, window, bands=None):
    """Read ``window`` of ``bands`` as float32 physical values and its validity mask.

    Nodata is detected on the stored values (per band, plus NaN/Inf); GDAL scale/offset (e.g.
    EnMAP's reflectance ×0.0001) is then applied. Returns ``(values (bands, rows, cols), valid
    (rows, cols))``; invalid pixels hold NaN."""
    bands = list(bands) if bands is not None else list(range(1, ds.RasterCount + 1))
    raw = read_window(ds, window, bands, dtype=np.float32)
    nodata = [ds.GetRasterBand(int(b)).GetNoDataValue() for b in bands]
    valid = valid_mask(raw, nodata)
    scales, offsets = scales_offsets(ds, bands)
    if np.any(scales != 1.0) or np.any(offsets != 0.0):
        raw = raw * scales[:, None, None].astype(np.float32) + offsets[:, None, None].astype(np.float32)
    raw[:, ~valid] = np.nan
    return raw, valid


def release_read_cache(ds, window):
    """Drop ``ds``'s cached blocks once a top-to-bottom scan has moved past them.

    GDAL's block cache would otherwise grow to GDAL_CACHEMAX (5 % of RAM by default) on large scenes
    and dominate peak memory. Called after reading ``window``; flushes when the window ends in a
    different row of source blocks than it started (a partly read block is re-read at most once)."""
    if ds is None:
        return
    block_h = ds.GetRasterBand(1).GetBlockSize()[1] or 1
    if (window.yoff + window.ysize) // block_h != window.yoff // block_h or \
            window.yoff + window.ysize >= ds.RasterYSize:
        ds.FlushCache()


def valid_mask(block, nodata=None):
    """Pixels (rows, cols) where every band is finite and differs from its nodata value.

    ``nodata`` is a scalar or one value per band (``None`` entries ignored)."""
    valid = np.all(np.isfinite(block), axis=0)
    if nodata is None:
        return valid
    values = nodata if isinstance(nodata, (list, tuple, np.ndarray)) else [nodata] * block.shape[0]
    for i, nd in enumerate(values):
        if nd is not None and np.isfinite(nd):
            valid &= block[i] != nd
    return valid


def check_output_path(path, parameter="OUTPUT"):
    """Fail early (before any work) when ``path`` cannot be written."""
    if path is None or str(path).strip() == "":
        raise InputError("no output path given.", parameter)
    path = os.path.abspath(str(path))
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        raise InputError(f"the folder {folder} does not exist; choose an existing folder for {path}.", parameter)
    if not os.access(folder, os.W_OK):
        raise InputError(f"the folder {folder} is not writable; choose another location for {path}.", parameter)
    if os.path.isdir(path):
        raise InputError(f"{path} is a folder; expected a raster file name such as result.tif.", parameter)
    return path


def _driver_for(path):
    ext = os.path.splitext(path)[1].lower()
    if ext in ("", ".tif", ".tiff", ".gtiff"):
        return "GTiff"
    explicit = {".img": "ENVI", ".bsq": "ENVI", ".dat": "ENVI", ".vrt": None, ".nc": "netCDF"}
    if ext in explicit:
        if explicit[ext] is None:
            raise InputError(f"cannot write {ext} outputs; use .tif.", "OUTPUT")
        return explicit[ext]
    for i in range(gdal.GetDriverCount()):
        drv = gdal.GetDriver(i)
        exts = (drv.GetMetadataItem(gdal.DMD_EXTENSIONS) or "").split()
        if ext[1:] in exts and drv.GetMetadataItem(gdal.DCAP_RASTER) and (
                drv.GetMetadataItem(gdal.DCAP_CREATECOPY) or drv.GetMetadataItem(gdal.DCAP_CREATE)):
            return drv.ShortName
    raise InputError(f"no GDAL driver writes '{ext}' files; use .tif.", "OUTPUT")


def _compression_options(dtype):
    """Fast lossless compression (GTiff creation options).

    Default: ZSTD level 1 (DEFLATE level 1 where GDAL lacks ZSTD) with the floating-point/integer
    predictor: about 5× smaller than uncompressed on reflectance cubes at a fraction of the cost of
    the default levels. ``SPECTRALTF_COMPRESS`` = ZSTD | DEFLATE | LZW | NONE overrides it (NONE is
    fastest for scratch outputs)."""
    available = gdal.GetDriverByName("GTiff").GetMetadataItem("DMD_CREATIONOPTIONLIST") or ""
    method = os.environ.get("SPECTRALTF_COMPRESS", "").strip().upper()
    if method not in ("ZSTD", "DEFLATE", "LZW", "NONE") or (method == "ZSTD" and "ZSTD" not in available):
        method = "ZSTD" if "ZSTD" in available else "DEFLATE"
    if method == "NONE":
        return ["COMPRESS=NONE"]
    options = [f"COMPRESS={method}"]
    if method == "ZSTD":
        options.append("ZSTD_LEVEL=1")
    elif method == "DEFLATE":
        options.append("ZLEVEL=1")
    if np.dtype(dtype) != np.uint8:
        options.append("PREDICTOR=3" if np.dtype(dtype).kind == "f" else "PREDICTOR=2")
    return options


def copy_spectral_metadata(src_band, dst_band):
    """Copy the spectral band metadata (default and IMAGERY domains) and description."""
    for domain in ("", "IMAGERY"):
        md = src_band.GetMetadata(domain) or {}
        if md:
            dst_band.SetMetadata(dict(md), domain)
    if src_band.GetDescription():
        dst_band.SetDescription(src_band.GetDescription())


class RasterWriter:
    """Write a raster window by window to a temporary file; :meth:`commit` renames it into place.

    Used as a context manager, an exception (including :class:`~.errors.Cancelled`) deletes the
    temporary file, so no partial output is ever left at ``path``.

    Parameters: ``path`` destination; ``grid`` a :class:`Grid` (size and georeferencing);
    ``bands`` band count; ``dtype`` numpy dtype; ``nodata`` value written to every band (or None);
    ``parameter`` the Processing parameter named in errors.
    """

    def __init__(self, path, grid, bands, dtype=np.float32, nodata=None, parameter="OUTPUT",
                 tile=None, block_budget=DEFAULT_BLOCK_BYTES):
        _require_gdal()
        self.path = check_output_path(path, parameter)
        self.parameter = parameter
        self.grid = grid
        self.bands = int(bands)
        self.dtype = np.dtype(dtype)
        self.nodata = nodata
        self.driver = _driver_for(self.path)
        folder = os.path.dirname(self.path)
        self.tmp_path = os.path.join(folder, f".{os.path.basename(self.path)}.partial-{uuid.uuid4().hex[:8]}.tif")
        to_gdal, _ = _type_maps()
        itemsize = self.dtype.itemsize
        # Tile height from the memory budget (a full-width row of tiles is what a block completes);
        # tiles stay at least 256 px wide so each compressed chunk is large enough to compress well.
        self.tile = tile or tile_size_for(grid.width, self.bands, itemsize, block_budget)
        self.tile_width = max(self.tile, 256)
        options = ["TILED=YES", f"BLOCKXSIZE={self.tile_width}", f"BLOCKYSIZE={self.tile}",
                   *_compression_options(self.dtype), "BIGTIFF=IF_SAFER", "NUM_THREADS=ALL_CPUS",
                   "INTERLEAVE=BAND" if self.bands > 4 else "INTERLEAVE=PIXEL"]
        try:
            self.ds = gdal.GetDriverByName("GTiff").Create(
                self.tmp_path, grid.width, grid.height, self.bands, to_gdal[self.dtype], options)
        except RuntimeError as exc:
            raise InputError(f"cannot create {self.path}: {exc}", parameter) from None
        if grid.geotransform is not None:
            self.ds.SetGeoTransform(grid.geotransform)
        if grid.projection:
            self.ds.SetProjection(grid.projection)
        if grid.gcps:
            self.ds.SetGCPs(grid.gcps, grid.gcp_projection)
        if nodata is not None:
            for i in range(self.bands):
                self.ds.GetRasterBand(i + 1).SetNoDataValue(float(nodata))
        self.closed = False

    # -- writing -------------------------------------------------------------------------------
    def write(self, window, array):
        """Write ``array`` (bands, rows, cols) or (rows, cols) for a single-band raster at ``window``."""
        array = np.asarray(array)
        if array.ndim == 2:
            array = array[None]
        if array.shape[0] != self.bands:
            raise ValueError(f"expected {self.bands} bands, got {array.shape[0]}")
        for i in range(self.bands):
            self.ds.GetRasterBand(i + 1).WriteArray(
                array[i].astype(self.dtype, copy=False), window.xoff, window.yoff)
        bottom = window.yoff + window.ysize
        if window.xoff + window.xsize >= self.grid.width and (bottom % self.tile == 0 or bottom >= self.grid.height):
            # a row of tiles is complete: compress it to disk and free it from GDAL's block cache
            self.ds.FlushCache()

    def band(self, index):
        """The GDAL band (1-based) for setting descriptions, metadata or colour tables."""
        return self.ds.GetRasterBand(index)

    def set_band_descriptions(self, names):
        for i, name in enumerate(names):
            self.ds.GetRasterBand(i + 1).SetDescription(str(name))

    def set_metadata(self, metadata, domain=""):
        self.ds.SetMetadata({str(k): str(v) for k, v in metadata.items()}, domain)

    # -- finishing -----------------------------------------------------------------------------
    def commit(self):
        """Flush and move the finished file to its destination; returns the destination path."""
        if self.closed:
            return self.path
        self.ds.FlushCache()
        self.ds = None
        self.closed = True
        try:
            if self.driver == "GTiff":
                os.replace(self.tmp_path, self.path)
                aux = self.tmp_path + ".aux.xml"
                if os.path.exists(aux):
                    os.replace(aux, self.path + ".aux.xml")
                elif os.path.exists(self.path + ".aux.xml"):
                    os.remove(self.path + ".aux.xml")  # stale side file of an older output
            else:
                gdal.Translate(self.path, self.tmp_path, format=self.driver)
        finally:
            self._remove_tmp()
        return self.path

    def abort(self):
        """Discard the partial output."""
        self.ds = None
        self.closed = True
        self._remove_tmp()

    def _remove_tmp(self):
        for p in (self.tmp_path, self.tmp_path + ".aux.xml"):
            if os.path.exists(p):
                try:
                    os.remove(p)
                except OSError:
                    pass

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.abort()
        elif not self.closed:
            self.commit()
        return False


class OutputSet:
    """Several :class:`RasterWriter` that succeed or fail together (e.g. mask + probability).

    On an exception every writer is aborted; on success every writer is committed."""

    def __init__(self):
        self.writers = []

    def add(self, writer):
        self.writers.append(writer)
        return writer

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            for w in self.writers:
                w.abort()
        else:
            for w in self.writers:
                w.commit()
        return False


def write_array(path, array, like=None, grid=None, nodata=None, dtype=None):
    """Write a whole (bands, rows, cols) array at once (small rasters, tests and fixtures)."""
    array = np.asarray(array)
    if array.ndim == 2:
        array = array[None]
    if grid is None:
        grid = Grid.of(like) if like is not None else Grid(array.shape[2], array.shape[1])
    with RasterWriter(path, grid, array.shape[0], dtype or array.dtype, nodata) as w:
        w.write(Window(0, 0, grid.width, grid.height), array)
    return path


def temp_dir():
    """Folder for scratch files (honours TMPDIR)."""
    return tempfile.gettempdir()
