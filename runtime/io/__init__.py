"""Reading what users have: rasters through GDAL (read-only, virtual paths), EMIT netCDF products,
acquisition times, completeness checks of files on disk, and the geometry lookup tables (GLT) that
put sensor-geometry rasters on a map grid."""
