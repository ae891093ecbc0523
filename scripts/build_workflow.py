"""Build the graphical-modeler workflow shipped in resources/workflows/ (run by hand after changing it).

"EMIT radiance → TOA reflectance → SpecTf cloud mask (+ attention)": inputs (in this order) radiance,
OBS, solar spectrum (optional; default the model's own, as spectraltf:cloudmask), SpecTf model id and
device; outputs the cloud mask and, optionally, the TOA reflectance, cloud probability, band attention
and most-attended wavelength. The provider lists every ``resources/workflows/*.model3`` in the Toolbox
(group Workflows, id ``spectraltf:<file name>``). The model is written with QGIS's own
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
    QgsProcessingParameterFile,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)
from qgis.PyQt.QtCore import QPointF

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(REPO, "resources", "workflows", "emit_radiance_to_cloud_mask.model3")

Source = QgsProcessingModelChildParameterSource


#: Workflow inputs in the order the dialog shows them (QGIS keeps them in this order: parameterOrder).
INPUT_ORDER = ("radiance", "observation", "solar_spectrum", "model", "device")


def add_input(model, definition, x, y):
    model.addModelParameter(definition, QgsProcessingModelParameter(definition.name()))
    model.parameterComponent(definition.name()).setPosition(QPointF(x, y))


def child(model, alg_id, child_id, description, x, y, sources, outputs):
    """A child step; every parameter it does not get from ``sources`` is set to its own default, so the
    step is valid in the Model Designer (no 'Parameter X is mandatory') and runs headless."""
    alg = QgsApplication.processingRegistry().algorithmById(alg_id)
    if alg is None:
        raise SystemExit(f"build_workflow: {alg_id} is not registered")
    c = QgsProcessingModelChildAlgorithm(alg_id)
    c.setChildId(child_id)
    c.setDescription(description)
    c.setPosition(QPointF(x, y))
    for definition in alg.parameterDefinitions():
        name = definition.name()
        if name in sources:
            c.addParameterSources(name, [sources[name]])
        elif not definition.isDestination() and definition.defaultValue() is not None:
            c.addParameterSources(name, [Source.fromStaticValue(definition.defaultValue())])
    unknown = set(sources) - {d.name() for d in alg.parameterDefinitions()}
    if unknown:
        raise SystemExit(f"build_workflow: {alg_id} has no parameter {sorted(unknown)}")
    outs = {}
    for name, (label, description, mandatory) in outputs.items():
        out = QgsProcessingModelOutput(label, description)
        out.setChildId(child_id)
        out.setChildOutputName(name)
        out.setMandatory(mandatory)
        out.setPosition(QPointF(x + 220, y + 40 * (len(outs) + 1)))
        outs[label] = out
    c.setModelOutputs(outs)
    model.addChildAlgorithm(c)
    return c


def build():
    model = QgsProcessingModelAlgorithm("EMIT radiance to SpecTf cloud mask", "Workflows")
    model.setHelpContent({
        "ALG_DESC": "EMIT (or AVIRIS-NG) at-sensor radiance + OBS → TOA reflectance → SpecTf cloud mask and "
                    "cloud probability, plus the SpecTf band attention and the most-attended wavelength per "
                    "pixel. Radiance is converted with the model's own solar spectrum (as spectraltf:cloudmask "
                    "does) unless a solar spectrum file is given, so the mask equals a direct cloud-mask run.",
        "ALG_CREATOR": "Spectral Transformers",
        "radiance": "At-sensor radiance with band wavelengths (EMIT L1B RDN, AVIRIS-NG), µW cm⁻² nm⁻¹ sr⁻¹.",
        "observation": "Observation geometry (EMIT/AVIRIS-NG OBS, 11 bands: solar zenith, Earth–Sun distance).",
        "solar_spectrum": "Solar irradiance spectrum file; empty: the model's own (SpecTf: its irr.npy).",
        "model": "SpecTf model id (see List models) or the path of a SpecTf .onnx file.",
        "device": "auto (CUDA when usable), cpu or cuda.",
    })
    add_input(model, QgsProcessingParameterRasterLayer("radiance", "Radiance (µW cm⁻² nm⁻¹ sr⁻¹)"), 80, 60)
    add_input(model, QgsProcessingParameterRasterLayer("observation", "Observation geometry (OBS, 11 bands)"), 80, 140)
    add_input(model, QgsProcessingParameterFile("solar_spectrum", "Solar spectrum (empty: the model's own)",
                                                optional=True), 80, 220)
    add_input(model, QgsProcessingParameterString("model", "SpecTf model (registry id or .onnx path)",
                                                  defaultValue="spectf-cloud-v0.1.0"), 80, 300)
    device = QgsProcessingParameterEnum("device", "Device", options=["auto", "cpu", "cuda"], defaultValue="auto")
    device.setUsesStaticStrings(True)
    add_input(model, device, 80, 380)

    child(model, "spectraltf:toareflectance", "toa", "Radiance to TOA reflectance", 360, 100, {
        "INPUT": Source.fromModelParameter("radiance"),
        "OBSERVATION": Source.fromModelParameter("observation"),
        # the given spectrum, else the model's own (the TOA step resolves a model id to its spectrum)
        "IRRADIANCE": Source.fromExpression("coalesce(nullif(@solar_spectrum, ''), @model)"),
    }, {"OUTPUT": ("toa_reflectance", "TOA reflectance", False)})
    child(model, "spectraltf:cloudmask", "cloudmask", "SpecTf cloud mask", 640, 60, {
        "INPUT": Source.fromChildOutput("toa", "OUTPUT"),
        "INPUT_TYPE": Source.fromStaticValue("reflectance"),
        "MODEL": Source.fromModelParameter("model"),
        "DEVICE": Source.fromModelParameter("device"),
    }, {"OUTPUT": ("cloud_mask", "Cloud mask", True),
        "OUTPUT_PROBABILITY": ("cloud_probability", "Cloud probability", False)})
    child(model, "spectraltf:attentionmaps", "attention", "SpecTf band attention", 640, 260, {
        "INPUT": Source.fromChildOutput("toa", "OUTPUT"),
        "INPUT_TYPE": Source.fromStaticValue("reflectance"),
        "MODEL": Source.fromModelParameter("model"),
        "DEVICE": Source.fromModelParameter("device"),
    }, {"OUTPUT": ("band_attention", "Band attention", False),
        "OUTPUT_TOP_WAVELENGTH": ("top_wavelength", "Most-attended wavelength (nm)", False)})
    return model


def validate(model):
    """Issues QGIS's Model Designer would show (empty when the workflow is valid)."""
    result = model.validate()
    ok, issues = result if isinstance(result, tuple) else (result, [])
    return [] if ok else list(issues) or ["invalid"]


def main(out=DEFAULT_OUT):
    app = QgsApplication([], False)
    app.initQgis()
    sys.path.insert(0, os.path.join(REPO, "build", "plugins"))
    sys.path.append(os.path.join(QgsApplication.pkgDataPath(), "python", "plugins"))  # Processing plugin
    from processing.core.Processing import Processing

    Processing.initialize()
    from spectral_transformers.processing_provider.provider import SpectralTransformersProvider

    provider = SpectralTransformersProvider()  # keep a reference: the registry does not own Python providers
    QgsApplication.processingRegistry().addProvider(provider)
    model = build()
    model.updateDestinationParameters()
    model.setParameterOrder(list(INPUT_ORDER))
    issues = validate(model)
    if issues:
        raise SystemExit("build_workflow: the model does not validate: " + "; ".join(issues))
    os.makedirs(os.path.dirname(out), exist_ok=True)
    if not model.toFile(out):
        raise SystemExit(f"could not write {out}")
    print(f"wrote {out}; outputs: {[d.name() for d in model.destinationParameterDefinitions()]}")


if __name__ == "__main__":
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    main(*sys.argv[1:])
