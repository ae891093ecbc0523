"""At-sensor radiance → top-of-atmosphere (TOA) reflectance, streamed block by block.

    rho = pi · L · d² / (E_sun(λ) · cos θs)

L radiance (converted to µW cm⁻² nm⁻¹ sr⁻¹), E_sun the solar irradiance at 1 AU (µW cm⁻² nm⁻¹)
averaged over each band's Gaussian response (FWHM from the metadata, else the band spacing),
d the Earth–Sun distance (AU), θs the solar zenith angle.

Geometry, in order of precedence: explicit ``solar_zenith`` / ``earth_sun_distance``; an OBS raster
in the EMIT / AVIRIS-NG layout (11 bands; band 5 to-sun zenith in degrees, per pixel; band 11
Earth–Sun distance in AU, averaged over valid pixels as SpecTf does); the acquisition time in the
metadata (NOAA solar position at the georeferenced centre; the distance needs only the date).

:class:`ToaConverter` converts windows on the fly (used by the cloud-mask and attention
algorithms); :func:`toa_reflectance` is the streaming raster-to-raster driver.
"""
import os
from datetime import datetime, timezone

import numpy as np

from . import band_validity, solar
from ..io import raster_io
from ..pipeline import styles
from ..io.dates import acquisition_time  # noqa: F401 (the one acquisition-time reader, also toa.acquisition_time)
from ..errors import InputError, render
from ..monitor import ensure
from ..io.spectral import read_spectral_info

#: Output nodata value (EMIT convention).
NODATA = -9999.0

#: Radiance unit choices (enum values of RADIANCE_UNITS) → factor to µW cm⁻² nm⁻¹ sr⁻¹.
RADIANCE_UNIT_FACTORS = {
    "uW_cm2_nm_sr": 1.0,      # EMIT, AVIRIS-NG, AVIRIS-3 (µW cm⁻² nm⁻¹ sr⁻¹)
    "mW_cm2_um_sr": 1.0,      # identical to µW cm⁻² nm⁻¹ sr⁻¹
    "W_m2_um_sr": 0.1,        # Landsat/Sentinel convention
    "mW_m2_nm_sr": 0.1,       # identical to W m⁻² µm⁻¹ sr⁻¹ (EnMAP L1B)
    "W_m2_nm_sr": 100.0,
    "uW_cm2_um_sr": 1e-3,
}
RADIANCE_UNITS = ["auto"] + list(RADIANCE_UNIT_FACTORS)

#: Accepted solar zenith angles (degrees; the sun must be above the horizon: 90 itself is refused).
SOLAR_ZENITH_RANGE_DEG = (0.0, 90.0)
#: Plausible Earth–Sun distances (AU; the true range over a year is 0.983–1.017).
EARTH_SUN_DISTANCE_RANGE_AU = (0.95, 1.05)

#: OBS layout (1-based bands).
OBS_BANDS = 11
OBS_ZENITH_BAND = 5
OBS_DISTANCE_BAND = 11



def _as_dataset(value, parameter):
    if value is None or value == "":
        return None
    if hasattr(value, "GetRasterBand"):
        return value
    return raster_io.open_raster(value, parameter)


def _parse_unit_text(text):
    """Factor to µW cm⁻² nm⁻¹ sr⁻¹ for a units string such as 'micro-watts/cm^2/nm/sr', or None."""
    t = str(text).lower().replace(" ", "").replace("^", "").replace("_", "").replace("μ", "µ")
    t = t.replace("microwatts", "uw").replace("micro-watts", "uw").replace("microw", "uw").replace("µw", "uw")
    t = t.replace("milliwatts", "mw").replace("milli-watts", "mw").replace("watts", "w")
    t = t.replace("microns", "um").replace("micron", "um").replace("micrometers", "um").replace("µm", "um")
    t = t.replace("nanometers", "nm").replace("nanometer", "nm").replace("-1", "").replace("(", "").replace(")", "")
    for power, names in ((1e-6, ("uw",)), (1e-3, ("mw",)), (1.0, ("w",))):
        for name in names:
            idx = t.find(name)
            if idx < 0 or (name == "w" and idx > 0 and t[idx - 1] in "um"):
                continue
            rest = t[idx + len(name):]
            area = 1e-4 if "cm2" in rest else (1.0 if "m2" in rest else None)
            length = 1e-9 if "nm" in rest else (1e-6 if "um" in rest else None)
            if area is None or length is None:
                continue
            # value [power W / (area m² · length m)] → µW cm⁻² nm⁻¹ = 1e-6 W / (1e-4 m² · 1e-9 m)
            return power / (area * length) / (1e-6 / (1e-4 * 1e-9))
    return None


