"""The writer of one staged raster, and what file-system errors mean for the user.

:class:`RasterWriter` writes window by window into the staging path its
:class:`~.outputs.OutputSet` gave it, flushes full rows of tiles, and on :meth:`~RasterWriter.close`
reports any write error GDAL raised, also those GDAL only reports while closing a file (which
Python would otherwise print as "Exception ignored"). Errors become one :class:`OutputError` line
naming the output's parameter: disk full, permission denied, read-only file system, immutable file.
"""
import errno
import os
import sys

import numpy as np

from ..errors import InputError
from . import formats

_FS_IOC_GETFLAGS = 0x80086601
_FS_IMMUTABLE_FL = 0x00000010
_FS_APPEND_FL = 0x00000020



class OutputError(InputError):
    """An output cannot be written (disk full, permission, immutable file, format)."""


def immutable(path):
    """True when ``path`` carries the immutable or append-only attribute (``chattr +i`` / ``+a``)."""
    try:
        import fcntl
        import struct

        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0))
    except (ImportError, OSError):
        return False
    try:
        buf = fcntl.ioctl(fd, _FS_IOC_GETFLAGS, struct.pack("l", 0))
        flags = struct.unpack("l", buf)[0]
        return bool(flags & (_FS_IMMUTABLE_FL | _FS_APPEND_FL))
    except OSError:
        return False
    finally:
        os.close(fd)


def describe_os_error(exc, path):
    """A short phrase for an OSError (or a GDAL RuntimeError) while writing ``path``."""
    text = str(exc)
    folder = os.path.dirname(os.path.abspath(path))
    code = getattr(exc, "errno", None)
    if code in (errno.ENOSPC, errno.EDQUOT) or "No space left" in text or "quota" in text.lower() or \
            _disk_full(folder):
        return f"the disk holding {folder} is full (no space left); free some space or choose another folder"
    if code == errno.EROFS or "Read-only file system" in text:
        return f"{folder} is on a read-only file system; choose another folder"
    if code in (errno.EPERM, errno.EACCES) or "Permission denied" in text or "not permitted" in text:
        if os.path.exists(path) and immutable(path):
            return f"{path} exists and is immutable (chattr +i); remove the attribute or choose another name"
        return f"permission denied writing {path}; choose a folder you can write to"
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return f"cannot write {path} ({first})"


def _disk_full(folder, minimum=64 * 1024):
    try:
        st = os.statvfs(folder)
    except (OSError, AttributeError):
        return False
    return st.f_bavail * st.f_frsize < minimum


