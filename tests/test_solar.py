"""runtime/physics/solar.py: spectrum loading, Gaussian band resampling, NOAA solar geometry."""
import math
from datetime import datetime, timedelta

import numpy as np
import pytest

from support import shared

from spectral_transformers.runtime.physics import solar
from spectral_transformers.runtime.errors import InputError


# -- Gaussian resampling ------------------------------------------------------------------------
def test_resample_gaussian_hand_computed_delta():
    """A unit spike at the band centre on a 1 nm grid, sigma = 1 nm: the result is 1 / sum of the
    Gaussian weights exp(-u²/2) for u = -5..5 (all within 6 sigma), computed by hand."""
    wl = np.arange(0.0, 11.0)
    values = np.zeros_like(wl)
    values[5] = 1.0
    fwhm = 2.0 * math.sqrt(2.0 * math.log(2.0))  # sigma = 1 nm
    hand = 1.0 / (1 + 2 * (0.60653066 + 0.13533528 + 0.011108997 + 0.00033546 + 3.7267e-6))  # 0.39894228
    got = solar.resample_gaussian(wl, values, [5.0], [fwhm])
    assert got[0] == pytest.approx(hand, rel=1e-7)
    assert hand == pytest.approx(0.39894228, rel=1e-7)


def test_resample_gaussian_linear_and_uneven_grid():
    """A linear spectrum averages to its value at the band centre (symmetric response); on an uneven
    grid the cell weighting keeps a constant exact and a linear one close."""
    wl = np.arange(300.0, 900.0, 0.5)
    got = solar.resample_gaussian(wl, 2.0 * wl + 7.0, [450.0, 600.25], [8.0, 12.0])
    np.testing.assert_allclose(got, [907.0, 1207.5], rtol=1e-9)
    uneven = np.concatenate([np.arange(300.0, 600.0, 0.5), np.arange(600.0, 900.0, 2.0)])
    np.testing.assert_allclose(solar.resample_gaussian(uneven, np.full(uneven.size, 3.0), [600.0], [10.0]), 3.0)
    got = solar.resample_gaussian(uneven, 2.0 * uneven, [600.0], [10.0])
    assert got[0] == pytest.approx(1200.0, rel=2e-3)


def test_fwhm_or_spacing_logs():
    from spectral_transformers.runtime.monitor import RecordingMonitor

    mon = RecordingMonitor()
    f = solar.fwhm_or_spacing(np.array([400.0, 405.0, 410.0, 420.0]), None, mon)
    np.testing.assert_allclose(f, [5.0, 5.0, 7.5, 10.0])
    assert any("band spacing" in m for m in mon.infos)
    np.testing.assert_allclose(solar.fwhm_or_spacing([400.0, 405.0], [3.0, 4.0]), [3.0, 4.0])


# -- spectrum loading ---------------------------------------------------------------------------
def _band_550(spectrum):
    return solar.resample_gaussian(spectrum.wavelength_nm, spectrum.irradiance, [550.0, 865.0], [10.0, 10.0])


def test_default_spectrum_is_e490_in_uw_cm2_nm():
    s = solar.load_irradiance(None)
    assert s.source.endswith("astm_e490_00a.csv")
    assert s.wavelength_nm[0] <= 350 and s.wavelength_nm[-1] >= 2600
    e = _band_550(s)
    assert 180 < e[0] < 195  # E-490 ≈ 1860 W m-2 um-1 near 550 nm
    # total solar irradiance over 300-3000 nm ≈ 1300 W m-2 (of 1366 total): µW cm-2 nm-1 × nm × 0.01 = W m-2
    trapezoid = getattr(np, "trapezoid", None) or np.trapz  # NumPy 2.0 renamed it; 2.4 removed trapz
    tsi = trapezoid(s.irradiance, s.wavelength_nm) * 0.01
    assert 1250 < tsi < 1340


@pytest.mark.parametrize("parts", [("spectf", "irr.npy"), ("irradiance", "tsis_f0_0p5.txt"),
                                   ("irradiance", "kurucz_0.1nm.dat")])
def test_spectra_units_agree(parts):
    """irr.npy (µW cm-2 nm-1), TSIS and Kurucz (mW m-2 nm-1) all convert to within 5 % of E-490."""
    s = solar.load_irradiance(shared(*parts))
    np.testing.assert_allclose(_band_550(s), _band_550(solar.load_irradiance(None)), rtol=0.05)


def test_micrometre_w_m2_um_table(tmp_path):
    p = tmp_path / "e490_um.txt"
    wl_um = np.arange(0.35, 1.0, 0.001)
    p.write_text("# Wavelength, microns E-490 W/m2/micron\n" +
                 "\n".join(f"{w:.4f} {1850.0:.1f}" for w in wl_um))
    s = solar.load_irradiance(p)
    assert s.wavelength_nm[0] == pytest.approx(350.0)
    assert s.irradiance[0] == pytest.approx(185.0)