def detect_radiance_units(ds):
    """(factor to µW cm⁻² nm⁻¹ sr⁻¹, explanation) from the raster's metadata, or (None, reason)."""
    candidates = []
    envi = ds.GetMetadata("ENVI") or {}
    for key in ("data units", "data_units", "radiance units", "radiance_units", "units", "description"):
        if key in envi:
            candidates.append((f"ENVI '{key}'", envi[key]))
    for key, value in (ds.GetMetadata() or {}).items():
        if "unit" in key.lower() or key.lower() in ("description",):
            candidates.append((f"metadata '{key}'", value))
    band = ds.GetRasterBand(1)
    if band.GetUnitType():
        candidates.append(("band unit type", band.GetUnitType()))
    for key, value in (band.GetMetadata() or {}).items():
        if "unit" in key.lower() and "wavelength" not in key.lower():
            candidates.append((f"band metadata '{key}'", value))
    for where, text in candidates:
        factor = _parse_unit_text(text)
        if factor is not None:
            return factor, f"{where} = '{str(text).strip()[:80]}'"
    return None, "no radiance units in the metadata"


def centre_lonlat(ds):
    """(lon, lat) in degrees of the raster centre, or None when it is not georeferenced."""
    from osgeo import osr

    gt = ds.GetGeoTransform(can_return_null=True)
    wkt = ds.GetProjection()
    x = y = None
    if gt is not None and wkt:
        px, py = ds.RasterXSize / 2.0, ds.RasterYSize / 2.0
        x = gt[0] + px * gt[1] + py * gt[2]
        y = gt[3] + px * gt[4] + py * gt[5]
    elif ds.GetGCPCount() and ds.GetGCPProjection():
        gcps = ds.GetGCPs()
        x = float(np.mean([g.GCPX for g in gcps]))
        y = float(np.mean([g.GCPY for g in gcps]))
        wkt = ds.GetGCPProjection()
    if x is None:
        return None
    src = osr.SpatialReference()
    if src.ImportFromWkt(wkt) != 0:
        return None
    dst = osr.SpatialReference()
    dst.ImportFromEPSG(4326)
    for s in (src, dst):
        s.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    lon, lat, _ = osr.CoordinateTransformation(src, dst).TransformPoint(x, y)
    return float(lon), float(lat)


def _check_zenith(value, parameter):
    lo, hi = SOLAR_ZENITH_RANGE_DEG
    if not np.isfinite(value) or value < lo or value >= hi:
        raise InputError(f"solar zenith {value:g}° is outside 0–90°; expected the solar zenith angle in degrees "
                         "(0 = sun overhead, below 90 = sun above the horizon).", parameter)


def _check_distance(value, parameter):
    lo, hi = EARTH_SUN_DISTANCE_RANGE_AU
    if not np.isfinite(value) or not lo <= value <= hi:
        raise InputError(f"Earth–Sun distance {value:g} AU is implausible; expected {lo:g}–{hi:g} AU "
                         "(0.983–1.017 over a year).", parameter)


