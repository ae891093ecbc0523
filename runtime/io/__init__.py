"""Reading what users have: rasters through GDAL (read-only, virtual paths), band metadata
(wavelength in nm, FWHM, bad-band list), EMIT netCDF products, acquisition times, and completeness
checks of files on disk."""
