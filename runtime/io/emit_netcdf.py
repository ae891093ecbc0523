"""EMIT netCDF products (L1B RDN / OBS, L2A RFL / RFLUNCERT / MASK) opened as ordinary GDAL rasters.

EMIT distributes its swaths as netCDF-4 in raw sensor geometry: the data variable has the dimensions
``(downtrack, crosstrack, bands)`` (band-interleaved-by-pixel), band centres and FWHM (nm) live in the
group ``sensor_band_parameters``, the geolocation lookup table in ``location/glt_x`` / ``glt_y`` and
the map grid in the global attributes ``geotransform`` / ``spatial_ref``.

:func:`open_emit` returns a read-only GDAL dataset (GDAL's multidimensional API,
``MDArray.AsClassicDataset(1, 0)``) with

- x = crosstrack (columns), y = downtrack (rows), one raster band per spectral/observation band,
  read window by window straight from the file (no full-cube load), no geotransform (sensor geometry);
- nodata −9999 (the variable's ``_FillValue``);
- per-band ``wavelength`` / ``wavelength_units=Nanometers`` / ``fwhm`` (and ``bbl`` from
  ``good_wavelengths``) for radiance and reflectance, written with
  :func:`.spectral.write_spectral_metadata` so :func:`.spectral.read_spectral_info` reads them;
- band descriptions from ``observation_bands`` (OBS) or ``mask_bands`` (MASK);
- dataset metadata: the product's global attributes (except ``history`` / ``summary``),
  ``acquisition_time`` (ISO 8601 UTC, from ``time_coverage_start``), ``EMIT_PRODUCT``,
  ``EMIT_VARIABLE``, ``EMIT_FILE``, ``EMIT_HAS_GLT``; ENVI-domain ``start_acquisition_time`` /
  ``end_acquisition_time`` like EMIT's ENVI products.

Variable selection: ``radiance`` (L1B RDN), ``reflectance`` (L2A RFL), ``reflectance_uncertainty``
(L2A RFLUNCERT), ``obs`` (L1B OBS), ``mask`` (L2A MASK), first present wins. Another variable is
chosen with ``file.nc|variable`` (also ``file.nc|variable=obs`` or ``NETCDF:"file.nc":obs``); group
members as ``location/elev``.

OBS band order (1-based raster bands, as in the product and as the TOA conversion expects):
1 path length (m), 2 to-sensor azimuth, 3 to-sensor zenith, 4 to-sun azimuth, **5 to-sun zenith**
(degrees), 6 solar phase, 7 slope, 8 aspect, 9 cos(i), 10 UTC time (decimal hours),
**11 Earth–Sun distance (AU)**.
"""
import os
import re
import weakref
from datetime import datetime, timezone

import numpy as np

from ..errors import InputError
from .spectral import write_spectral_metadata

try:
    from osgeo import gdal

    gdal.UseExceptions()
except ImportError:  # pragma: no cover
    gdal = None

#: Fill value of every EMIT data variable.
NODATA = -9999.0
#: Data variables in the order they are picked when no variable is named.
DATA_VARIABLES = ("radiance", "reflectance", "reflectance_uncertainty", "obs", "mask")
#: Variables whose last dimension is the spectral one (get wavelength/FWHM metadata).
SPECTRAL_VARIABLES = ("radiance", "reflectance", "reflectance_uncertainty")
#: Variables whose band names are stored in ``sensor_band_parameters``.
BAND_NAME_ARRAYS = {"obs": "observation_bands", "mask": "mask_bands"}
#: 1-based OBS bands used by the TOA conversion.
OBS_SOLAR_ZENITH_BAND = 5
OBS_EARTH_SUN_DISTANCE_BAND = 11
NETCDF_EXTENSIONS = (".nc", ".nc4")
_SKIPPED_ATTRIBUTES = ("history", "summary")
_NETCDF_SYNTAX = re.compile(r'^NETCDF:"?(?P<path>[^"]+?)"?:(?P<var>[^:"]+)$', re.IGNORECASE)


