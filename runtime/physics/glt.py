"""Orthorectification of sensor-geometry rasters with an EMIT geometry lookup table (GLT).

The GLT is a map-grid raster (``ortho_y`` rows × ``ortho_x`` columns) whose two layers give, for
each map pixel, the sensor-grid **sample** (``glt_x``, crosstrack column) and **line** (``glt_y``,
downtrack row) that lands there. Values are 1-based; 0 means "no sensor pixel" (outside the swath).
Negative values (ISOFIT's mark for pixels filled from a neighbour) are used by their absolute
value. This is the convention of EMIT's own ``emit_tools.apply_glt`` (nearest neighbour,
``out[row, col] = data[glt_y - 1, glt_x - 1]``), checked on the real EMIT crops: the GLT addresses
the 200 × 200 sensor grid (values 1…200) and ``location/lat``/``lon`` at the addressed pixel lie
within one map pixel of the map-pixel centre.

GLT sources: an EMIT netCDF product (``location/glt_x``, ``location/glt_y``; map grid from the
global attributes ``geotransform`` and ``spatial_ref``; sensor grid = its ``crosstrack`` ×
``downtrack`` size), or a georeferenced 2-band raster (band 1 = sample, band 2 = line, 1-based).

:func:`orthorectify` streams over output tiles, reading for each tile only the sensor window its
GLT entries address, and keeps the input's data type, nodata, band descriptions, spectral metadata,
colour tables and ``.qml`` style.
"""
import os
import shutil
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..io import emit_netcdf
from ..errors import InputError, ref
from ..monitor import ensure
from ..io.raster_io import (
    Grid, Window, _type_maps, copy_spectral_metadata, iter_windows, open_raster, read_window,
    tile_size_for,
)

try:
    from osgeo import gdal, osr

    gdal.UseExceptions()
except ImportError:  # pragma: no cover
    gdal = None

#: Fill value used when the input raster declares no nodata value, per numpy dtype kind/size.
_DEFAULT_FILL = {np.dtype(np.uint8): 255, np.dtype(np.uint16): 65535, np.dtype(np.uint32): 4294967295,
                 np.dtype(np.int16): -9999, np.dtype(np.int32): -9999,
                 np.dtype(np.float32): -9999.0, np.dtype(np.float64): -9999.0}


@dataclass
class Glt:
    """A geometry lookup table: map grid, optional sensor-grid size and a windowed reader."""

    source: str
    width: int
    height: int
    geotransform: tuple
    projection: str
    sensor_size: Optional[tuple]  # (width = crosstrack, height = downtrack) when known
    _reader: object = None

    @property
    def grid(self):
        return Grid(self.width, self.height, tuple(self.geotransform), self.projection)

    def read(self, window):
        """0-based (sample, line) index arrays (rows, cols) for ``window``; −1 where no data."""
        gx, gy = self._reader(window)
        gx = np.abs(np.asarray(gx, dtype=np.int64))
        gy = np.abs(np.asarray(gy, dtype=np.int64))
        valid = (gx > 0) & (gy > 0)
        return np.where(valid, gx - 1, -1), np.where(valid, gy - 1, -1)


def open_glt(source, parameter="glt"):
    """Open a GLT from an EMIT netCDF (``location/glt_x``/``glt_y``) or a 2-band GLT raster."""
    if source is None or str(source).strip() == "":
        raise InputError("no GLT given; expected the EMIT netCDF of the scene (with location/glt_x, "
                         "glt_y) or a 2-band GLT raster.", parameter)
    source = str(source)
    if emit_netcdf.is_netcdf_path(source):
        return _netcdf_glt(source, parameter)
    return _raster_glt(source, parameter)


def _netcdf_glt(source, parameter):
    local, _ = emit_netcdf.split_path(source)
    emit = emit_netcdf.EmitFile(local, parameter)
    gx = emit.array("location/glt_x", required=False)
    gy = emit.array("location/glt_y", required=False)
    if gx is None or gy is None:
        raise InputError(f"{local} has no geometry lookup table (location/glt_x and location/glt_y); "
                         "use an EMIT L1B/L2A netCDF product of the scene.", parameter)
    gt = emit.attributes.get("geotransform")
    wkt = emit.attributes.get("spatial_ref")
    if gt is None or len(gt) != 6 or not wkt:
        raise InputError(f"{local} lacks the 'geotransform'/'spatial_ref' attributes of the map grid.",
                         parameter)
    height, width = [int(d.GetSize()) for d in gx.GetDimensions()]
    shape_y = [int(d.GetSize()) for d in gy.GetDimensions()]
    if shape_y != [height, width]:
        raise InputError(f"{local}: glt_x and glt_y differ in size.", parameter)
    srs = osr.SpatialReference()
    try:
        srs.ImportFromWkt(str(wkt))
    except RuntimeError:
        raise InputError(f"{local}: cannot parse its spatial_ref attribute as WKT.", parameter) from None
    keep = (emit.md, gx, gy)

    def reader(w, keep=keep):
        start, count = [w.yoff, w.xoff], [w.ysize, w.xsize]
        return (keep[1].ReadAsArray(array_start_idx=start, count=count),
                keep[2].ReadAsArray(array_start_idx=start, count=count))

    return Glt(local, width, height, tuple(float(v) for v in gt), srs.ExportToWkt(),
               emit.sensor_size(), reader)


