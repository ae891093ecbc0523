"""Build the graphical-modeler workflow shipped in resources/workflows/ (run by hand after changing it).

"EMIT radiance → TOA reflectance → SpecTf cloud mask (+ attention)": model inputs are the radiance
raster, the OBS raster, the SpecTf model id and the device; outputs are the cloud mask, the cloud
probability, the band attention and the most-attended wavelength. The model is written with QGIS's own
API (QgsProcessingModelAlgorithm.toFile), so it opens in the Graphical Modeler.

    .venv/bin/python scripts/build_workflow.py [OUTPUT.model3]
"""
import os
import sys

from qgis.core import (
    QgsApplication,
    QgsProcessingModelAlgorithm,
    QgsProcessingModelChildAlgorithm,
    QgsProcessingModelChildParameterSource,
    QgsProcessingModelOutput,
    QgsProcessingModelParameter,
    QgsProcessingParameterEnum,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)
from qgis.PyQt.QtCore import QPointF

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(REPO, "resources", "workflows", "emit_radiance_to_cloud_mask.model3")

Source = QgsProcessingModelChildParameterSource


def add_input(model, definition, x, y):
    model.addModelParameter(definition, QgsProcessingModelParameter(definition.name()))
    model.parameterComponent(definition.name()).setPosition(QPointF(x, y))


def child(model, alg_id, child_id, description, x, y, sources, outputs):
    c = QgsProcessingModelChildAlgorithm(alg_id)
    c.setChildId(child_id)
    c.setDescription(description)
    c.setPosition(QPointF(x, y))
    for name, source in sources.items():
        c.addParameterSources(name, [source])
    outs = {}
    for name, (label, description) in outputs.items():
        out = QgsProcessingModelOutput(label, description)
        out.setChildId(child_id)
        out.setChildOutputName(name)
        out.setPosition(QPointF(x + 220, y + 40 * (len(outs) + 1)))
        outs[label] = out
    c.setModelOutputs(outs)
    model.addChildAlgorithm(c)
    return c


def build():
    model = QgsProcessingModelAlgorithm("EMIT radiance to SpecTf cloud mask", "Spectral Transformers workflows")
    model.setHelpContent({
        "ALG_DESC": "EMIT (or AVIRIS-NG) at-sensor radiance + OBS → TOA reflectance → SpecTf cloud mask and "
                    "cloud probability, plus the SpecTf band attention and the most-attended wavelength per "
                    "pixel. Uses the algorithms of the Spectral Transformers plugin.",
        "ALG_CREATOR": "Spectral Transformers",
    })
    add_input(model, QgsProcessingParameterRasterLayer("radiance", "Radiance (µW cm⁻² nm⁻¹ sr⁻¹)"), 80, 60)
    add_input(model, QgsProcessingParameterRasterLayer("observation", "Observation geometry (OBS, 11 bands)"), 80, 140)
    add_input(model, QgsProcessingParameterString("model", "SpecTf model (registry id or .onnx path)",
                                                  defaultValue="spectf-cloud-v0.1.0"), 80, 220)
    device = QgsProcessingParameterEnum("device", "Device", options=["auto", "cpu", "cuda"], defaultValue="auto")
    device.setUsesStaticStrings(True)
    add_input(model, device, 80, 300)

    child(model, "spectraltf:toareflectance", "toa", "Radiance to TOA reflectance", 360, 100, {
        "INPUT": Source.fromModelParameter("radiance"),
        "OBSERVATION": Source.fromModelParameter("observation"),
    }, {})
    child(model, "spectraltf:cloudmask", "cloudmask", "SpecTf cloud mask", 640, 60, {
        "INPUT": Source.fromChildOutput("toa", "OUTPUT"),
        "INPUT_TYPE": Source.fromStaticValue("reflectance"),
        "MODEL": Source.fromModelParameter("model"),
        "DEVICE": Source.fromModelParameter("device"),
    }, {"OUTPUT": ("cloud_mask", "Cloud mask"),
        "OUTPUT_PROBABILITY": ("cloud_probability", "Cloud probability")})
    child(model, "spectraltf:attentionmaps", "attention", "SpecTf band attention", 640, 260, {
        "INPUT": Source.fromChildOutput("toa", "OUTPUT"),
        "INPUT_TYPE": Source.fromStaticValue("reflectance"),
        "MODEL": Source.fromModelParameter("model"),
        "DEVICE": Source.fromModelParameter("device"),
    }, {"OUTPUT": ("band_attention", "Band attention"),
        "OUTPUT_TOP_WAVELENGTH": ("top_wavelength", "Most-attended wavelength (nm)")})
    return model


def main(out=DEFAULT_OUT):
    app = QgsApplication([], False)
    app.initQgis()
    sys.path.insert(0, os.path.join(REPO, "build", "plugins"))
    sys.path.append(os.path.join(QgsApplication.pkgDataPath(), "python", "plugins"))  # Processing plugin
    from processing.core.Processing import Processing

    Processing.initialize()
    from spectral_transformers.processing_provider.provider import SpectralTransformersProvider

    QgsApplication.processingRegistry().addProvider(SpectralTransformersProvider())
    model = build()
    model.updateDestinationParameters()
    os.makedirs(os.path.dirname(out), exist_ok=True)
    if not model.toFile(out):
        raise SystemExit(f"could not write {out}")
    print(f"wrote {out}; outputs: {[d.name() for d in model.destinationParameterDefinitions()]}")


if __name__ == "__main__":
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    main(*sys.argv[1:])