def split_path(path):
    """``(file path, variable or None)`` from ``file.nc``, ``file.nc|var``, ``file.nc|variable=var``
    or ``NETCDF:"file.nc":var``."""
    path = str(path).strip()
    m = _NETCDF_SYNTAX.match(path)
    if m:
        return m.group("path"), m.group("var")
    if "|" in path:
        local, rest = path.split("|", 1)
        rest = rest.strip()
        if "=" in rest:
            key, value = rest.split("=", 1)
            rest = value.strip() if key.strip().lower() in ("variable", "var", "layername", "subdataset") else ""
        return local, rest or None
    return path, None


def is_netcdf_path(path):
    """True when ``path`` (any syntax of :func:`split_path`) names a ``.nc``/``.nc4`` file."""
    local, _ = split_path(path)
    return local.lower().endswith(NETCDF_EXTENSIONS)


class EmitFile:
    """An open EMIT netCDF file (multidimensional GDAL view) with convenience accessors."""

    def __init__(self, path, parameter="input"):
        if gdal is None:  # pragma: no cover
            raise InputError("GDAL's Python bindings (osgeo.gdal) are required.", parameter)
        self.path = str(path)
        self.parameter = parameter
        if not os.path.exists(self.path):
            raise InputError(f"file not found: {self.path}", parameter)
        try:
            self.md = gdal.OpenEx(self.path, gdal.OF_MULTIDIM_RASTER | gdal.OF_READONLY)
        except RuntimeError as exc:
            raise InputError(f"cannot open {self.path} as netCDF ({exc}).", parameter) from None
        if self.md is None:
            raise InputError(f"cannot open {self.path} as netCDF.", parameter)
        self.root = self.md.GetRootGroup()
        self.attributes = {a.GetName(): a.Read() for a in (self.root.GetAttributes() or [])}
        self.groups = set(self.root.GetGroupNames() or [])
        self.arrays = set(self.root.GetMDArrayNames() or [])

    # -- identification ------------------------------------------------------------------------
    @property
    def is_emit(self):
        """EMIT product: ``instrument``/``sensor`` says EMIT, or it has the EMIT groups/variables."""
        text = f"{self.attributes.get('instrument', '')} {self.attributes.get('sensor', '')}"
        if "EMIT" in str(text).upper():
            return True
        return "sensor_band_parameters" in self.groups and bool(self.arrays & set(DATA_VARIABLES))

    @property
    def product(self):
        """Short product name from the title (``L1B RDN``, ``L1B OBS``, ``L2A RFL``, ``L2A MASK``...)."""
        title = str(self.attributes.get("title", ""))
        level = "L2A" if "L2A" in title else "L1B" if "L1B" in title else ""
        variable = self.default_variable(required=False)
        kind = {"radiance": "RDN", "reflectance": "RFL", "reflectance_uncertainty": "RFLUNCERT",
                "obs": "OBS", "mask": "MASK"}.get(variable, "")
        return f"{level} {kind}".strip() or "unknown"

    def default_variable(self, required=True):
        for name in DATA_VARIABLES:
            if name in self.arrays:
                return name
        if required:
            raise InputError(
                f"{self.path} is an EMIT netCDF without a data variable ({', '.join(DATA_VARIABLES)}); "
                f"it has {', '.join(sorted(self.arrays)) or 'no variables'} and groups "
                f"{', '.join(sorted(self.groups)) or 'none'}. Name a variable as 'file.nc|variable'.",
                self.parameter)
        return None

    # -- arrays --------------------------------------------------------------------------------
    def array(self, name, required=True):
        """The MDArray ``name`` (``group/name`` for group members), or None when absent."""
        parts = [p for p in str(name).strip("/").split("/") if p]
        group = self.root
        try:
            for p in parts[:-1]:
                group = group.OpenGroup(p)
                if group is None:
                    raise RuntimeError(p)
            arr = group.OpenMDArray(parts[-1]) if parts else None
        except RuntimeError:
            arr = None
        if arr is None and required:
            raise InputError(
                f"{self.path} has no variable '{name}'; available: {', '.join(self.variable_names())}.",
                self.parameter)
        return arr

    def variable_names(self):
        """Data-like variables (2-D or 3-D) in the root group and the ``location`` group."""
        names = []
        for n in sorted(self.arrays):
            arr = self.root.OpenMDArray(n)
            if arr is not None and arr.GetDimensionCount() >= 2:
                names.append(n)
        if "location" in self.groups:
            names += [f"location/{n}" for n in sorted(self.root.OpenGroup("location").GetMDArrayNames() or [])]
        return names

    def read_1d(self, name):
        arr = self.array(name, required=False)
        return None if arr is None else np.asarray(arr.ReadAsArray()).ravel()

    def strings(self, name):
        arr = self.array(name, required=False)
        if arr is None:
            return None
        return [str(v) for v in arr.Read()]

    def sensor_size(self):
        """Sensor grid ``(width = crosstrack, height = downtrack)``."""
        dims = {d.GetName(): int(d.GetSize()) for d in (self.root.GetDimensions() or [])}
        if "crosstrack" in dims and "downtrack" in dims:
            return dims["crosstrack"], dims["downtrack"]
        lat = self.array("location/lat", required=False)
        if lat is not None:
            shape = [int(d.GetSize()) for d in lat.GetDimensions()]
            return shape[1], shape[0]
        return None

    @property
    def has_glt(self):
        return (self.array("location/glt_x", required=False) is not None
                and self.array("location/glt_y", required=False) is not None
                and "geotransform" in self.attributes)

    def acquisition_times(self):
        """(start, end) ISO 8601 UTC strings (``YYYY-MM-DDTHH:MM:SSZ``) or None."""
        return (_iso_utc(self.attributes.get("time_coverage_start")),
                _iso_utc(self.attributes.get("time_coverage_end")))

    # -- classic view --------------------------------------------------------------------------
    def open_variable(self, variable=None):
        """Read-only GDAL dataset of ``variable`` (x = crosstrack, y = downtrack, bands = last dim)."""
        variable = variable or self.default_variable()
        arr = self.array(variable)
        dims = [d.GetName() for d in arr.GetDimensions()]
        if len(dims) not in (2, 3):
            raise InputError(f"variable '{variable}' of {self.path} has dimensions {dims}; expected "
                             "(downtrack, crosstrack[, bands]).", self.parameter)
        try:
            ds = arr.AsClassicDataset(1, 0)
        except RuntimeError as exc:
            raise InputError(f"cannot read variable '{variable}' of {self.path}: {exc}", self.parameter) from None
        if ds is None or ds.RasterCount == 0:
            raise InputError(f"variable '{variable}' of {self.path} has no raster bands.", self.parameter)
        self._describe(ds, variable, arr, dims)
        if len(dims) == 3:
            _read_all_bands_at_once(ds, arr)
        # The classic view references the array; keep the file objects alive with it.
        ds._emit_keepalive = (self.md, self.root, arr)
        ds.SetDescription(f'{self.path}|{variable}')
        return ds

    def _describe(self, ds, variable, arr, dims):
        n = ds.RasterCount
        nodata = arr.GetNoDataValueAsDouble()
        for i in range(n):
            band = ds.GetRasterBand(i + 1)
            if nodata is None or not np.isfinite(nodata):
                if variable in DATA_VARIABLES:
                    band.SetNoDataValue(NODATA)
            for key in [k for k in (band.GetMetadata() or {}) if k.startswith("DIM_")]:
                band.SetMetadataItem(key, None)
        if variable in SPECTRAL_VARIABLES:
            wl = self.read_1d("sensor_band_parameters/wavelengths")
            fwhm = self.read_1d("sensor_band_parameters/fwhm")
            good = self.read_1d("sensor_band_parameters/good_wavelengths")
            if wl is not None and len(wl) == n:
                write_spectral_metadata(
                    ds, wl, fwhm if fwhm is not None and len(fwhm) == n else None,
                    good.astype(int) if good is not None and len(good) == n else None)
        names = self.strings(f"sensor_band_parameters/{BAND_NAME_ARRAYS[variable]}") \
            if variable in BAND_NAME_ARRAYS else None
        if names is not None and len(names) == n:
            for i, name in enumerate(names):
                ds.GetRasterBand(i + 1).SetDescription(name)
        md = {}
        for key, value in self.attributes.items():
            if key in _SKIPPED_ATTRIBUTES:
                continue
            md[key] = _text(value)
        for a in arr.GetAttributes() or []:
            if a.GetName() not in ("_FillValue",):
                md[f"{variable}#{a.GetName()}"] = _text(a.Read())
        start, end = self.acquisition_times()
        if start:
            md["acquisition_time"] = start
        md.update({"EMIT_PRODUCT": self.product, "EMIT_VARIABLE": variable, "EMIT_FILE": self.path,
                   "EMIT_HAS_GLT": "YES" if self.has_glt else "NO"})
        ds.SetMetadata(md)
        envi = {}
        if start:
            envi["start_acquisition_time"] = start
        if end:
            envi["end_acquisition_time"] = end
        if envi:
            ds.SetMetadata(envi, "ENVI")


