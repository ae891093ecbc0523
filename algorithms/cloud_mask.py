"""``spectraltf:cloudmask`` — SpecTf cloud mask for imaging spectrometers (thin adapter over
:func:`..runtime.spectf.run_spectf`)."""
from qgis.core import (
    QgsProcessingOutputNumber,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterString,
)

from ..runtime import spectf
from ..runtime.errors import InputError
from ..runtime.onnx_backend import DEVICES
from .base import RasterParameter, SpectralAlgorithm, enum_value, static_enum
from .output_styles import style_output


class CloudMaskAlgorithm(SpectralAlgorithm):
    NAME = "cloudmask"
    DISPLAY = "SpecTf cloud mask"
    GROUP = "cloudmasking"

    INPUT = "INPUT"
    INPUT_TYPE = "INPUT_TYPE"
    OBSERVATION = "OBSERVATION"
    IRRADIANCE = "IRRADIANCE"
    SOLAR_ZENITH = "SOLAR_ZENITH"
    EARTH_SUN_DISTANCE = "EARTH_SUN_DISTANCE"
    MODEL = "MODEL"
    THRESHOLD = "THRESHOLD"
    DEVICE = "DEVICE"
    BATCH_SIZE = "BATCH_SIZE"
    OUTPUT = "OUTPUT"
    OUTPUT_PROBABILITY = "OUTPUT_PROBABILITY"
    CLOUD_FRACTION = "CLOUD_FRACTION"
    VALID_PIXELS = "VALID_PIXELS"
    CLOUD_PIXELS = "CLOUD_PIXELS"

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(RasterParameter(
            self.INPUT, "Hyperspectral image (TOA reflectance or radiance, with band wavelengths)"))
        self.addParameter(static_enum(self.INPUT_TYPE, "Input type", spectf.INPUT_TYPES, "auto"))
        self.addParameter(RasterParameter(
            self.OBSERVATION, "Observation geometry (OBS: solar zenith, Earth–Sun distance; radiance input)",
            optional=True))
        self.addParameter(QgsProcessingParameterFile(
            self.IRRADIANCE, "Solar irradiance spectrum (radiance input; default: the model's own)", optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            self.SOLAR_ZENITH, "Solar zenith angle override (degrees; radiance input)",
            QgsProcessingParameterNumber.Double, optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            self.EARTH_SUN_DISTANCE, "Earth–Sun distance override (AU; radiance input)",
            QgsProcessingParameterNumber.Double, optional=True))
        self.addParameter(QgsProcessingParameterString(
            self.MODEL, "Model (registry id or path to a SpecTf .onnx file)", defaultValue=spectf.DEFAULT_MODEL))
        self.addParameter(QgsProcessingParameterNumber(
            self.THRESHOLD, "Cloud-probability threshold (0–1; default: the model's)",
            QgsProcessingParameterNumber.Double, optional=True))
        self.addParameter(static_enum(self.DEVICE, "Device", DEVICES, "auto"))
        self.addParameter(QgsProcessingParameterNumber(
            self.BATCH_SIZE, "Batch size (spectra per inference call; default: the model's or 256)",
            QgsProcessingParameterNumber.Integer, optional=True))
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, "Cloud mask"))
        self.addParameter(QgsProcessingParameterRasterDestination(
            self.OUTPUT_PROBABILITY, "Cloud probability", optional=True, createByDefault=False))
        self.addOutput(QgsProcessingOutputNumber(self.CLOUD_FRACTION, "Cloud fraction of valid pixels"))
        self.addOutput(QgsProcessingOutputNumber(self.VALID_PIXELS, "Valid pixels"))
        self.addOutput(QgsProcessingOutputNumber(self.CLOUD_PIXELS, "Cloud pixels"))

    def shortHelpString(self):  # noqa: N802
        return (
            "<p>Per-pixel cloud mask for imaging spectrometers with <b>SpecTf</b>, the spectroscopic "
            "transformer behind the EMIT cloud masks (Lee et al. 2025). Each band is one token "
            "(reflectance, wavelength), so bands are matched by <i>wavelength</i>: the input's own band "
            "centres are used after removing the bands in the model's drop ranges (≤405, 1275–1321, "
            "≥2455 nm; EMIT keeps 268 of 285). Other sensors (AVIRIS-NG, EnMAP, PRISMA) run with their "
            "own wavelengths and a warning: the published model was trained on EMIT.</p>"
            "<p><b>Hyperspectral image</b>: TOA reflectance, or at-sensor radiance (µW cm⁻² nm⁻¹ sr⁻¹ as "
            "EMIT/AVIRIS-NG) converted to TOA reflectance block by block (no intermediate file) with the "
            "<b>Observation geometry</b> file (EMIT/AVIRIS-NG OBS) or the solar zenith / Earth–Sun "
            "distance overrides. The <b>Solar irradiance spectrum</b> defaults to the model's own (the SpecTf "
            "models carry SpecTf's irr.npy, so radiance is converted as the reference implementation does), "
            "else to the ASTM E-490 spectrum shipped with the plugin. Band wavelengths "
            "must be in the metadata (ENVI header, GDAL band metadata or band names).</p>"
            "<p><b>Input type</b>: auto decides from the value range (99th percentile above 1.5 → radiance) "
            "and logs why; reflectance input holding obvious radiance values is an error.</p>"
            "<p><b>Model</b>: a registry id (default spectf-cloud-v0.1.0; see <i>List models</i>) or a "
            "SpecTf .onnx file (inputs spectra (N,S) and wavelengths (S)). <b>Threshold</b>: cloud where "
            "probability ≥ threshold, strictly between 0 and 1 (default from the model card: 0.51 for "
            "v0.1.0). <b>Device</b>: auto uses CUDA when ONNX Runtime can, cpu, or cuda (error if "
            "unavailable); the provider used is logged. <b>Batch size</b>: spectra per inference call "
            "(default from the model card, 64 for v0.1.0; lower it if memory is short).</p>"
            "<p><b>Cloud mask</b>: byte raster 0 = clear, 1 = cloud, 255 = no data (pixels where any used "
            "band is nodata/NaN are not computed), styled with clear transparent and cloud white. "
            "<b>Cloud probability</b> (optional): float32 0–1, no data −9999.</p>"
            "<p>The image is processed in strips and batches, so memory stays bounded for any scene "
            "size; cancelling stops within a strip and leaves no output file.</p>")

    def _optional_number(self, parameters, name, context, integer=False):
        raw = parameters.get(name)
        if raw is None or (isinstance(raw, str) and raw.strip() == ""):
            return None
        try:
            return self.parameterAsInt(parameters, name, context) if integer else \
                self.parameterAsDouble(parameters, name, context)
        except Exception:  # noqa: BLE001 - QGIS raises on unparsable text
            raise InputError(f"'{raw}' is not a number.", name) from None

    def execute(self, parameters, context, monitor):
        layer = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        if layer is None:
            raise InputError("no raster given or it cannot be opened; expected a hyperspectral raster.", self.INPUT)
        obs = self.parameterAsRasterLayer(parameters, self.OBSERVATION, context)
        irradiance = self.parameterAsFile(parameters, self.IRRADIANCE, context) or None
        threshold = parameters.get(self.THRESHOLD)
        if threshold not in (None, ""):
            try:
                threshold = float(threshold)
            except (TypeError, ValueError):
                raise InputError(f"'{threshold}' is not a number; expected a probability between 0 and 1.",
                                 self.THRESHOLD) from None
        else:
            threshold = None
        out_mask = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        out_prob = self.parameterAsOutputLayer(parameters, self.OUTPUT_PROBABILITY, context) or None
        outputs = {"mask": out_mask, "probability": out_prob}
        result = spectf.run_spectf(
            layer.source(),
            model=self.parameterAsString(parameters, self.MODEL, context) or spectf.DEFAULT_MODEL,
            outputs=outputs,
            input_type=enum_value(self, parameters, self.INPUT_TYPE, context, spectf.INPUT_TYPES),
            observation=obs.source() if obs is not None else None,
            irradiance=irradiance,
            solar_zenith=self._optional_number(parameters, self.SOLAR_ZENITH, context),
            earth_sun_distance=self._optional_number(parameters, self.EARTH_SUN_DISTANCE, context),
            threshold=threshold,
            device=enum_value(self, parameters, self.DEVICE, context, DEVICES),
            batch_size=self._optional_number(parameters, self.BATCH_SIZE, context, integer=True),
            monitor=monitor,
            config=self.runtime_config,
        )
        style_output(context, out_mask, "Cloud mask (SpecTf)")
        if out_prob:
            style_output(context, out_prob, "Cloud probability (SpecTf)")
        return {
            self.OUTPUT: out_mask,
            self.OUTPUT_PROBABILITY: out_prob,
            self.CLOUD_FRACTION: result.cloud_fraction,
            self.VALID_PIXELS: result.valid_pixels,
            self.CLOUD_PIXELS: result.cloud_pixels,
        }
