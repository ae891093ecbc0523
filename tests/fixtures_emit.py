"""Builders of EMIT-layout netCDF test files (written to temporary folders, never committed).

``build_radiance_nc(path)``: an EMIT L1B RDN netCDF in the product layout — ``radiance``
(downtrack, crosstrack, bands) float32 µW cm⁻² nm⁻¹ sr⁻¹ with ``_FillValue`` −9999,
``sensor_band_parameters/wavelengths`` and ``fwhm`` (nm), ``location/glt_x``, ``glt_y``, ``lat``,
``lon``, ``elev`` and the global attributes (``geotransform``, ``spatial_ref``,
``time_coverage_start``...). The spectra are the real Libya-4 EMIT radiance clip (25 × 22 × 285,
wavelengths and FWHM from its ENVI header) tiled to the size of the real OBS crop (200 × 200);
geolocation and attributes are copied from that OBS crop, so radiance, OBS and MASK share one
sensor grid and one GLT. (The real radiance of that scene is not available.)
"""
import numpy as np

from support import shared

OBS_NC = ("emit", "EMIT_L1B_OBS_001_20220827T060753_9999999_999.nc")
MASK_NC = ("emit", "EMIT_L2A_MASK_001_20220827T060753_9999999_999.nc")
LIBYA_RDN = ("emit", "emit_l1b_rdn_libya4_25x22.img")


def libya_radiance():
    """Real Libya-4 radiance (lines, samples, bands), wavelengths and FWHM (nm) from the ENVI clip."""
    from osgeo import gdal

    from spectral_transformers.runtime.io.spectral import read_spectral_info

    ds = gdal.Open(str(shared(*LIBYA_RDN)))
    cube = ds.ReadAsArray().astype(np.float32)  # (bands, lines, samples)
    info = read_spectral_info(ds)
    return np.moveaxis(cube, 0, -1), info.wavelength_nm, info.fwhm_nm


def build_radiance_nc(path, rows=None, cols=None, chunk_rows=32, drop=()):
    """Write an EMIT L1B RDN-layout netCDF at ``path``; returns (path, radiance (rows, cols, bands)).

    ``drop``: names of parts to leave out (``"radiance"``, ``"sensor_band_parameters"``,
    ``"location"``) to build broken files for error tests."""
    import netCDF4

    obs = netCDF4.Dataset(str(shared(*OBS_NC)))
    try:
        rows = rows or obs.dimensions["downtrack"].size
        cols = cols or obs.dimensions["crosstrack"].size
        spectra, wl, fwhm = libya_radiance()
        reps = (-(-rows // spectra.shape[0]), -(-cols // spectra.shape[1]), 1)
        cube = np.tile(spectra, reps)[:rows, :cols].astype(np.float32)
        out = netCDF4.Dataset(str(path), "w", format="NETCDF4")
        try:
            for key in obs.ncattrs():
                out.setncattr(key, obs.getncattr(key))
            out.setncattr("title", "EMIT L1B At-Sensor Calibrated Radiance and Geolocation Data 60 m V001")
            out.setncattr("summary", "Test fixture: real Libya-4 EMIT spectra tiled onto the sensor grid "
                                     "of a real EMIT OBS crop.")
            out.createDimension("downtrack", rows)
            out.createDimension("crosstrack", cols)
            out.createDimension("bands", cube.shape[2])
            ny, nx = obs["location/glt_x"].shape
            out.createDimension("ortho_y", ny)
            out.createDimension("ortho_x", nx)
            if "radiance" not in drop:
                var = out.createVariable("radiance", "f4", ("downtrack", "crosstrack", "bands"),
                                         fill_value=-9999.0,
                                         chunksizes=(min(chunk_rows, rows), cols, cube.shape[2]))
                var.long_name = "Radiance Data"
                var.units = "uW/cm^2/SR/nm"
                var[:] = cube
            if "sensor_band_parameters" not in drop:
                g = out.createGroup("sensor_band_parameters")
                v = g.createVariable("wavelengths", "f4", ("bands",))
                v.long_name = "Wavelength Centers"
                v.units = "nm"
                v[:] = wl
                v = g.createVariable("fwhm", "f4", ("bands",))
                v.long_name = "Full Width at Half Max"
                v.units = "nm"
                v[:] = fwhm
            if "location" not in drop:
                g = out.createGroup("location")
                for name in ("lat", "lon", "elev"):
                    src = obs[f"location/{name}"]
                    v = g.createVariable(name, "f8", ("downtrack", "crosstrack"), fill_value=-9999.0)
                    v.long_name = src.long_name
                    v.units = src.units
                    v[:] = src[:rows, :cols]
                for name in ("glt_x", "glt_y"):
                    v = g.createVariable(name, "i4", ("ortho_y", "ortho_x"))
                    v[:] = obs[f"location/{name}"][:]
        finally:
            out.close()
    finally:
        obs.close()
    return path, cube
