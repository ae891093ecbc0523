"""Windowed raster reading through GDAL, and read-only opening of inputs.

Memory stays bounded whatever the raster size: callers iterate over windows (full-width strips whose
height is chosen from a byte budget and aligned to the output tile height, see
:func:`.pipeline.strips`), read a window with :func:`read_block`, and write through the pipeline's
:class:`~.pipeline.OutputSet` (staged, committed only when complete).

Inputs are read-only: :func:`open_raster` refuses FIFOs, devices and sockets without opening them
(opening a FIFO blocks), accepts GDAL virtual paths (``/vsizip/``, ``/vsicurl/``, …) and opens with
GDAL's side-file persistence (PAM) off unless the input already has an ``.aux.xml`` (which is then
read, never rewritten: nothing here sets metadata or statistics on an input).
"""
import os
import stat
from dataclasses import dataclass
from typing import NamedTuple, Optional, Sequence

import numpy as np

from ..errors import InputError

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


_SPECIAL = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
            (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def special_file_kind(path):
    """"a FIFO (named pipe)", "a character device", ... when ``path`` is not a regular file or folder
    (checked with stat, which never blocks), else None."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    for test, what in _SPECIAL:
        if test(mode):
            return what
    return None


def check_regular_file(path, parameter, what="file"):
    """Raise :class:`InputError` when ``path`` is a FIFO, device or socket (reading would block or
    never end); returns ``path``."""
    kind = special_file_kind(path)
    if kind:
        raise InputError(f"{path} is {kind}, not a {what}; give a regular file.", parameter)
    return path


def _check_siblings(local, parameter):
    """GDAL opens side files (ENVI header, .aux.xml, world files) beside a raster: refuse special
    files among them too, since opening one would block."""
    folder, name = os.path.split(local)
    stem = os.path.splitext(name)[0]
    try:
        names = os.listdir(folder or ".")
    except OSError:
        return
    for other in names:
        if other != name and (other.startswith(stem + ".") or other.startswith(name)):
            side = os.path.join(folder, other)
            kind = special_file_kind(side)
            if kind:
                raise InputError(f"{side} beside the raster is {kind}; GDAL would block reading it. Remove it "
                                 "or move the raster.", parameter)


def is_virtual(path):
    """GDAL virtual file systems (/vsizip/, /vsicurl/, /vsis3/, …) and subdataset syntaxes."""
    return str(path).startswith(("/vsi", "NETCDF:", "HDF5:", "HDF4_", "GPKG:"))


class pam:  # noqa: N801 - used like a function
    """Context: GDAL's side-file persistence (PAM, ``.aux.xml``) on or off for datasets opened (or,
    for new files, first given PAM-only metadata such as category names) in this thread inside it.

    GDAL decides per dataset when it initialises PAM, so inputs opened with ``pam(False)`` never
    write a side file, whatever the process-wide setting."""

    def __init__(self, enabled):
        self.enabled = bool(enabled)

    def __enter__(self):
        self._old = gdal.GetThreadLocalConfigOption("GDAL_PAM_ENABLED", None)
        gdal.SetThreadLocalConfigOption("GDAL_PAM_ENABLED", "YES" if self.enabled else "NO")
        return self

    def __exit__(self, *exc):
        gdal.SetThreadLocalConfigOption("GDAL_PAM_ENABLED", self._old)
        return False


def read_only(keep_pam=False):
    """Context for opening inputs: no PAM side file unless ``keep_pam`` (an existing one is read)."""
    return pam(keep_pam)


def open_raster(path, parameter="input"):
    """Open a raster read-only; raise :class:`InputError` naming ``parameter`` when that fails.

    Never writes beside the input (no new ``.aux.xml``, no VRT rewrite); FIFOs and devices are
    refused without blocking; GDAL virtual paths are opened as GDAL sees them."""
    _require_gdal()
    if path is None or str(path).strip() == "":
        raise InputError("no raster given; expected the path of a raster file.", parameter)
    path = str(path)
    local = path.split("|")[0]
    if is_virtual(path):
        if path.startswith("/vsi") and not path.startswith(("/vsicurl", "/vsis3", "/vsigs", "/vsiaz", "/vsiadls",
                                                            "/vsioss", "/vsiswift", "/vsiwebhdfs", "/vsihdfs")):
            # archives on disk: the archive itself must be a regular file
            archive = _archive_of(path)
            if archive:
                check_regular_file(archive, parameter, "archive")
            if gdal.VSIStatL(path) is None:
                raise InputError(f"file not found: {path} (GDAL virtual path)", parameter)
    else:
        if not os.path.exists(local):
            raise InputError(f"file not found: {local}", parameter)
        check_regular_file(local, parameter, "raster file")
        if os.path.isdir(local):
            raise InputError(f"{local} is a folder; expected a raster file.", parameter)
        _check_siblings(local, parameter)
    from .emit_netcdf import open_if_emit  # EMIT netCDF swaths: spectral bands in sensor geometry

    keep_pam = not is_virtual(path) and os.path.exists(local + ".aux.xml")
    with read_only(keep_pam):
        emit = open_if_emit(path, parameter)
        if emit is not None:
            return emit
        try:
            ds = gdal.OpenEx(path, gdal.OF_RASTER | gdal.OF_READONLY | gdal.OF_VERBOSE_ERROR)
        except RuntimeError as exc:
            raise InputError(f"cannot open {path} as a raster ({exc}).", parameter) from None
    if ds is None or ds.RasterCount == 0:
        raise InputError(f"{path} is not a raster with bands.", parameter)
    from .completeness import check_complete  # a file shorter than its header: refused, never read as zeros

    check_complete(ds, parameter)
    return ds


def _archive_of(path):
    """``/vsizip/a/b.zip/x.tif`` → ``/a/b.zip`` (the archive on disk), else None."""
    rest = path.split("/", 2)[2] if path.count("/") >= 2 else ""
    if rest.startswith("{"):
        rest = rest[1:].split("}", 1)[0]
    parts = ("/" + rest.lstrip("/")).split("/")
    for i in range(len(parts), 1, -1):
        candidate = "/".join(parts[:i])
        if os.path.isfile(candidate) or special_file_kind(candidate):
            return candidate
    return None


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


def scales_offsets_of(ds, bands=None):
    """Per-band (scale, offset) arrays for the 1-based ``bands`` (1 and 0 where unset)."""
    bands = list(bands) if bands is not None else list(range(1, ds.RasterCount + 1))
    scales = np.array([ds.GetRasterBand(int(b)).GetScale() or 1.0 for b in bands], dtype=np.float64)
    offsets = np.array([ds.GetRasterBand(int(b)).GetOffset() or 0.0 for b in bands], dtype=np.float64)
    return scales, offsets


def read_block(ds, window, bands=None, scales_offsets=None, per_band=False):
    """Read ``window`` of ``bands`` as float32 physical values and its validity mask.

    Nodata is detected on the stored values (per band, plus NaN/Inf); the scale/offset is then
    applied: ``scales_offsets`` = ``(scales, offsets)`` per band (e.g. from an explicit ``scale``, see
    :func:`.band_validity.value_scale`), else the file's GDAL scale/offset (EnMAP's ×0.0001).

    Returns ``(values (bands, rows, cols), valid)``. By default ``valid`` is (rows, cols), True where
    every band is valid, and invalid pixels hold NaN in every band. With ``per_band`` (upstream
    SpecTf's toa.py convention), ``valid`` is (bands, rows, cols) and only the invalid band of a
    pixel holds NaN."""
    bands = list(bands) if bands is not None else list(range(1, ds.RasterCount + 1))
    raw = read_window(ds, window, bands, dtype=np.float32)
    nodata = [ds.GetRasterBand(int(b)).GetNoDataValue() for b in bands]
    band_valid = valid_mask(raw, nodata, per_band=True)
    if scales_offsets is not None:
        scales, offsets = (np.asarray(v, dtype=np.float64) for v in scales_offsets)
    else:
        scales, offsets = scales_offsets_of(ds, bands)
    if np.any(scales != 1.0) or np.any(offsets != 0.0):
        raw = raw * scales[:, None, None].astype(np.float32) + offsets[:, None, None].astype(np.float32)
    if per_band:
        raw[~band_valid] = np.nan
        return raw, band_valid
    valid = np.all(band_valid, axis=0)
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


def valid_mask(block, nodata=None, per_band=False):
    """Pixels (rows, cols) where every band is finite and differs from its nodata value; with
    ``per_band`` the (bands, rows, cols) validity of each band.

    ``nodata`` is a scalar or one value per band (``None`` entries ignored)."""
    valid = np.isfinite(block)
    if nodata is not None:
        values = nodata if isinstance(nodata, (list, tuple, np.ndarray)) else [nodata] * block.shape[0]
        for i, nd in enumerate(values):
            if nd is not None and np.isfinite(nd):
                valid[i] &= block[i] != nd
    return valid if per_band else np.all(valid, axis=0)


def copy_spectral_metadata(src_band, dst_band):
    """Copy the spectral band metadata (default and IMAGERY domains) and description."""
    for domain in ("", "IMAGERY"):
        md = src_band.GetMetadata(domain) or {}
        if md:
            dst_band.SetMetadata(dict(md), domain)
    if src_band.GetDescription():
        dst_band.SetDescription(src_band.GetDescription())
