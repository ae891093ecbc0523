"""Processing algorithm ``spectraltf:toareflectance``: radiance → TOA reflectance (adapter over
:mod:`..runtime.toa`)."""
from qgis.core import (
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
)

from ..runtime import toa
from ..runtime.errors import InputError
from .base import RasterParameter, SpectralAlgorithm, enum_value, static_enum


class ToaReflectanceAlgorithm(SpectralAlgorithm):
    NAME = "toareflectance"
    DISPLAY = "Radiance to TOA reflectance"
    GROUP = "radiometry"

    INPUT = "INPUT"
    OBSERVATION = "OBSERVATION"
    SOLAR_ZENITH = "SOLAR_ZENITH"
    EARTH_SUN_DISTANCE = "EARTH_SUN_DISTANCE"
    IRRADIANCE = "IRRADIANCE"
    RADIANCE_UNITS = "RADIANCE_UNITS"
    OUTPUT = "OUTPUT"

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(RasterParameter(
            self.INPUT, "Radiance raster (with band wavelengths)"))
        self.addParameter(RasterParameter(
            self.OBSERVATION, "Observation geometry raster (EMIT / AVIRIS-NG OBS, 11 bands)", optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            self.SOLAR_ZENITH, "Solar zenith angle (degrees; overrides OBS / acquisition time)",
            QgsProcessingParameterNumber.Double, optional=True, minValue=0.0, maxValue=90.0))
        self.addParameter(QgsProcessingParameterNumber(
            self.EARTH_SUN_DISTANCE, "Earth–Sun distance (AU; overrides OBS / acquisition date)",
            QgsProcessingParameterNumber.Double, optional=True, minValue=0.9, maxValue=1.1))
        self.addParameter(QgsProcessingParameterFile(
            self.IRRADIANCE, "Solar irradiance spectrum (default: ASTM E-490 shipped with the plugin)",
            QgsProcessingParameterFile.File, optional=True,
            fileFilter="Solar spectra (*.npy *.txt *.dat *.csv);;All files (*.*)"))
        self.addParameter(static_enum(
            self.RADIANCE_UNITS, "Radiance units", toa.RADIANCE_UNITS, "auto"))
        self.addParameter(QgsProcessingParameterRasterDestination(
            self.OUTPUT, "TOA reflectance"))

    def shortHelpString(self):  # noqa: N802
        return (
            "Converts at-sensor radiance of an imaging spectrometer (EMIT, AVIRIS-NG, any GDAL raster with band "
            "wavelengths) to top-of-atmosphere reflectance:<br><b>ρ = π · L · d² / (E<sub>sun</sub>(λ) · cos θ<sub>s</sub>)</b>"
            "<br>E<sub>sun</sub> is the solar spectrum averaged over each band's Gaussian response (band FWHM from "
            "the metadata; the band spacing when it is missing).<br><br>"
            "<b>Radiance raster</b>: e.g. an EMIT L1B or AVIRIS-NG radiance ENVI file.<br>"
            "<b>Observation geometry</b> (optional): the matching 11-band OBS file, same size; band 5 gives the "
            "per-pixel solar zenith (degrees), band 11 the Earth–Sun distance (its mean over valid pixels is used, "
            "as SpecTf does).<br>"
            "<b>Solar zenith</b> / <b>Earth–Sun distance</b> (optional): fixed values that override the OBS. Without "
            "both, they are computed from the acquisition time in the metadata (e.g. ENVI 'start acquisition "
            "time') with the NOAA solar-position equations at the raster centre (needs georeferencing; the "
            "distance needs only the date).<br>"
            "<b>Solar irradiance spectrum</b> (optional): 2-column .npy (nm, µW cm⁻² nm⁻¹) or a text table such as "
            "Kurucz or TSIS (units from the header or the magnitude). Default: ASTM E-490-00a.<br>"
            "<b>Radiance units</b>: auto reads them from the metadata (EMIT's description) and otherwise assumes "
            "µW cm⁻² nm⁻¹ sr⁻¹ (EMIT, AVIRIS-NG); choose explicitly for other sensors.<br>"
            "<b>Output</b>: float32 reflectance on the same grid, nodata −9999 where the radiance is nodata, band "
            "wavelengths/FWHM/bad-band list preserved. The raster is processed in blocks, so memory stays bounded "
            "for multi-GB cubes.")

    def _optional_number(self, parameters, name, context):
        value = parameters.get(name)
        if value is None or (isinstance(value, str) and value.strip() == ""):
            return None
        return self.parameterAsDouble(parameters, name, context)

    def execute(self, parameters, context, monitor):
        layer = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        if layer is None:
            raise InputError("cannot open the radiance raster; expected a raster file with band wavelengths.",
                             self.INPUT)
        obs_layer = self.parameterAsRasterLayer(parameters, self.OBSERVATION, context)
        if obs_layer is None and parameters.get(self.OBSERVATION) not in (None, ""):
            raise InputError(f"cannot open {parameters.get(self.OBSERVATION)} as a raster.", self.OBSERVATION)
        irradiance = self.parameterAsFile(parameters, self.IRRADIANCE, context) or None
        lowered = [u.lower() for u in toa.RADIANCE_UNITS]  # enum_value compares in lower case
        units = toa.RADIANCE_UNITS[lowered.index(
            enum_value(self, parameters, self.RADIANCE_UNITS, context, lowered))]
        output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        summary = toa.toa_reflectance(
            layer.source(), output,
            observation=obs_layer.source() if obs_layer is not None else None,
            irradiance=irradiance,
            solar_zenith=self._optional_number(parameters, self.SOLAR_ZENITH, context),
            earth_sun_distance=self._optional_number(parameters, self.EARTH_SUN_DISTANCE, context),
            radiance_units=units, monitor=monitor, config=self.runtime_config)
        monitor.info(f"Wrote {summary['bands']} bands, {summary['valid_pixels']} valid pixels to {summary['output']}.")
        return {self.OUTPUT: summary["output"]}
