"""The runtime names parameters by its own argument names; the parameter table maps them.

Errors and log messages of the QGIS-free runtime name a parameter by its runtime argument
(``solar_zenith``) and refer to other parameters with a ``«arg»`` marker; the table
(:mod:`runtime.parameters`) renders both as Processing names (``SOLAR_ZENITH``) for the algorithms
and the batch runner. Messages through ``qgis_process`` are asserted by the battery tests
(test_bad_input_battery, test_file_safety, test_toa, ...), unchanged by this split."""
import ast
import re

import pytest

from support import REPO

from spectral_transformers.runtime import tasks
from spectral_transformers.runtime.errors import InputError, ModelError, ref, render
from spectral_transformers.runtime.monitor import RecordingMonitor, RenamingMonitor
from spectral_transformers.runtime.parameters import TASKS
from spectral_transformers.runtime.pipeline import OutputSet
from spectral_transformers.runtime.pipeline.writer import OutputError

#: Processing names that are also ordinary words of the messages (the acronym of a geometry lookup table).
NOT_NAMES = {"GLT"}

#: Literals that may stay, each with its reason. The test fails when one is no longer there, so the
#: list only shrinks.
ALLOWED = {
    # GDAL metadata keys written into the L-TAE outputs, not parameters
    ("runtime/models/ltae.py", "MODEL"), ("runtime/models/ltae.py", "DATES"),
}


def processing_names():
    return {p.name for t in TASKS.values() for p in t.params + t.outputs} - NOT_NAMES


def string_literals(tree):
    """Every str constant of ``tree`` (f-string parts included) except docstrings."""
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docstrings.add(id(body[0].value))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield node


def test_no_processing_parameter_name_in_the_runtime():
    names = processing_names()
    assert {"INPUT", "OUTPUT", "SOLAR_ZENITH", "OUTPUT_PROBABILITY", "MODEL"} <= names
    word = re.compile(r"(?<![A-Za-z0-9_])(" + "|".join(sorted(names, key=len, reverse=True)) + r")(?![A-Za-z0-9_])")
    files = sorted(p for p in (REPO / "runtime").rglob("*.py") if p.name != "parameters.py")
    assert len(files) >= 30
    found, hits = set(), []
    for path in files:
        rel = path.relative_to(REPO).as_posix()
        for node in string_literals(ast.parse(path.read_text(encoding="utf-8"))):
            for m in word.finditer(node.value):
                found.add((rel, m.group(1)))
                if (rel, m.group(1)) not in ALLOWED:
                    hits.append(f"{rel}:{node.lineno}: {m.group(1)} in {node.value[:70]!r}")
    assert not hits, "Processing names in runtime/ (raise by argument, refer with «arg»):\n" + "\n".join(hits)
    assert not ALLOWED - found, f"allowed literals no longer present (remove them from ALLOWED): {ALLOWED - found}"


def test_no_processing_name_map_in_the_runtime():
    """No dict in runtime/ maps a name to its Processing spelling (ToaConverter's map is gone)."""
    for path in sorted((REPO / "runtime").rglob("*.py")):
        if path.name == "parameters.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Dict):
                values = [v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str)]
                upper = [v for v in values if v in processing_names()]
                assert len(upper) < 2, f"{path.relative_to(REPO)}:{node.lineno}: a Processing name map {upper}"


def test_marker_rendering():
    assert ref("solar_zenith") == "«solar_zenith»"
    assert ref("IRRADIANCE") == "IRRADIANCE"  # already a Processing name: kept as it is
    assert render("give «solar_zenith» or an «observation» raster") == "give solar_zenith or an observation raster"
    assert render("«solar_zenith»", {"solar_zenith": "SOLAR_ZENITH"}) == "SOLAR_ZENITH"
    # braces (paths, JSON) and words are left alone: only markers are names
    text = 'card {"id": "x"} of /data/{input}/a.onnx: input «input»'
    assert render(text, {"input": "INPUT"}) == 'card {"id": "x"} of /data/{input}/a.onnx: input INPUT'