def _read_all_bands_at_once(ds, arr):
    """Make ``ds.ReadAsArray(x, y, w, h)`` (all bands) a single read of the netCDF array.

    The classic view reads band by band; with EMIT's band-interleaved-by-pixel chunks a window that
    spans several chunks then decompresses each chunk once per band (10-30x slower). Reads with
    other arguments fall back to GDAL's own implementation."""
    owner = weakref.ref(ds)  # no reference cycle: GDAL objects must be released in order
    width, height, bands = ds.RasterXSize, ds.RasterYSize, ds.RasterCount

    def read_as_array(xoff=0, yoff=0, xsize=None, ysize=None, *args, **kwargs):
        xsize = width - xoff if xsize is None else xsize
        ysize = height - yoff if ysize is None else ysize
        if args or kwargs or not (0 <= xoff and 0 <= yoff and xoff + xsize <= width and yoff + ysize <= height):
            return gdal.Dataset.ReadAsArray(owner(), xoff, yoff, xsize, ysize, *args, **kwargs)
        data = arr.ReadAsArray(array_start_idx=[int(yoff), int(xoff), 0],
                               count=[int(ysize), int(xsize), bands])
        return np.ascontiguousarray(np.moveaxis(data, 2, 0))

    ds.ReadAsArray = read_as_array


