"""``spectraltf:attentionmaps``: where a transformer looks — band attention (SpecTf) or temporal
attention (L-TAE), chosen by the model's card. Thin adapter over :mod:`..runtime.spectf` and
:mod:`..runtime.ltae`."""
from qgis.core import (
    QgsProcessing,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterString,
)

from ..runtime import onnx_backend
from ..runtime.errors import InputError
from .base import RasterParameter, RastersParameter, SpectralAlgorithm, enum_value, static_enum
from .output_styles import style_output

INPUT_TYPES = ("auto", "radiance", "reflectance")


class AttentionMapsAlgorithm(SpectralAlgorithm):
    NAME = "attentionmaps"
    DISPLAY = "Attention maps"
    GROUP = "explainability"

    INPUT = "INPUT"
    MODEL = "MODEL"
    DATES = "DATES"
    INPUT_TYPE = "INPUT_TYPE"
    OBSERVATION = "OBSERVATION"
    IRRADIANCE = "IRRADIANCE"
    DEVICE = "DEVICE"
    BATCH_SIZE = "BATCH_SIZE"
    OUTPUT = "OUTPUT"
    OUTPUT_TOP_WAVELENGTH = "OUTPUT_TOP_WAVELENGTH"
    OUTPUT_HEADS = "OUTPUT_HEADS"
    OUTPUT_CLASSES = "OUTPUT_CLASSES"

    DEFAULT_MODEL = "spectf-cloud-v0.1.0"

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(RastersParameter(
            self.INPUT, "Input raster(s): one spectral image (SpecTf) or one raster per date / one stack (L-TAE)",
            QgsProcessing.TypeRaster))
        self.addParameter(QgsProcessingParameterString(
            self.MODEL, "Model (registry id or .onnx path; its card selects band or temporal attention)",
            defaultValue=self.DEFAULT_MODEL))
        self.addParameter(QgsProcessingParameterString(
            self.DATES, "Acquisition dates, comma-separated ISO (L-TAE; default: raster metadata or file names)",
            optional=True))
        self.addParameter(static_enum(self.INPUT_TYPE, "Input type (SpecTf only)", INPUT_TYPES, "auto"))
        self.addParameter(RasterParameter(
            self.OBSERVATION, "Observation geometry raster, EMIT/AVIRIS OBS (SpecTf radiance input only)",
            optional=True))
        self.addParameter(QgsProcessingParameterFile(
            self.IRRADIANCE, "Solar irradiance spectrum file (SpecTf radiance input only)", optional=True))
        self.addParameter(static_enum(self.DEVICE, "Device", onnx_backend.DEVICES, "auto"))
        self.addParameter(QgsProcessingParameterNumber(
            self.BATCH_SIZE, "Batch size (pixels per model call; empty = model default)",
            QgsProcessingParameterNumber.Integer, optional=True, minValue=1))
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, "Attention map"))
        self.addParameter(QgsProcessingParameterRasterDestination(
            self.OUTPUT_TOP_WAVELENGTH, "Most-attended wavelength, nm (SpecTf)", optional=True,
            createByDefault=False))
        self.addParameter(QgsProcessingParameterRasterDestination(
            self.OUTPUT_HEADS, "Attention per head (L-TAE)", optional=True, createByDefault=False))
        self.addParameter(QgsProcessingParameterRasterDestination(
            self.OUTPUT_CLASSES, "Class map (L-TAE)", optional=True, createByDefault=False))

    def shortHelpString(self):  # noqa: N802
        return (
            "<p>Maps where a transformer model puts its attention. The <b>model's card</b> selects the mode:</p>"
            "<ul><li><b>Band attention</b> (SpecTf cloud model, task <i>spectral-cloud-mask</i>): INPUT is exactly "
            "one hyperspectral raster (TOA reflectance, or radiance converted on the fly with OBSERVATION and "
            "optional IRRADIANCE, as in the cloud-mask algorithm; INPUT_TYPE auto/radiance/reflectance). OUTPUT has "
            "one float32 band per model wavelength (attention each band token receives, mean over the 8 heads "
            "and query positions), with wavelength metadata so spectral viewers plot it. OUTPUT_TOP_WAVELENGTH: the "
            "most-attended wavelength (nm) per pixel.</li>"
            "<li><b>Temporal attention</b> (L-TAE, task <i>temporal-attention</i>): INPUT is an ordered list of "
            "rasters, one per date, each with the model's channels (e.g. NDVI), or one multiband stack of "
            "dates × channels bands in date-major order. Dates come from DATES (comma-separated ISO dates, one per "
            "date; required for a stack), else from each raster's metadata (ACQUISITION_DATE, TIFFTAG_DATETIME, "
            "ENVI acquisition time…) or file name (YYYYMMDD / YYYY-MM-DD). OUTPUT has one band per date "
            "(attention on that date, mean over heads; band descriptions are the dates). Optional OUTPUT_HEADS "
            "(heads × dates bands, head-major) and OUTPUT_CLASSES (uint8 class map with colour table).</li></ul>"
            "<p>All rasters must share one grid. Pixels with nodata in any band/date are nodata (−9999; class map "
            "255). OBSERVATION, IRRADIANCE, INPUT_TYPE and OUTPUT_TOP_WAVELENGTH apply to SpecTf only; DATES, "
            "OUTPUT_HEADS and OUTPUT_CLASSES to L-TAE only. DEVICE: auto (CUDA when usable), cpu or cuda. "
            "A model without an 'attention' output (e.g. a segmentation model) is rejected. Attention is a "
            "diagnostic, not a calibrated importance measure.</p>")

    # -- run ---------------------------------------------------------------------------------
    def execute(self, parameters, context, monitor):
        from ..runtime import ltae

        layers = self.parameterAsLayerList(parameters, self.INPUT, context)
        paths = [lyr.source() for lyr in layers]
        if not paths:
            raise InputError("no input raster given; expected one raster (SpecTf) or one per date (L-TAE).",
                             self.INPUT)
        model_value = self.parameterAsString(parameters, self.MODEL, context) or self.DEFAULT_MODEL
        device = enum_value(self, parameters, self.DEVICE, context, onnx_backend.DEVICES)
        batch = parameters.get(self.BATCH_SIZE)
        batch = self.parameterAsInt(parameters, self.BATCH_SIZE, context) if batch not in (None, "") else None
        output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        top = self._optional_output(parameters, self.OUTPUT_TOP_WAVELENGTH, context)
        heads = self._optional_output(parameters, self.OUTPUT_HEADS, context)
        classes = self._optional_output(parameters, self.OUTPUT_CLASSES, context)

        mode, path, card = ltae.resolve_attention_model(model_value, device, parameter=self.MODEL,
                                                        config=self.runtime_config)
        monitor.info(f"Model {card.get('id', path)}: {'band (SpecTf)' if mode == 'spectral' else 'temporal (L-TAE)'} "
                     "attention.")
        results = {self.OUTPUT: output}
        if mode == "spectral":
            if len(paths) != 1:
                raise InputError(f"{len(paths)} rasters given; band attention (SpecTf) takes exactly one "
                                 "hyperspectral raster.", self.INPUT)
            for name, value in ((self.DATES, parameters.get(self.DATES)), (self.OUTPUT_HEADS, heads),
                                (self.OUTPUT_CLASSES, classes)):
                if value not in (None, ""):
                    monitor.warn(f"{name} applies to temporal (L-TAE) models only; ignored.")
            from ..runtime import spectf

            obs_layer = self.parameterAsRasterLayer(parameters, self.OBSERVATION, context)
            irradiance = self.parameterAsFile(parameters, self.IRRADIANCE, context) or None
            input_type = enum_value(self, parameters, self.INPUT_TYPE, context, INPUT_TYPES)
            outputs = {"attention": output}
            if top:
                outputs["top_wavelength"] = top
            result = spectf.run_spectf(
                paths[0], model=path, outputs=outputs, input_type=input_type,
                observation=obs_layer.source() if obs_layer is not None else None, irradiance=irradiance,
                device=device, batch_size=batch, monitor=monitor, config=self.runtime_config)
            style_output(context, output, "Band attention (SpecTf)")
            if top:
                style_output(context, top, "Most-attended wavelength (nm)")
                results[self.OUTPUT_TOP_WAVELENGTH] = top
        else:
            for name, value in ((self.OBSERVATION, parameters.get(self.OBSERVATION)),
                                (self.IRRADIANCE, parameters.get(self.IRRADIANCE)), (self.OUTPUT_TOP_WAVELENGTH, top)):
                if value not in (None, ""):
                    monitor.warn(f"{name} applies to SpecTf models only; ignored.")
            dates_text = self.parameterAsString(parameters, self.DATES, context) or None
            ltae.temporal_attention(paths, path, output, dates_text=dates_text, output_heads=heads,
                                    output_classes=classes, device=device, batch_size=batch or 4096,
                                    monitor=monitor, card=card, config=self.runtime_config)
            style_output(context, output, "Temporal attention (L-TAE)")
            if heads:
                results[self.OUTPUT_HEADS] = heads
            if classes:
                style_output(context, classes, "Classes (L-TAE)")
                results[self.OUTPUT_CLASSES] = classes
        return results

    def _optional_output(self, parameters, name, context):
        value = parameters.get(name)
        if value in (None, "") or (isinstance(value, str) and value.strip() == ""):
            return None
        out = self.parameterAsOutputLayer(parameters, name, context)
        return out or None