@pytest.mark.parametrize("content", ["not a spectrum\nat all\n", "400 1\n401 2\n", "1 2 3\nx y z\n"])
def test_unreadable_irradiance_names_parameter(tmp_path, content):
    p = tmp_path / "bad.txt"
    p.write_text(content)
    with pytest.raises(InputError, match="^irradiance"):
        solar.load_irradiance(p)


def test_missing_and_non_array_npy(tmp_path):
    with pytest.raises(InputError, match="irradiance.*not found"):
        solar.load_irradiance(tmp_path / "none.npy")
    bad = tmp_path / "bad.npy"
    bad.write_bytes(b"garbage")
    with pytest.raises(InputError, match="^irradiance: "):
        solar.load_irradiance(bad)


def test_spectrum_not_covering_bands():
    s = solar.load_irradiance(None)
    narrow = solar.SolarSpectrum(s.wavelength_nm[s.wavelength_nm < 1000], s.irradiance[s.wavelength_nm < 1000], "vnir")
    with pytest.raises(InputError, match="irradiance.*outside"):
        solar.band_irradiance(narrow, [500.0, 1500.0], [10.0, 10.0])


# -- solar geometry -----------------------------------------------------------------------------
def test_noaa_zenith_matches_real_emit_obs():
    """Per-pixel NOAA zenith/azimuth from the real EMIT OBS's own lat/lon/UTC reproduce its bands
    (EMIT computes them with its own ephemeris)."""
    h5py = pytest.importorskip("h5py")
    with h5py.File(shared("emit", "EMIT_L1B_OBS_001_20220827T060753_9999999_999.nc"), "r") as f:
        obs = f["obs"][::4, ::4, :]
        lat, lon = f["location/lat"][::4, ::4], f["location/lon"][::4, ::4]
    valid = obs[..., 4] != -9999
    assert valid.sum() > 1000
    t = np.datetime64("2022-08-27") + (obs[..., 9].astype(np.float64) * 3600e6).astype("int64").astype("timedelta64[us]")
    zen, az = solar.solar_position(t, lat, lon)
    assert np.abs(zen - obs[..., 4])[valid].max() < 0.01
    assert np.abs(az - obs[..., 3])[valid].max() < 0.01
    d = solar.earth_sun_distance(t[valid])
    assert np.abs(d - obs[..., 10][valid]).max() < 1e-4


def test_noaa_values_of_derived_libya_obs():
    """Values documented in emit/README.derived-obs.txt (clip centre, 2022-08-27T09:16:26Z)."""
    shared("emit", "README.derived-obs.txt")
    when = datetime(2022, 8, 27, 9, 16, 26)
    zen, az = solar.solar_position(when, 28.55, 23.39)
    assert 25.0021 <= float(zen) <= 25.0192
    assert 134.27 <= float(az) <= 134.32
    assert float(solar.earth_sun_distance(when)) == pytest.approx(1.0103908, abs=2e-7)


def test_earth_sun_distance_table():
    table = np.loadtxt(shared("irradiance", "earth_sun_distance.txt"))
    days = [datetime(2022, 1, 1, 12) + timedelta(days=int(k) - 1) for k in table[:, 0]]
    d = solar.earth_sun_distance(np.array(days, dtype="datetime64[us]"))
    assert np.abs(d - table[:, 1]).max() < 1e-4
    assert d.min() == pytest.approx(0.9833, abs=2e-4) and d.max() == pytest.approx(1.0167, abs=2e-4)


@pytest.mark.parametrize("text,expected", [
    ("2022-08-27T09:16:26Z", datetime(2022, 8, 27, 9, 16, 26)),
    ("{2022-08-27T09:16:26.5Z}", datetime(2022, 8, 27, 9, 16, 26, 500000)),
    ("2022-08-27 11:16:26+02:00", datetime(2022, 8, 27, 9, 16, 26)),
    ("20220827T091626", datetime(2022, 8, 27, 9, 16, 26)),
    ("2022-08-27", datetime(2022, 8, 27)),
    ("yesterday", None),
])
def test_parse_utc(text, expected):
    assert solar.parse_utc(text) == expected


def test_spectrum_is_parsed_once_per_file_version(tmp_path):
    """A batch worker loads the same spectrum for every scene: parsed once, re-read when the file changes."""
    import os

    from spectral_transformers.runtime.physics import solar as solar_mod

    path = tmp_path / "sun.csv"
    rows = "\n".join(f"{350 + i},{150 + i % 7}" for i in range(50))
    path.write_text("wavelength_nm,irradiance_uW_cm2_nm\n" + rows + "\n")
    first = solar_mod.load_irradiance(str(path))
    second = solar_mod.load_irradiance(str(path))
    assert second.irradiance is first.irradiance and not first.irradiance.flags.writeable
    path.write_text("wavelength_nm,irradiance_uW_cm2_nm\n" + rows.replace(",15", ",25") + "\n")
    os.utime(path, ns=(os.stat(path).st_atime_ns, os.stat(path).st_mtime_ns + 10**9))
    third = solar_mod.load_irradiance(str(path))
    assert third.irradiance.max() > first.irradiance.max()
