"""Small real scenes for the batch-runner tests and bench (written to temporary folders).

``emit_scenes(folder, windows)``: crops of the real Libya-4 EMIT radiance clip and its derived OBS
(../shared/data/emit) as GeoTIFFs with band wavelengths/FWHM, one (radiance, obs) pair per window
``(name, row0, rows)`` (all 22 columns). ``emit_like(folder, side)``: the clip tiled to side x side
pixels (an "EMIT-like" scene: real spectra, synthetic extent). ``corrupt_copy(src, dst)``: a
GeoTIFF cut in half (opens, fails when read). ``sentinel2_chip(folder, name, size)``: a crop of the
real labelled Sentinel-2 chip with Sentinel-2 band names and wavelengths.
"""
import os
import shutil

import numpy as np

from support import shared

RDN = ("emit", "emit_l1b_rdn_libya4_25x22.img")
OBS = ("emit", "emit_l1b_obs_libya4_25x22_derived.img")
S2_BANDS = ["B02", "B03", "B04", "B08", "B11", "B12"]
S2_WAVELENGTHS = [490, 560, 665, 842, 1610, 2190]


def _write(path, cube, nodata=None, wavelengths=None, fwhm=None, descriptions=None):
    from osgeo import gdal

    from spectral_transformers.runtime.io.spectral import write_spectral_metadata

    gdal.UseExceptions()
    bands, rows, cols = cube.shape
    ds = gdal.GetDriverByName("GTiff").Create(str(path), cols, rows, bands, gdal.GDT_Float32,
                                              ["TILED=YES", "COMPRESS=DEFLATE", "INTERLEAVE=BAND"])
    for i in range(bands):
        band = ds.GetRasterBand(i + 1)
        band.WriteArray(cube[i])
        if nodata is not None:
            band.SetNoDataValue(nodata)
        if descriptions:
            band.SetDescription(descriptions[i])
    if wavelengths is not None:
        write_spectral_metadata(ds, wavelengths, fwhm)
    ds.FlushCache()
    ds = None
    return str(path)


def _read_emit():
    from osgeo import gdal

    from spectral_transformers.runtime.io.spectral import read_spectral_info

    rdn = gdal.Open(str(shared(*RDN)))
    obs = gdal.Open(str(shared(*OBS)))
    info = read_spectral_info(rdn)
    obs_names = [obs.GetRasterBand(i + 1).GetDescription() for i in range(obs.RasterCount)]
    return (rdn.ReadAsArray().astype(np.float32), obs.ReadAsArray().astype(np.float32), info, obs_names)


def emit_scenes(folder, windows):
    """[(name, radiance path, obs path)] for crops ``(name, row0, rows)`` of the real clip."""
    cube, obs, info, obs_names = _read_emit()
    out = []
    for name, row0, rows in windows:
        rdn_path = _write(os.path.join(folder, f"{name}_rdn.tif"), cube[:, row0:row0 + rows], -9999.0,
                          info.wavelength_nm, info.fwhm_nm)
        obs_path = _write(os.path.join(folder, f"{name}_obs.tif"), obs[:, row0:row0 + rows], -9999.0,
                          descriptions=obs_names)
        out.append((name, rdn_path, obs_path))
    return out


def emit_like(folder, name, side):
    """(radiance, obs) paths of the real clip tiled to ``side`` x ``side`` pixels."""
    cube, obs, info, obs_names = _read_emit()
    reps = (1, -(-side // cube.shape[1]), -(-side // cube.shape[2]))
    big = np.tile(cube, reps)[:, :side, :side]
    big_obs = np.tile(obs, reps)[:, :side, :side]
    return (_write(os.path.join(folder, f"{name}_rdn.tif"), big, -9999.0, info.wavelength_nm, info.fwhm_nm),
            _write(os.path.join(folder, f"{name}_obs.tif"), big_obs, -9999.0, descriptions=obs_names))


def corrupt_copy(src, dst):
    """A copy of ``src`` cut to half its size: GDAL opens it, reading its pixels fails."""
    shutil.copyfile(src, dst)
    with open(dst, "r+b") as f:
        f.truncate(os.path.getsize(src) // 2)
    return str(dst)


def sentinel2_chip(folder, name, row0=0, size=256):
    """A ``size`` x ``size`` crop of the real Sentinel-2 chip (6 bands, reflectance 0-1)."""
    data = np.load(shared("multispectral", "sentinel2.npz"))
    img = np.moveaxis(data["img"], -1, 0)[:, row0:row0 + size, :size].astype(np.float32)
    return _write(os.path.join(folder, f"{name}.tif"), img, wavelengths=S2_WAVELENGTHS, descriptions=S2_BANDS)