def test_error_names_argument_then_parameter():
    solar_zenith = 95.0  # a local of that name: the marker is not an f-string field
    err = InputError(f"{solar_zenith:g}° is out of range; give {ref('solar_zenith')} (degrees) or an «observation» "
                     "raster.", "solar_zenith")
    assert str(err) == "solar_zenith: 95° is out of range; give solar_zenith (degrees) or an observation raster."
    assert err.parameter == "solar_zenith"
    renamed = TASKS["toareflectance"].rename_error(err)
    assert str(renamed) == "SOLAR_ZENITH: 95° is out of range; give SOLAR_ZENITH (degrees) or an OBSERVATION raster."
    assert renamed.parameter == "SOLAR_ZENITH" and isinstance(renamed, InputError)
    assert TASKS["toareflectance"].rename_error(renamed) is renamed  # renaming twice: no change
    assert str(err).startswith("solar_zenith:")  # the original is untouched


def test_same_argument_different_names_per_task():
    err = ModelError("the card lists no «classes»; leave «classes» empty.", "classes")
    assert str(TASKS["segment"].rename_error(err)) == "OUTPUT: the card lists no OUTPUT; leave OUTPUT empty."
    assert str(TASKS["attentionmaps"].rename_error(err)) == \
        "OUTPUT_CLASSES: the card lists no OUTPUT_CLASSES; leave OUTPUT_CLASSES empty."
    # an argument the task lacks (shared TOA code mentions radiance units in a cloud-mask run): the table's name
    err = InputError("too bright: set «scale», or wrong «radiance_units».", "input")
    assert str(TASKS["cloudmask"].rename_error(err)) == "INPUT: too bright: set SCALE, or wrong RADIANCE_UNITS."


def test_duplicate_outputs_name_both_parameters(tmp_path):
    outs = OutputSet()
    outs.add_output("mask", str(tmp_path / "m.tif"))
    with pytest.raises(OutputError) as info:
        outs.add_output("probability", str(tmp_path / "m.tif"))
    err = info.value
    assert str(err).startswith("probability: ") and "the same file as mask (" in str(err)
    renamed = TASKS["cloudmask"].rename_error(err)
    assert str(renamed).startswith("OUTPUT_PROBABILITY: ") and "the same file as OUTPUT (" in str(renamed)
    assert "mask" not in str(renamed) and isinstance(renamed, OutputError)


def test_task_run_renames_errors_and_results(tmp_path):
    """The same entry point: argument names from the runtime API, Processing names through the table."""
    out = str(tmp_path / "m.tif")
    kwargs = dict(input=str(tmp_path / "in.tif"), mask=out, probability=out, model="spectf-cloud-v0.1.0")
    with pytest.raises(OutputError, match=r"^probability: .* the same file as mask "):
        tasks.cloudmask(None, None, **kwargs)
    with pytest.raises(OutputError, match=r"^OUTPUT_PROBABILITY: .* the same file as OUTPUT "):
        TASKS["cloudmask"].run(None, None, **kwargs)
    results = TASKS["models"].run(None, None, output_json=None)
    assert set(results) == {"MODELS", "COUNT", "OUTPUT_JSON"}
    assert set(tasks.models(None, RecordingMonitor(), output_json=None)) == {"models", "count", "output_json"}


def test_log_messages_are_renamed_like_errors():
    plain, seen = RecordingMonitor(), RecordingMonitor()
    text = "«dates_text» applies to temporal (L-TAE) models only; ignored."
    plain.warn(text)
    RenamingMonitor(seen, TASKS["attentionmaps"].message_names()).warn(text)
    assert plain.warnings == ["dates_text applies to temporal (L-TAE) models only; ignored."]
    assert seen.warnings == ["DATES applies to temporal (L-TAE) models only; ignored."]


def test_unusable_model_entry_is_renamed_once(tmp_path):
    """A registry entry keeps its error's markers: resolving it names the parameter once, not twice."""
    from spectral_transformers.runtime.models import registry
    from spectral_transformers.runtime.errors import ModelError

    bad = tmp_path / "junk.onnx"
    bad.write_bytes(b"not a protobuf at all")
    with pytest.raises(ModelError) as info:
        registry.resolve(str(bad))
    assert str(info.value).startswith("model: ") and "model: model:" not in str(info.value)
    renamed = str(TASKS["segment"].rename_error(info.value))
    assert renamed.startswith("MODEL: ") and "MODEL: model" not in renamed and "junk.onnx" in renamed