class ToaConverter:
    """Converts radiance windows of one raster to TOA reflectance.

    Build with :meth:`create`. Attributes: ``bands`` (1-based band numbers converted),
    ``wavelength_nm``, ``fwhm_nm``, ``bbl`` (or None), ``irradiance`` (µW cm⁻² nm⁻¹ at 1 AU per band),
    ``earth_sun_distance`` (AU), ``solar_zenith`` (degrees, None when per pixel from OBS),
    ``radiance_factor`` (to µW cm⁻² nm⁻¹ sr⁻¹), ``notes`` (how each quantity was obtained).
    """

    def __init__(self, bands, wavelength_nm, fwhm_nm, bbl, irradiance, earth_sun_distance, solar_zenith=None,
                 observation_ds=None, radiance_factor=1.0, monitor=None, notes=None):
        self.bands = list(bands)
        self.wavelength_nm = np.asarray(wavelength_nm, dtype=np.float64)
        self.fwhm_nm = np.asarray(fwhm_nm, dtype=np.float64)
        self.bbl = bbl
        self.irradiance = np.asarray(irradiance, dtype=np.float64)
        self.earth_sun_distance = float(earth_sun_distance)
        self.solar_zenith = solar_zenith
        self.observation_ds = observation_ds
        self.radiance_factor = float(radiance_factor)
        self.monitor = ensure(monitor)
        self.notes = list(notes or [])
        # rho = L · scale / cos θ, scale = pi · factor · d² / E (per band)
        self._scale = (np.pi * self.radiance_factor * self.earth_sun_distance ** 2 / self.irradiance).astype(np.float32)
        self._checked_magnitude = False
        self.observation_parameter = "observation"
        self.scales_offsets = None  # (scales, offsets) of the converted bands; None = the file's

    # ------------------------------------------------------------------------------------------
    @classmethod
    def create(cls, radiance_ds, observation_ds=None, irradiance=None, solar_zenith=None, earth_sun_distance=None,
               radiance_units="auto", monitor=None, bands=None, scale=None):
        """Validate the inputs and prepare the conversion.

        ``radiance_ds`` / ``observation_ds``: GDAL datasets or paths. ``irradiance``: path of a solar
        spectrum, a :class:`solar.SolarSpectrum`, or None for the shipped ASTM E-490. ``solar_zenith``
        (degrees) and ``earth_sun_distance`` (AU) override the OBS / metadata. ``radiance_units``: one of
        :data:`RADIANCE_UNITS`. ``bands``: optional 1-based subset. ``scale``: explicit factor replacing
        the file's GDAL scale/offset (:func:`.band_validity.value_scale`). Errors name the arguments of
        :func:`..tasks.toareflectance` (``input``, ``observation``, ``solar_zenith``, …), which every task
        that converts radiance shares.

        Radiance brighter than the Sun can make it (1.5 × a white reflector at zenith 0, judged on a
        decimated sample) is refused naming ``input`` and the likely cause."""
        monitor = ensure(monitor)
        notes = []
        ds = _as_dataset(radiance_ds, "input")
        if ds is None:
            raise InputError("no radiance raster given.", "input")

        # -- spectral metadata ----------------------------------------------------------------
        info = read_spectral_info(ds)
        if not info.has_wavelengths:
            raise InputError("the raster has no band wavelengths; expected a radiance raster with wavelength "
                             "metadata (ENVI 'wavelength' header, GDAL band 'wavelength' items or band names such "
                             "as '450.0 nanometers').", "input")
        all_bands = list(range(1, ds.RasterCount + 1))
        if bands is None:
            bands = all_bands
        bands = [int(b) for b in bands]
        if not bands or min(bands) < 1 or max(bands) > ds.RasterCount:
            raise InputError(f"band numbers must lie in 1–{ds.RasterCount}.", "input")
        idx = np.array(bands) - 1
        wl = info.wavelength_nm[idx]
        fwhm_all = solar.fwhm_or_spacing(info.wavelength_nm, info.fwhm_nm, None)
        if info.fwhm_nm is None:
            msg = (f"The radiance metadata has no FWHM; using the band spacing as FWHM "
                   f"(median {np.median(fwhm_all):.3g} nm) for resampling the solar spectrum.")
            monitor.info(msg)
            notes.append(render(msg))
        fwhm = fwhm_all[idx]
        bbl = info.bbl[idx] if info.bbl is not None else None

        # -- radiance units -------------------------------------------------------------------
        units = str(radiance_units or "auto").strip()
        units = {u.lower(): u for u in RADIANCE_UNITS}.get(units.lower(), units)
        if units == "auto":
            factor, why = detect_radiance_units(ds)
            if factor is None:
                factor = 1.0
                msg = ("Radiance units: none in the metadata; assuming µW cm⁻² nm⁻¹ sr⁻¹ (EMIT/AVIRIS-NG). "
                       "Set «radiance_units» if that is wrong.")
            else:
                msg = f"Radiance units from {why}: factor {factor:g} to µW cm⁻² nm⁻¹ sr⁻¹."
        elif units in RADIANCE_UNIT_FACTORS:
            factor = RADIANCE_UNIT_FACTORS[units]
            msg = f"Radiance units {units} (given): factor {factor:g} to µW cm⁻² nm⁻¹ sr⁻¹."
        else:
            raise InputError(f"'{units}' is not a known unit; expected one of {', '.join(RADIANCE_UNITS)}.",
                             "radiance_units")
        monitor.info(msg)
        notes.append(render(msg))

        # -- solar spectrum -------------------------------------------------------------------
        spectrum = solar.load_irradiance(irradiance, "irradiance")
        e_band = solar.band_irradiance(spectrum, wl, fwhm, "irradiance", monitor)
        msg = f"Solar spectrum: {spectrum.source} ({spectrum.units_note})."
        monitor.info(msg)
        notes.append(render(msg))

        # -- value scale and physical plausibility (a decimated sample) --------------------------
        scales, offsets, scale_source = band_validity.value_scale(ds, bands, scale, "scale")
        msg = f"Value scale: {scale_source}."
        monitor.info(msg)
        notes.append(render(msg))
        sample = band_validity.sample_bands(ds, bands, scales, offsets)
        band_validity.radiance_ceiling_check(sample.physical, e_band, wl, "input", factor,
                                             integer_hint=band_validity._integer_valued(sample.physical))

        # -- geometry -------------------------------------------------------------------------
        obs = _as_dataset(observation_ds, "observation")
        obs_distance = None
        if obs is not None:
            if obs.RasterCount < OBS_BANDS:
                raise InputError(f"the observation raster has {obs.RasterCount} band(s); expected the 11-band "
                                 "EMIT/AVIRIS-NG OBS layout (band 5 to-sun zenith, band 11 Earth–Sun distance).",
                                 "observation")
            if obs.RasterXSize != ds.RasterXSize or obs.RasterYSize != ds.RasterYSize:
                raise InputError(f"the observation raster is {obs.RasterXSize}×{obs.RasterYSize} pixels but the "
                                 f"radiance is {ds.RasterXSize}×{ds.RasterYSize}; expected the OBS file of the same "
                                 "scene (same size).", "observation")
            if solar_zenith is None or earth_sun_distance is None:
                obs_distance = _scan_observation(obs, "observation", monitor)

        when = None
        if solar_zenith is not None:
            solar_zenith = float(solar_zenith)
            _check_zenith(solar_zenith, "solar_zenith")
            notes.append(f"Solar zenith {solar_zenith:g}° (given).")
            if obs is not None:
                monitor.info("«solar_zenith» given: it overrides the OBS to-sun zenith.")
        elif obs is not None:
            notes.append(f"Solar zenith per pixel from OBS band {OBS_ZENITH_BAND}.")
        else:
            when = acquisition_time(ds)
            if when is None:
                raise InputError("the solar zenith angle is unknown: give «solar_zenith» (degrees) or an «observation» "
                                 "raster; the radiance metadata has no acquisition time to compute it from.",
                                 "solar_zenith")
            lonlat = centre_lonlat(ds)
            if lonlat is None:
                raise InputError(f"the radiance raster is not georeferenced, so the solar position at its "
                                 f"acquisition time ({when:%Y-%m-%d %H:%M:%S} UTC) cannot be computed; give "
                                 "«solar_zenith» (degrees) or an «observation» raster.", "solar_zenith")
            zen, az = solar.solar_position(when, lonlat[1], lonlat[0])
            solar_zenith = float(zen)
            _check_zenith(solar_zenith, "solar_zenith")
            msg = (f"Solar zenith {solar_zenith:.4f}° (azimuth {float(az):.2f}°) from the acquisition time "
                   f"{when:%Y-%m-%d %H:%M:%S} UTC at the raster centre {lonlat[1]:.4f}°N {lonlat[0]:.4f}°E "
                   "(NOAA solar position).")
            monitor.info(msg)
            notes.append(render(msg))

        if earth_sun_distance is not None:
            earth_sun_distance = float(earth_sun_distance)
            _check_distance(earth_sun_distance, "earth_sun_distance")
            notes.append(f"Earth–Sun distance {earth_sun_distance:g} AU (given).")
        elif obs_distance is not None:
            earth_sun_distance = obs_distance
            msg = (f"Earth–Sun distance {earth_sun_distance:.6f} AU = mean of OBS band {OBS_DISTANCE_BAND} over "
                   "valid pixels (SpecTf's convention).")
            monitor.info(msg)
            notes.append(render(msg))
        else:
            when = when or acquisition_time(ds)
            if when is not None:
                earth_sun_distance = float(solar.earth_sun_distance(when))
                msg = f"Earth–Sun distance {earth_sun_distance:.6f} AU from the acquisition date {when:%Y-%m-%d}."
            else:
                earth_sun_distance = 1.0
                msg = ("Earth–Sun distance unknown (no OBS, no «earth_sun_distance», no acquisition time): using 1 AU; "
                       "reflectance may be off by up to ±3.4%.")
                monitor.warn(msg)
            monitor.info(msg)
            notes.append(render(msg))
        if when is not None and when > datetime.now(timezone.utc).replace(tzinfo=None):  # naive UTC
            monitor.warn(f"the acquisition time {when:%Y-%m-%d} in the metadata lies in the future; check it "
                         "(solar position and distance were computed from it).")

        conv = cls(bands, wl, fwhm, bbl, e_band, earth_sun_distance, solar_zenith=solar_zenith,
                   observation_ds=obs if solar_zenith is None else None,
                   radiance_factor=factor, monitor=monitor, notes=notes)
        conv.scales_offsets = (scales, offsets)
        return conv

    # ------------------------------------------------------------------------------------------
    def cos_zenith(self, window):
        """cos(solar zenith) for ``window`` as float32 (rows, cols) or a scalar; NaN where OBS is invalid."""
        if self.observation_ds is None:
            return np.float32(np.cos(np.radians(self.solar_zenith)))
        zen, valid = raster_io.read_block(self.observation_ds, window, [OBS_ZENITH_BAND])
        zen = zen[0]
        bad = valid & ((zen < 0) | (zen >= 90))
        if np.any(bad):
            r, c = np.argwhere(bad)[0]
            raise InputError(f"to-sun zenith {zen[r, c]:g}° at row {window.yoff + r}, column {window.xoff + c} is "
                             "outside 0–90°; expected band 5 of an EMIT/AVIRIS-NG OBS file.",
                             self.observation_parameter)
        return np.cos(np.radians(zen)).astype(np.float32)

    def convert(self, window, radiance_block):
        """TOA reflectance (float32, same shape as ``radiance_block`` (bands, rows, cols)) for the
        radiance of ``window`` (physical values as :func:`raster_io.read_block` returns them, NaN =
        nodata). NaN where the radiance or the OBS zenith is invalid."""
        rad = np.asarray(radiance_block, dtype=np.float32)
        if rad.ndim != 3 or rad.shape[0] != len(self.bands):
            raise ValueError(f"expected a ({len(self.bands)}, rows, cols) radiance block, got {rad.shape}")
        if not self._checked_magnitude:
            self._check_magnitude(rad)
        cos_z = self.cos_zenith(window)
        out = rad * self._scale[:, None, None]
        out /= cos_z
        return out

    def _check_magnitude(self, rad):
        finite = rad[np.isfinite(rad)]
        if finite.size == 0:
            return
        self._checked_magnitude = True
        peak = float(np.max(finite)) * self.radiance_factor  # in µW cm⁻² nm⁻¹ sr⁻¹
        if peak < 1.5:
            self.monitor.warn(
                f"the radiance peaks at {peak:.3g} µW cm⁻² nm⁻¹ sr⁻¹ in the first block, far below typical "
                "at-sensor radiance (tens): is «input» already reflectance, or are «radiance_units» wrong?")


