"""``spectraltf:models`` — list every registered model with its card (thin adapter over
:func:`..runtime.registry.list_models`)."""
import json

from qgis.core import (
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterFileDestination,
)

from ..runtime import registry
from ..runtime.model_card import card_summary
from ..runtime.pipeline.outputs import write_text_atomically
from .base import SpectralAlgorithm


class ListModelsAlgorithm(SpectralAlgorithm):
    NAME = "models"
    DISPLAY = "List models"
    GROUP = "models"

    OUTPUT_JSON = "OUTPUT_JSON"
    MODELS = "MODELS"
    COUNT = "COUNT"

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterFileDestination(
            self.OUTPUT_JSON, "Model list (JSON file)", "JSON files (*.json)", optional=True,
            createByDefault=False))
        self.addOutput(QgsProcessingOutputString(self.MODELS, "Models and their cards (JSON)"))
        self.addOutput(QgsProcessingOutputNumber(self.COUNT, "Number of usable models"))

    def shortHelpString(self):  # noqa: N802
        return (
            "<p>Lists every model the plugin can use, with its model card (task, bands, tile size, "
            "classes, licence, source):</p><ul>"
            "<li>models in the plugin's <i>models</i> folder (built by <code>make setup</code>);</li>"
            "<li>models in your model folder (Processing ▸ Options ▸ Providers ▸ Spectral Transformers, "
            "or the SPECTRALTF_MODEL_DIR environment variable);</li>"
            "<li>models shipped by installed Python packages (ukis-csmask).</li></ul>"
            "<p>Use a model's <b>id</b> as the MODEL parameter of the other algorithms. Models whose card "
            "is missing or invalid are listed with the reason.</p>"
            "<p><b>Models</b> output: JSON list of {id, path, origin, error, card}. <b>Model list</b> "
            "(optional): the same JSON written to a file.</p>")

    def execute(self, parameters, context, monitor):
        entries = registry.list_models(config=self.runtime_config)
        for e in entries:
            if e.error:
                monitor.warn(f"{e.id} ({e.origin}, {e.path}): unusable: {e.error}")
            else:
                monitor.info(f"{card_summary(e.card)}\n  origin: {e.origin}\n  path: {e.path}\n"
                             f"  card: {json.dumps(e.card, sort_keys=True)}")
        if not entries:
            monitor.info("No models found. Run `make setup` to build the bundled models, or set a model folder.")
        text = json.dumps([e.as_dict() for e in entries], indent=1, sort_keys=True)
        path = self.parameterAsFileOutput(parameters, self.OUTPUT_JSON, context) or None
        if path:
            write_text_atomically(path, text, self.OUTPUT_JSON)
        return {self.MODELS: text, self.COUNT: sum(1 for e in entries if not e.error), self.OUTPUT_JSON: path}
