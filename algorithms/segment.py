"""``spectraltf:segment`` — tiled semantic segmentation with an ONNX model and its model card
(thin adapter over :func:`..runtime.segmentation.run_segmentation`)."""
from qgis.core import (
    QgsProcessing,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterString,
)

from ..runtime import segmentation
from ..runtime.errors import InputError
from ..runtime.onnx_backend import DEVICES
from .base import RastersParameter, SpectralAlgorithm, enum_value, static_enum
from .output_styles import style_output


class SegmentAlgorithm(SpectralAlgorithm):
    NAME = "segment"
    DISPLAY = "Segment with an ONNX model"
    GROUP = "segmentation"

    INPUT = "INPUT"
    MODEL = "MODEL"
    BANDS = "BANDS"
    TILE_OVERLAP = "TILE_OVERLAP"
    BATCH_SIZE = "BATCH_SIZE"
    DEVICE = "DEVICE"
    OUTPUT = "OUTPUT"
    OUTPUT_PROBABILITIES = "OUTPUT_PROBABILITIES"
    OUTPUT_CONFIDENCE = "OUTPUT_CONFIDENCE"
    VALID_PIXELS = "VALID_PIXELS"
    CLASS_COUNTS = "CLASS_COUNTS"
    PROVIDER = "PROVIDER"

    DEFAULT_MODEL = "ukis-csmask-6b-l2a"

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(RastersParameter(
            self.INPUT, "Input raster(s) (one, or one per date in date order for multi-temporal models)",
            QgsProcessing.TypeRaster))
        self.addParameter(QgsProcessingParameterString(
            self.MODEL, "Model (registry id, see 'List models', or path to an .onnx file with a model card)",
            defaultValue=self.DEFAULT_MODEL))
        self.addParameter(QgsProcessingParameterString(
            self.BANDS, "Input band per model band (e.g. 2,3,4,8,11,12; default: match by name/wavelength)",
            optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            self.TILE_OVERLAP, "Tile overlap (pixels, or fraction of the tile when < 1; default: the model's)",
            QgsProcessingParameterNumber.Double, optional=True, minValue=0.0))
        self.addParameter(QgsProcessingParameterNumber(
            self.BATCH_SIZE, "Batch size (tiles per inference call)", QgsProcessingParameterNumber.Integer,
            defaultValue=4, minValue=1))
        self.addParameter(static_enum(self.DEVICE, "Device", DEVICES, "auto"))
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, "Class map"))
        self.addParameter(QgsProcessingParameterRasterDestination(
            self.OUTPUT_PROBABILITIES, "Class probabilities", optional=True, createByDefault=False))
        self.addParameter(QgsProcessingParameterRasterDestination(
            self.OUTPUT_CONFIDENCE, "Confidence (maximum class probability)", optional=True,
            createByDefault=False))
        self.addOutput(QgsProcessingOutputNumber(self.VALID_PIXELS, "Valid pixels"))
        self.addOutput(QgsProcessingOutputString(self.CLASS_COUNTS, "Pixels per class (JSON)"))
        self.addOutput(QgsProcessingOutputString(self.PROVIDER, "ONNX Runtime execution provider used"))

    def shortHelpString(self):  # noqa: N802
        return (
            "<p>Semantic segmentation of a raster with any ONNX model described by a <b>model card</b> "
            "(bands, tile size, normalisation, classes), e.g. the ukis-csmask cloud/cloud-shadow models "
            "(<i>ukis-csmask-6b-l2a</i>, …, found automatically when the Python package is installed) or "
            "your own model (see models/README.md, 'Bring your own model').</p>"
            "<p><b>Input raster(s)</b>: one raster, or for multi-temporal models one raster per date in "
            "date order, all on the same grid. Values are used after the raster's own scale/offset; the "
            "card's scale, offset, mean and std are then applied (e.g. ×0.0001 for L1C integers).</p>"
            "<p><b>Model</b>: a registry id (see <i>List models</i>) or the path of an .onnx file with an "
            "embedded card or a sidecar &lt;model&gt;.json.</p>"
            "<p><b>Input band per model band</b>: optional 1-based raster band numbers in the model's band "
            "order. Otherwise bands are matched by name (Sentinel-2 B02…B12, Landsat/HLS band names, "
            "'blue', 'swir16', …) or by centre wavelength from the raster metadata; the log lists what was "
            "matched.</p>"
            "<p><b>Tile overlap</b>: the model runs on fixed-size tiles that overlap by this many pixels "
            "(or this fraction of the tile when below 1); overlapping predictions are blended with smooth "
            "weights so there are no seams. Default: the model card's. Rasters smaller than one tile are "
            "reflect-padded. <b>Batch size</b>: tiles per model call (lower it when memory is short). "
            "<b>Device</b>: auto (CUDA when available), cpu or cuda; the provider used is logged.</p>"
            "<p><b>Class map</b>: byte raster with the card's class values, 255 = no data (pixels that are "
            "no data in any band or date), with a colour table and a .qml style. <b>Class "
            "probabilities</b> (optional): float32, one band per class named after it. <b>Confidence</b> "
            "(optional): float32 maximum class probability. Probability outputs use −9999 as no data.</p>"
            "<p>The raster is processed one row of tiles at a time, so memory does not grow with its "
            "height; cancelling leaves no output file.</p>")

    def execute(self, parameters, context, monitor):
        layers = self.parameterAsLayerList(parameters, self.INPUT, context)
        if not layers:
            raise InputError("no raster given; expected one raster (or one per date for multi-temporal models).",
                             self.INPUT)
        inputs = [layer.source() for layer in layers]
        overlap = parameters.get(self.TILE_OVERLAP)
        if overlap in (None, ""):
            overlap = None
        else:
            try:
                overlap = float(overlap)
            except (TypeError, ValueError):
                raise InputError(f"'{overlap}' is not a number; expected pixels or a fraction below 1.",
                                 self.TILE_OVERLAP) from None
        out_cls = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        out_prob = self.parameterAsOutputLayer(parameters, self.OUTPUT_PROBABILITIES, context) or None
        out_conf = self.parameterAsOutputLayer(parameters, self.OUTPUT_CONFIDENCE, context) or None
        result = segmentation.run_segmentation(
            inputs,
            self.parameterAsString(parameters, self.MODEL, context) or self.DEFAULT_MODEL,
            {"classes": out_cls, "probabilities": out_prob, "confidence": out_conf},
            bands=self.parameterAsString(parameters, self.BANDS, context) or None,
            overlap=overlap,
            batch_size=self.parameterAsInt(parameters, self.BATCH_SIZE, context) or 4,
            device=enum_value(self, parameters, self.DEVICE, context, DEVICES),
            monitor=monitor,
            config=self.runtime_config,
        )
        style_output(context, out_cls, f"Classes ({result.model_id})")
        if out_conf:
            style_output(context, out_conf, f"Confidence ({result.model_id})")
        import json

        return {
            self.OUTPUT: out_cls,
            self.OUTPUT_PROBABILITIES: out_prob,
            self.OUTPUT_CONFIDENCE: out_conf,
            self.VALID_PIXELS: result.valid_pixels,
            self.CLASS_COUNTS: json.dumps(result.class_counts),
            self.PROVIDER: result.provider,
        }
