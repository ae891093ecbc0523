"""The parameter table (runtime/parameters.py): one declaration per parameter, parsed in one place.

The first tests need neither QGIS nor GDAL; the last ones check that the Processing algorithms are
generated from the table (definitions, help from labels, errors named by parameter)."""
import re

import pytest

from spectral_transformers.runtime import parameters as table
from spectral_transformers.runtime.physics import toa
from spectral_transformers.runtime.errors import InputError, ModelError


def _parse(task, **raw):
    return table.parse_values(table.TASKS[task], raw)


def test_whole_numbers_are_parsed_not_rounded():
    with pytest.raises(InputError, match=r"^BATCH_SIZE: 'abc' is not a whole number"):
        _parse("segment", INPUT="a.tif", OUTPUT="o.tif", BATCH_SIZE="abc")
    with pytest.raises(InputError, match=r"^BATCH_SIZE: '1.5' is not a whole number"):
        _parse("cloudmask", INPUT="a.tif", OUTPUT="o.tif", BATCH_SIZE="1.5")
    with pytest.raises(InputError, match=r"^BATCH_SIZE: 0 is out of range; expected a value of at least 1"):
        _parse("cloudmask", INPUT="a.tif", OUTPUT="o.tif", BATCH_SIZE=0)
    assert _parse("cloudmask", INPUT="a.tif", OUTPUT="o.tif", BATCH_SIZE="64")["batch_size"] == 64
    assert _parse("cloudmask", INPUT="a.tif", OUTPUT="o.tif", BATCH_SIZE=" 8.0 ")["batch_size"] == 8
    assert _parse("cloudmask", INPUT="a.tif", OUTPUT="o.tif")["batch_size"] is None  # optional: the card's
    assert _parse("segment", INPUT="a.tif", OUTPUT="o.tif")["batch_size"] == 4  # declared default


def test_numbers_bounds_and_choices():
    kw = _parse("segment", INPUT="a.tif", OUTPUT="o.tif", TILE_OVERLAP="0.25")
    assert kw["overlap"] == 0.25 and kw["classes"] == "o.tif"  # fractions below 1 as documented
    with pytest.raises(InputError, match=r"^TILE_OVERLAP: -4 is out of range"):
        _parse("segment", INPUT="a.tif", OUTPUT="o.tif", TILE_OVERLAP="-4")
    with pytest.raises(InputError, match=r"^THRESHOLD: 'x' is not a number"):
        _parse("cloudmask", INPUT="a.tif", OUTPUT="o.tif", THRESHOLD="x")
    with pytest.raises(InputError, match=r"^DEVICE: 'gpu' is not a valid choice; expected one of auto, cpu, cuda"):
        _parse("cloudmask", INPUT="a.tif", OUTPUT="o.tif", DEVICE="gpu")
    assert _parse("cloudmask", INPUT="a.tif", OUTPUT="o.tif", DEVICE="CPU")["device"] == "cpu"
    assert _parse("cloudmask", INPUT="a.tif", OUTPUT="o.tif", DEVICE=1)["device"] == "cpu"  # index (old models)
    assert _parse("toareflectance", INPUT="a", OUTPUT="o", RADIANCE_UNITS="w_m2_um_sr")["radiance_units"] == \
        "W_m2_um_sr"
    with pytest.raises(InputError, match=r"^FOO: unknown parameter"):
        _parse("toareflectance", INPUT="a", OUTPUT="o", FOO=1)
    with pytest.raises(InputError, match=r"^INPUT: no value given"):
        _parse("toareflectance", OUTPUT="o")


def test_bounds_are_agreed_in_one_place():
    for task in table.TASKS.values():
        for p in task.params:
            if p.name == "SOLAR_ZENITH":
                assert (p.minimum, p.maximum) == toa.SOLAR_ZENITH_RANGE_DEG == (0.0, 90.0), task.name
            if p.name == "EARTH_SUN_DISTANCE":
                assert (p.minimum, p.maximum) == toa.EARTH_SUN_DISTANCE_RANGE_AU, task.name
    with pytest.raises(InputError, match=r"^SOLAR_ZENITH: 95 is out of range; expected a value from 0 to 90"):
        _parse("cloudmask", INPUT="a", OUTPUT="o", SOLAR_ZENITH="95")
    with pytest.raises(InputError, match=r"^EARTH_SUN_DISTANCE: 1.08 is out of range; expected a value from "
                                         r"0.95 to 1.05"):
        _parse("toareflectance", INPUT="a", OUTPUT="o", EARTH_SUN_DISTANCE="1.08")