def _raster_glt(source, parameter):
    ds = open_raster(source, parameter)
    if ds.RasterCount < 2:
        raise InputError(f"{source} has {ds.RasterCount} band(s); a GLT raster needs 2 bands "
                         "(1 = sensor sample, 2 = sensor line, 1-based, 0 = no data).", parameter)
    gt = ds.GetGeoTransform(can_return_null=True)
    if gt is None:
        raise InputError(f"{source} has no georeferencing; a GLT raster must be on the map grid.", parameter)
    nodata = [ds.GetRasterBand(i).GetNoDataValue() for i in (1, 2)]

    def reader(w, ds=ds):
        out = []
        for i in (1, 2):
            a = ds.GetRasterBand(i).ReadAsArray(w.xoff, w.yoff, w.xsize, w.ysize).astype(np.int64)
            if nodata[i - 1] is not None and np.isfinite(nodata[i - 1]):
                a[a == int(nodata[i - 1])] = 0
            out.append(a)
        return out

    return Glt(source, ds.RasterXSize, ds.RasterYSize, tuple(gt), ds.GetProjection() or "", None, reader)


def _index_extent(glt, monitor):
    """Largest (sample, line) addressed by the GLT (1-based counts), scanning it block by block."""
    max_x = max_y = 0
    for w in iter_windows(glt.width, glt.height, max(1, (8 << 20) // max(1, glt.width * 16))):
        monitor.check()
        gx, gy = glt.read(w)
        if (gx >= 0).any():
            max_x = max(max_x, int(gx.max()) + 1)
            max_y = max(max_y, int(gy.max()) + 1)
    return max_x, max_y


def check_sizes(src, glt, monitor=None, input_parameter="input", glt_parameter="glt"):
    """Raise :class:`InputError` when the sensor raster ``src`` does not match the GLT's sensor grid."""
    width, height = src.RasterXSize, src.RasterYSize
    if glt.sensor_size is not None:
        gw, gh = glt.sensor_size
        if (gw, gh) != (width, height):
            raise InputError(
                f"the raster is {width} × {height} pixels (columns × rows) but the GLT in {ref(glt_parameter)} "
                f"({os.path.basename(glt.source)}) belongs to a {gw} × {gh} sensor grid (crosstrack × "
                f"downtrack); {ref(input_parameter)} must be a sensor-geometry output of the same EMIT scene.",
                input_parameter)
    mx, my = _index_extent(glt, ensure(monitor))
    if mx > width or my > height:
        raise InputError(
            f"the GLT in {ref(glt_parameter)} addresses sensor sample {mx} / line {my} but the raster is only "
            f"{width} × {height} pixels; {ref(input_parameter)} must be a sensor-geometry output of the scene "
            f"the GLT belongs to.", input_parameter)
    if mx == 0:
        raise InputError(f"the GLT in {ref(glt_parameter)} addresses no sensor pixel (all 0).", glt_parameter)


def _output_nodata(band, dtype):
    nd = band.GetNoDataValue()
    if nd is not None:
        return nd
    return _DEFAULT_FILL.get(np.dtype(dtype), -9999)


def _tiles(glt, budget_bytes, bands, itemsize, tile):
    """Output windows: ``tile`` rows (the GeoTIFF tile height) × a multiple of ``tile`` columns, so
    that one window of data (and the sensor window it addresses, about as large) fits the budget."""
    per_tile = max(1, bands * itemsize * tile * tile * 2)
    cols = max(1, min(-(-glt.width // tile), budget_bytes // per_tile)) * tile
    return iter_windows(glt.width, glt.height, tile, cols)


def _fill_tile(src, glt, window, out, bands_dtype, budget, depth=0):
    """Fill ``out`` (bands, rows, cols) for ``window`` from the sensor window its GLT addresses."""
    gx, gy = glt.read(window)
    valid = gx >= 0
    if not valid.any():
        return
    x0, x1 = int(gx[valid].min()), int(gx[valid].max()) + 1
    y0, y1 = int(gy[valid].min()), int(gy[valid].max()) + 1
    need = (x1 - x0) * (y1 - y0) * src.RasterCount * np.dtype(bands_dtype).itemsize
    if need > budget and window.xsize * window.ysize > 256 and depth < 12:
        # A tile spanning a long stretch of the swath: split it to bound memory.
        hx, hy = max(1, window.xsize // 2), max(1, window.ysize // 2)
        for dy, h in ((0, hy), (hy, window.ysize - hy)):
            for dx, wd in ((0, hx), (hx, window.xsize - hx)):
                if h > 0 and wd > 0:
                    sub = Window(window.xoff + dx, window.yoff + dy, wd, h)
                    _fill_tile(src, glt, sub, out[:, dy:dy + h, dx:dx + wd], bands_dtype, budget, depth + 1)
        return
    data = read_window(src, Window(x0, y0, x1 - x0, y1 - y0), dtype=bands_dtype)
    out[:, valid] = data[:, gy[valid] - y0, gx[valid] - x0]


def _copy_band_styles(src, writer):
    for i in range(src.RasterCount):
        sb, db = src.GetRasterBand(i + 1), writer.band(i + 1)
        copy_spectral_metadata(sb, db)
        ct = sb.GetColorTable()
        if ct is not None:
            db.SetColorTable(ct)
        if sb.GetColorInterpretation() not in (None, gdal.GCI_Undefined):
            try:
                db.SetColorInterpretation(sb.GetColorInterpretation())
            except RuntimeError:
                pass
        cats = sb.GetCategoryNames()
        if cats:
            db.SetCategoryNames(cats)
        if sb.GetScale() not in (None, 1.0) or sb.GetOffset() not in (None, 0.0):
            db.SetScale(sb.GetScale() or 1.0)
            db.SetOffset(sb.GetOffset() or 0.0)


def orthorectify(sensor_raster_path, glt_source, output_path, monitor=None, block_bytes=None,
                 input_parameter="input", glt_parameter="glt", output_parameter="output", config=None):
    """Resample a sensor-geometry raster onto the GLT's map grid (nearest neighbour, as EMIT does).

    ``sensor_raster_path``: any raster (or EMIT netCDF) on the sensor grid (x = crosstrack,
    y = downtrack); ``glt_source``: EMIT netCDF with ``location/glt_x``/``glt_y`` or a 2-band GLT
    raster; ``output_path``: GeoTIFF on the map grid (geotransform and CRS of the GLT), same data
    type and bands; pixels without a sensor pixel get the input's nodata value (−9999 / 255 /
    65535 when the input has none). Returns ``output_path``."""
    from ..config import ensure_config
    from ..pipeline import OutputSet, stream

    monitor = ensure(monitor)
    config = ensure_config(config)
    block_bytes = block_bytes or config.block_bytes
    src = open_raster(sensor_raster_path, input_parameter)
    outs = OutputSet(config, monitor)
    outs.add_input(input_parameter, src)
    outs.add_input(input_parameter, str(sensor_raster_path))
    outs.add_input(glt_parameter, str(glt_source) if glt_source else None)
    output_path = outs.add_output(output_parameter, output_path)
    glt = open_glt(glt_source, glt_parameter)
    if src.GetGeoTransform(can_return_null=True) not in (None, (0.0, 1.0, 0.0, 0.0, 0.0, 1.0)):
        monitor.warn(f"{ref(input_parameter)} already has a map georeference; it is treated as sensor geometry "
                     "(columns = crosstrack samples, rows = downtrack lines).")
    check_sizes(src, glt, monitor, input_parameter, glt_parameter)
    _, to_numpy = _type_maps()
    dtype = to_numpy.get(src.GetRasterBand(1).DataType, np.dtype(np.float32))
    nodata = _output_nodata(src.GetRasterBand(1), dtype)
    bands = src.RasterCount
    monitor.info(f"Orthorectifying {src.RasterXSize} × {src.RasterYSize} sensor pixels, {bands} band(s), onto "
                 f"a {glt.width} × {glt.height} map grid with the GLT of {os.path.basename(glt.source)}.")
    with outs:
        writer = outs.create(output_parameter, glt.grid, bands, dtype, nodata,
                             tile=tile_size_for(glt.width, bands, dtype.itemsize, block_bytes))
        tiles = _tiles(glt, block_bytes, bands, dtype.itemsize, writer.tile)
        _copy_band_styles(src, writer)
        md = {k: v for k, v in (src.GetMetadata() or {}).items() if not k.startswith("EMIT_")}
        md["ORTHORECTIFIED_WITH_GLT"] = glt.source
        writer.set_metadata(md)
        for w in stream(tiles, monitor):
            out = np.full((bands, w.ysize, w.xsize), nodata, dtype=dtype)
            _fill_tile(src, glt, w, out, dtype, block_bytes)
            writer.write(w, out)
        style = _qml_path(sensor_raster_path)
        if style and os.path.isfile(style):
            shutil.copyfile(style, outs.style_path(output_parameter))
    return output_path


def _qml_path(path):
    local = emit_netcdf.split_path(str(path))[0]
    return os.path.splitext(local)[0] + ".qml"


def glt_source_for(input_path):
    """The EMIT netCDF carrying a GLT behind ``input_path`` (a path or a dataset), else None."""
    source = emit_netcdf.emit_source(input_path)
    if not source:
        return None
    try:
        return source if emit_netcdf.EmitFile(source).has_glt else None
    except InputError:
        return None