def _scan_observation(obs, parameter, monitor, block_bytes=None):
    """Validate OBS band 5 (to-sun zenith) and return the mean of band 11 (Earth–Sun distance, AU) over
    valid pixels, streaming both bands block by block."""
    rows = raster_io.block_rows_for(obs.RasterXSize, 2, 4, block_bytes or raster_io.DEFAULT_BLOCK_BYTES)
    total, count, zenith_count = 0.0, 0, 0
    for win in raster_io.iter_windows(obs.RasterXSize, obs.RasterYSize, rows):
        monitor.check()
        zen, zvalid = raster_io.read_block(obs, win, [OBS_ZENITH_BAND])
        zenith_count += int(zvalid.sum())
        bad = zvalid & ((zen[0] < 0) | (zen[0] >= 90))
        if np.any(bad):
            r, c = np.argwhere(bad)[0]
            raise InputError(f"to-sun zenith {zen[0][r, c]:g}° (band {OBS_ZENITH_BAND}) at row {win.yoff + r}, "
                             f"column {win.xoff + c} is outside 0–90°; expected an EMIT/AVIRIS-NG OBS file.",
                             parameter)
        dist, dvalid = raster_io.read_block(obs, win, [OBS_DISTANCE_BAND])
        total += float(np.sum(dist[0][dvalid], dtype=np.float64))
        count += int(dvalid.sum())
    if zenith_count == 0:
        raise InputError(f"band {OBS_ZENITH_BAND} (to-sun zenith) of the observation raster is nodata in every pixel, "
                         "so every result would be nodata; expected the OBS file of this scene (or give "
                         "«solar_zenith» instead).", parameter)
    if count == 0:
        raise InputError(f"band {OBS_DISTANCE_BAND} (Earth–Sun distance) of the observation raster has no valid "
                         "pixels.", parameter)
    mean = total / count
    if not EARTH_SUN_DISTANCE_RANGE_AU[0] <= mean <= EARTH_SUN_DISTANCE_RANGE_AU[1]:
        raise InputError(f"band {OBS_DISTANCE_BAND} averages {mean:g}, not an Earth–Sun distance in AU (≈ 0.98–1.02); "
                         "expected the 11-band EMIT/AVIRIS-NG OBS layout.", parameter)
    return mean