class RasterWriter:
    """Writes one raster window by window into its staging path (created by :meth:`OutputSet.create`).

    ``ds`` is the GDAL dataset (for metadata, colour tables); ``tile`` the GeoTIFF tile height a
    full-width block should be a multiple of."""

    def __init__(self, output, grid, bands, dtype, nodata, tile, compression):
        from osgeo import gdal

        from ..io.raster_io import _type_maps

        self.output = output
        self.parameter = output.parameter
        self.path = output.staged
        self.grid = grid
        self.bands = int(bands)
        self.dtype = np.dtype(dtype)
        self.nodata = nodata
        self.tile = int(tile)
        self.tile_width = max(self.tile, 256)
        to_gdal, _ = _type_maps()
        options = formats.creation_options(output.driver, output.path, self.dtype, self.bands, self.tile,
                                           self.tile_width, compression)
        try:
            self.ds = gdal.GetDriverByName(output.driver).Create(
                self.path, grid.width, grid.height, self.bands, to_gdal[self.dtype], options)
        except RuntimeError as exc:
            raise self._error(exc) from None
        if self.ds is None:
            raise self._error(RuntimeError(gdal.GetLastErrorMsg() or "GDAL could not create the file"))
        if grid.geotransform is not None:
            self.ds.SetGeoTransform(grid.geotransform)
        if grid.projection:
            self.ds.SetProjection(grid.projection)
        if grid.gcps:
            self.ds.SetGCPs(grid.gcps, grid.gcp_projection)
        if nodata is not None:
            for i in range(self.bands):
                self.ds.GetRasterBand(i + 1).SetNoDataValue(float(nodata))

    def _error(self, exc):
        return OutputError(describe_os_error(exc, self.output.path), self.parameter)

    def write(self, window, array):
        """Write ``array`` (bands, rows, cols), or (rows, cols) for one band, at ``window``."""
        array = np.asarray(array)
        if array.ndim == 2:
            array = array[None]
        if array.shape[0] != self.bands:
            raise ValueError(f"expected {self.bands} bands, got {array.shape[0]}")
        try:
            for i in range(self.bands):
                self.ds.GetRasterBand(i + 1).WriteArray(array[i].astype(self.dtype, copy=False),
                                                        window.xoff, window.yoff)
            bottom = window.yoff + window.ysize
            if window.xoff + window.xsize >= self.grid.width and (bottom % self.tile == 0
                                                                  or bottom >= self.grid.height):
                # a row of tiles is complete: compress it to disk and free it from GDAL's block cache
                self.ds.FlushCache()
        except RuntimeError as exc:
            raise self._error(exc) from None

    def band(self, index):
        """The GDAL band (1-based) for descriptions, metadata or colour tables."""
        return self.ds.GetRasterBand(index)

    def set_band_descriptions(self, names):
        for i, name in enumerate(names):
            self.ds.GetRasterBand(i + 1).SetDescription(str(name))

    def set_metadata(self, metadata, domain=""):
        self.ds.SetMetadata({str(k): str(v) for k, v in metadata.items()}, domain)

    def close(self):
        """Flush and close; a write error (also one GDAL reports while closing) raises OutputError."""
        if self.ds is None:
            return
        captured = []
        previous = sys.unraisablehook
        sys.unraisablehook = lambda unraisable: captured.append(unraisable.exc_value)
        try:
            try:
                self.ds.FlushCache()
            except RuntimeError as exc:
                captured.append(exc)
            self.ds = None  # GDAL writes headers/directories here; errors arrive as "unraisable"
        finally:
            sys.unraisablehook = previous
        if captured:
            raise self._error(captured[0])
        if self.output.driver == "ENVI":
            self._fix_envi_description()

    def _fix_envi_description(self):
        """GDAL writes the file name into the ENVI header's description: the final one, not the staged one."""
        header = formats.envi_header(self.path)
        try:
            with open(header, encoding="utf-8", errors="surrogateescape") as f:
                text = f.read()
            if self.path in text:
                with open(header, "w", encoding="utf-8", errors="surrogateescape") as f:
                    f.write(text.replace(self.path, self.output.path))
        except OSError as exc:
            raise self._error(exc) from None

    def discard(self):
        """Close without reporting errors (the staged files are deleted anyway)."""
        if self.ds is None:
            return
        previous = sys.unraisablehook
        sys.unraisablehook = lambda unraisable: None
        try:
            self.ds = None
        finally:
            sys.unraisablehook = previous

    def verify(self):
        """Re-open the closed file (headers complete, size and bands right) or raise OutputError."""
        from osgeo import gdal

        try:
            from ..io.raster_io import read_only

            with read_only():
                ds = gdal.Open(self.path, gdal.GA_ReadOnly)
            ok = ds is not None and (ds.RasterXSize, ds.RasterYSize, ds.RasterCount) == (
                self.grid.width, self.grid.height, self.bands)
            ds = None
        except RuntimeError as exc:
            raise self._error(exc) from None
        if not ok:
            raise self._error(RuntimeError("the written file does not read back as the raster written"))
        if self.output.driver == "ENVI":
            expected = self.grid.width * self.grid.height * self.bands * self.dtype.itemsize
            if os.path.getsize(self.path) < expected:
                raise self._error(RuntimeError("the data file is shorter than the raster written"))
