"""Test/benchmark spectra for SpecTf: real EMIT Libya-4 TOA reflectance and synthetic cloudy mixes.

No real cloudy EMIT spectra are available offline, so cloudy spectra are *constructed*: a
physically plausible cloud top-of-atmosphere reflectance (high, nearly flat VNIR reflectance ~0.75
sloping down into the SWIR; broad ice/liquid-water absorption near 1.5 and 2.0 µm; shallower
water-vapour bands at 940, 1140, 1380 and 1880 nm, the last two nearly saturated) linearly mixed with
the real clear-sky desert spectra at cloud fractions 0.3–1.
"""
import numpy as np


def _shared():
    from .build_store import SHARED as shared
    return shared


def libya4_toa(data_dir=None):
    """Real EMIT Libya-4 TOA reflectance: (spectra (266, 285) float32, wavelength_nm (285,), fwhm (285,)).

    Converted with the plugin runtime's :class:`~..runtime.toa.ToaConverter` and SpecTf's own solar
    spectrum (``irr.npy``): per-pixel zenith from OBS band 5, mean Earth–Sun distance from band 11."""
    from ..runtime.io import raster_io
    from ..runtime.physics.toa import ToaConverter

    data = _shared() if data_dir is None else data_dir
    rdn = raster_io.open_raster(str(data / "emit" / "emit_l1b_rdn_libya4_25x22.img"))
    conv = ToaConverter.create(rdn, str(data / "emit" / "emit_l1b_obs_libya4_25x22_derived.img"),
                               irradiance=str(data / "spectf" / "irr.npy"))
    window = raster_io.Window(0, 0, rdn.RasterXSize, rdn.RasterYSize)
    radiance, valid = raster_io.read_block(rdn, window)
    rho = conv.convert(window, radiance)
    return rho[:, valid].T.astype(np.float32), conv.wavelength_nm, conv.fwhm_nm


def cloud_spectrum(wavelength_nm):
    """Synthetic cloud TOA reflectance (see module docstring) at ``wavelength_nm``."""
    wl = np.asarray(wavelength_nm, dtype=np.float64)

    def dip(centre, width, depth):
        return depth * np.exp(-0.5 * ((wl - centre) / width) ** 2)

    base = 0.78 - 0.18 * np.clip((wl - 900.0) / 1600.0, 0, 1)  # bright, slowly declining continuum
    liquid_ice = 1 - dip(1500, 90, 0.45) - dip(2020, 120, 0.55)
    vapour = 1 - dip(940, 18, 0.25) - dip(1140, 22, 0.3) - dip(1380, 35, 0.9) - dip(1880, 45, 0.9)
    return (base * liquid_ice * vapour).astype(np.float32)


def cloudy_mixes(clear, wavelength_nm, fractions=(0.3, 0.5, 0.7, 0.85, 1.0), seed=0):
    """Linear mixes ``f·cloud + (1−f)·clear`` of each fraction with randomly chosen clear spectra."""
    rng = np.random.default_rng(seed)
    cloud = cloud_spectrum(wavelength_nm)
    rows = rng.choice(len(clear), size=len(fractions) * 8)
    f = np.repeat(np.asarray(fractions, dtype=np.float32), 8)[:, None]
    return (f * cloud + (1 - f) * clear[rows]).astype(np.float32), np.repeat(fractions, 8)