def test_old_list_inputs_split_into_input_and_dates():
    kw = _parse("segment", INPUT=["a.tif"], OUTPUT="o.tif")
    assert kw["input"] == "a.tif" and kw["series"] == []
    kw = _parse("attentionmaps", INPUT=["d1.tif", "d2.tif", "d3.tif"], OUTPUT="o.tif")
    assert kw["input"] == "d1.tif" and kw["series"] == ["d2.tif", "d3.tif"]
    with pytest.raises(InputError, match=r"^INPUT: 2 rasters given; expected one"):
        _parse("toareflectance", INPUT=["a", "b"], OUTPUT="o")


def test_runtime_errors_are_renamed_to_parameters():
    seg = table.TASKS["segment"]
    err = seg.rename_error(InputError("must be smaller than the tile.", "overlap"))
    assert str(err) == "TILE_OVERLAP: must be smaller than the tile." and isinstance(err, InputError)
    err = table.TASKS["attentionmaps"].rename_error(ModelError("no attention output.", "model"))
    assert str(err) == "MODEL: no attention output." and isinstance(err, ModelError)
    same = InputError("x", "INPUT")
    assert seg.rename_error(same) is same


def test_help_names_labels_never_keys():
    for task in table.TASKS.values():
        html = task.help_html()
        assert "{" not in re.sub(r"\{id, path, origin, error, card\}", "", html), task.name
        text = re.sub(r"<[^>]+>", " ", html)
        for p in task.params:
            assert p.label in text, (task.name, p.name)
            if p.name == "GLT":  # also EMIT's own abbreviation, used in the prose
                continue
            assert not re.search(rf"(?<![\w.]){p.name}(?![\w.])", text), (task.name, p.name)


def test_table_is_complete():
    for task in table.TASKS.values():
        names = [p.name for p in task.params + task.outputs]
        assert len(names) == len(set(names)), task.name
        keys = [p.key for p in task.params]
        assert len(keys) == len(set(keys)), task.name
        for p in task.params:
            assert p.kind in table.INPUT_KINDS + table.DESTINATION_KINDS, (task.name, p.name)
            assert p.help and p.label, (task.name, p.name)
        assert callable(task.run)


# -- the Processing algorithms are generated from the table -------------------------------------------
def test_algorithms_are_built_from_the_table(processing_provider):
    from qgis.core import QgsApplication

    from spectral_transformers.qgis_compat import PARAMETER_FLAG_ADVANCED, PARAMETER_FLAG_OPTIONAL

    for task in table.TASKS.values():
        alg = QgsApplication.processingRegistry().createAlgorithmById(f"spectraltf:{task.name}")
        assert [d.name() for d in alg.parameterDefinitions()] == [p.name for p in task.params]
        assert alg.shortHelpString() == task.help_html()
        for p in task.params:
            d = alg.parameterDefinition(p.name)
            assert d.description() == p.label
            assert bool(d.flags() & PARAMETER_FLAG_ADVANCED) == p.advanced, (task.name, p.name)
            assert bool(d.flags() & PARAMETER_FLAG_OPTIONAL) == p.optional, (task.name, p.name)
        assert {o.name() for o in alg.outputDefinitions()} >= {p.name for p in task.outputs}
    seg = QgsApplication.processingRegistry().createAlgorithmById("spectraltf:segment")
    assert seg.parameterDefinition("INPUT").type() == "raster"  # one raster where one is expected
    assert seg.parameterDefinition("INPUT_DATES").type() == "multilayer"


def test_model_is_a_drop_down_of_the_tasks_models(processing_provider):
    from qgis.core import QgsApplication

    from support import built_model

    built_model("spectf-cloud-v0.1.0")
    cm = QgsApplication.processingRegistry().createAlgorithmById("spectraltf:cloudmask")
    d = cm.parameterDefinition("MODEL")
    assert d.type() == "string"  # scripts, batch runs and the modeler pass any id or path
    options = d.metadata()["widget_wrapper"]["choices"]
    assert options[0] == d.defaultValue() == "spectf-cloud-v0.1.0"
    seg = QgsApplication.processingRegistry().createAlgorithmById("spectraltf:segment")
    seg_options = seg.parameterDefinition("MODEL").metadata()["widget_wrapper"]["choices"]
    assert "spectf-cloud-v0.1.0" not in seg_options  # only models of the algorithm's task


def test_whole_number_error_through_qgis_process(tmp_path):
    from support import qgis_process, shared

    rc, _, out, err = qgis_process("run", "spectraltf:cloudmask", "--",
                                   f"INPUT={shared('emit', 'emit_l2a_rfl_10x10.img')}", "BATCH_SIZE=abc",
                                   f"OUTPUT={tmp_path / 'm.tif'}")
    assert rc != 0
    assert "BATCH_SIZE: 'abc' is not a whole number" in out + err
    assert "Traceback" not in out + err
    assert not list(tmp_path.iterdir())