def _text(value):
    if isinstance(value, (list, tuple, np.ndarray)):
        return ",".join(repr(float(v)) if isinstance(v, (float, np.floating)) else str(v) for v in value)
    return str(value)


def _iso_utc(value):
    """``'2022-08-27T06:07:53+0000'`` → ``'2022-08-27T06:07:53Z'`` (None when unparsable)."""
    if not value:
        return None
    text = str(value).strip().replace("Z", "+0000")
    for fmt in ("%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%dT%H:%M:%S"):
        try:
            t = datetime.strptime(text, fmt)
        except ValueError:
            continue
        if t.tzinfo is not None:
            t = t.astimezone(timezone.utc)
        return t.strftime("%Y-%m-%dT%H:%M:%SZ")
    return None


def open_emit(path, parameter="input", variable=None):
    """Open an EMIT netCDF (``file.nc``, ``file.nc|var``, ``NETCDF:"file.nc":var``) as a GDAL dataset.

    Raises :class:`InputError` (naming ``parameter``) when the file is not an EMIT product or lacks
    the variable."""
    local, var = split_path(path)
    emit = EmitFile(local, parameter)
    if not emit.is_emit:
        raise InputError(f"{local} is not an EMIT netCDF product (no EMIT attributes or "
                         "sensor_band_parameters group).", parameter)
    return emit.open_variable(variable or var)


def open_if_emit(path, parameter="input"):
    """GDAL dataset for an EMIT netCDF path, or None when ``path`` is no EMIT netCDF (then the caller
    opens it with GDAL as usual). Errors for EMIT files with missing variables."""
    if gdal is None or not is_netcdf_path(path):
        return None
    local, var = split_path(path)
    if not os.path.exists(local):
        return None
    try:
        emit = EmitFile(local, parameter)
    except InputError:
        return None
    if not emit.is_emit:
        return None
    return emit.open_variable(var)


def emit_source(path):
    """The EMIT netCDF file behind ``path`` (a dataset opened by :func:`open_emit` or a path), or None."""
    if hasattr(path, "GetMetadataItem"):
        return path.GetMetadataItem("EMIT_FILE")
    if not is_netcdf_path(path):
        return None
    local, _ = split_path(path)
    try:
        emit = EmitFile(local)
    except InputError:
        return None
    return local if emit.is_emit else None
