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


def simple_toa(radiance, wavelength_nm, fwhm_nm, irradiance, solar_zenith_deg, distance_au):
    """ρ = π L d² / (E cos θ) with E = irradiance (λ nm, µW cm⁻² nm⁻¹) Gaussian-resampled to each band.

    ``radiance`` (..., B) µW cm⁻² nm⁻¹ sr⁻¹; ``solar_zenith_deg`` broadcastable to (...)."""
    lam, irr = irradiance[:, 0], irradiance[:, 1]
    sigma = np.asarray(fwhm_nm, dtype=np.float64)[:, None] / 2.3548
    g = np.exp(-0.5 * ((lam[None, :] - np.asarray(wavelength_nm)[:, None]) / sigma) ** 2)
    e_band = (g @ irr) / g.sum(axis=1)
    cos_t = np.cos(np.deg2rad(np.asarray(solar_zenith_deg, dtype=np.float64)))[..., None]
    return (np.pi * radiance * distance_au ** 2 / (e_band * cos_t)).astype(np.float32)


def libya4_toa(data_dir=None):
    """Real EMIT Libya-4 TOA reflectance: (spectra (266, 285) float32, wavelength_nm (285,), fwhm (285,))."""
    from osgeo import gdal

    from ..runtime.spectral import read_spectral_info

    data = _shared() if data_dir is None else data_dir
    rdn = gdal.Open(str(data / "emit" / "emit_l1b_rdn_libya4_25x22.img"))
    obs = gdal.Open(str(data / "emit" / "emit_l1b_obs_libya4_25x22_derived.img"))
    info = read_spectral_info(rdn)
    radiance = np.moveaxis(rdn.ReadAsArray().astype(np.float64), 0, -1)  # (rows, cols, B)
    geometry = obs.ReadAsArray().astype(np.float64)
    valid = np.all(radiance > -9990, axis=-1)
    zenith = geometry[4][valid]
    distance = float(np.mean(geometry[10][valid]))
    irradiance = np.load(str(data / "spectf" / "irr.npy"))
    rho = simple_toa(radiance[valid], info.wavelength_nm, info.fwhm_nm, irradiance, zenith, distance)
    return rho, info.wavelength_nm, info.fwhm_nm


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