def toa_reflectance(input_path, output_path, observation=None, irradiance=None, solar_zenith=None,
                    earth_sun_distance=None, radiance_units="auto", monitor=None, block_bytes=None, config=None,
                    scale=None):
    """Convert a radiance raster to a float32 TOA reflectance raster (same grid, nodata −9999,
    wavelength/fwhm/bbl preserved), streaming by blocks (``block_bytes``, default the config's
    block budget).

    Nodata is per band, as in upstream SpecTf's ``toa.py``: a band that is nodata in a pixel is
    written as nodata there and the pixel's other bands keep their reflectance; a pixel whose OBS
    zenith is nodata is nodata in every band. ``scale`` replaces the file's scale/offset. Returns a summary dict (``output``, ``bands``, ``earth_sun_distance``,
    ``solar_zenith``, ``valid_pixels``, ``notes``)."""
    from ..config import ensure_config
    from ..pipeline import IN_FLIGHT_BLOCKS, OutputSet, overlapped, strips
    from ..io.spectral import write_spectral_metadata

    monitor = ensure(monitor)
    config = ensure_config(config)
    ds = _as_dataset(input_path, "input")
    if ds is None:
        raise InputError("no radiance raster given.", "input")
    outs = OutputSet(config, monitor)
    outs.add_input("input", ds)
    outs.add_input("observation", observation)
    if isinstance(irradiance, (str, os.PathLike)):
        outs.add_input("irradiance", str(irradiance))
    output_path = outs.add_output("output", output_path)
    conv = ToaConverter.create(ds, observation, irradiance, solar_zenith, earth_sun_distance, radiance_units, monitor,
                               scale=scale)
    grid = raster_io.Grid.of(ds)
    nb = len(conv.bands)
    budget = block_bytes or config.block_bytes
    with outs:
        # a row of output tiles fits one block in flight, so every block completes whole tile rows
        writer = outs.create("output", grid, nb, np.float32, NODATA,
                             tile=raster_io.tile_size_for(grid.width, nb, 4, budget // IN_FLIGHT_BLOCKS))
        write_spectral_metadata(writer.ds, conv.wavelength_nm, conv.fwhm_nm, conv.bbl)
        writer.set_metadata({
            "processing": "TOA reflectance = pi * L * d^2 / (E_sun * cos(solar zenith))",
            "earth_sun_distance_au": f"{conv.earth_sun_distance:.7f}",
            "solar_zenith_deg": "per pixel (OBS band 5)" if conv.solar_zenith is None else f"{conv.solar_zenith:.5f}",
            "solar_spectrum": os.path.basename(str(getattr(irradiance, "source", irradiance) or solar.DEFAULT_SPECTRUM)),
        })
        # read + convert block k+1 and write block k-1 while block k's nodata is marked and counted:
        # three blocks in flight share the budget
        # one row of output tiles per block when it is within twice the block's share: a block that
        # ends inside a tile row leaves those tiles dirty in GDAL's cache until a later block
        # completes them (14-row blocks on 32-row tiles of a 285-band scene kept ≈ 320 MB there,
        # bench/toa_memory.py)
        share, tile_row = budget // IN_FLIGHT_BLOCKS, writer.tile * grid.width * (nb + 2) * 4
        windows = strips(grid.width, grid.height, nb + 2, tile_row if share < tile_row <= 2 * share else share,
                         align=writer.tile)
        counts = [0, 0]

        def read(win):
            rad, _ = raster_io.read_block(ds, win, conv.bands, conv.scales_offsets, per_band=True)
            return conv.convert(win, rad)

        def mark(win, rho, advance):
            ok = np.isfinite(rho)  # per band: nodata radiance or OBS zenith → NaN
            rho[~ok] = NODATA
            some, every = np.any(ok, axis=0), np.all(ok, axis=0)
            counts[0] += int(some.sum())
            counts[1] += int((some & ~every).sum())
            return rho

        overlapped(windows, read, mark, writer.write, monitor, release=(ds, conv.observation_ds))
        valid_pixels, partial_pixels = counts
        if partial_pixels:
            monitor.info(f"{partial_pixels} pixel(s) have nodata in some bands: only those bands are nodata there "
                         "(per-band nodata, as upstream SpecTf's toa.py).")
        if valid_pixels == 0:
            msg = "the result has no valid pixel: every input pixel is nodata"
            monitor.warn(msg + ".")
            band_validity.note_valid_pixels(writer, 0, msg)
        else:
            band_validity.note_valid_pixels(writer, valid_pixels)
        writer.close()  # complete on disk, so the style's stretch can read it; committed with it below
        if valid_pixels:
            with raster_io.read_only():
                styles.write_true_color_qml(outs.style_path("output"), writer.path, conv.wavelength_nm)
    return {"output": output_path, "bands": nb, "earth_sun_distance": conv.earth_sun_distance,
            "solar_zenith": conv.solar_zenith, "valid_pixels": valid_pixels, "partial_pixels": partial_pixels,
            "notes": conv.notes}
