"""Model cards: reading from ONNX metadata / sidecars, schema validation, fuzzing."""
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import seg_models
from spectral_transformers.runtime.models import model_card
from spectral_transformers.runtime.errors import ModelError


def test_embedded_card_is_read_without_a_session(tmp_path):
    card = seg_models.seg_card("embedded-model")
    path = seg_models.conv_model(tmp_path / "m.onnx", card=card, metadata={"other": "x"})
    meta = model_card.read_onnx_metadata(path)
    assert json.loads(meta["model_card"])["id"] == "embedded-model" and meta["other"] == "x"
    out = model_card.load_card(path)
    assert out["id"] == "embedded-model"
    # normalised defaults
    assert out["input"]["frames"] == 1 and out["input"]["layout"] == "NCHW"
    assert out["input"]["mean"] == [0.0, 0.0, 0.0] and out["input"]["std"] == [1.0, 1.0, 1.0]
    assert out["input"]["scale"] == [1.0] * 3 and out["input"]["nodata"] == "mask"
    assert out["output"]["classes"][1]["color"] == [40, 215, 90, 255]
    assert out["tiling"] == {"overlap": 8.0, "crop": 0, "scheme": "edge"}


def test_sidecar_wins_over_embedded(tmp_path):
    path = seg_models.conv_model(tmp_path / "m.onnx", card=seg_models.seg_card("embedded"))
    (tmp_path / "m.json").write_text(json.dumps(seg_models.seg_card("sidecar")))
    assert model_card.load_card(path)["id"] == "sidecar"


def test_no_card_is_a_clear_error(tmp_path):
    path = seg_models.add_model(tmp_path / "add.onnx")
    with pytest.raises(ModelError, match=r"^model: .*has no model card.*sidecar file add\.json"):
        model_card.load_card(path)


@pytest.mark.parametrize("cut", [10, 100, -5])
def test_truncated_onnx(tmp_path, cut):
    path = seg_models.conv_model(tmp_path / "m.onnx", card=seg_models.seg_card())
    data = open(path, "rb").read()
    (tmp_path / "t.onnx").write_bytes(data[:cut])
    with pytest.raises(ModelError, match="model: .*(truncated|not an ONNX)"):
        model_card.load_card(tmp_path / "t.onnx")


def test_not_onnx(tmp_path):
    (tmp_path / "x.onnx").write_text("hello, I am not a model\n")
    with pytest.raises(ModelError, match="^model: "):
        model_card.load_card(tmp_path / "x.onnx")


def test_invalid_json_sidecar(tmp_path):
    path = seg_models.conv_model(tmp_path / "m.onnx")
    (tmp_path / "m.json").write_text('{"id": "x", "task": ')
    with pytest.raises(ModelError, match="model: the model card in .*m.json is not valid JSON"):
        model_card.load_card(path)
    (tmp_path / "m.json").write_text('{"id": "x", "task": "segmentation", "n": NaN}')
    with pytest.raises(ModelError, match="not valid JSON"):
        model_card.load_card(path)


@pytest.mark.parametrize("mutate, message", [
    (lambda c: c.pop("task"), "missing the key 'task'"),
    (lambda c: c.update(task="detection"), "card.task is 'detection'"),
    (lambda c: c.update(id="bad id!"), "card.id must be"),
    (lambda c: c["input"].pop("tile_size"), "tile_size"),
    (lambda c: c["input"].update(tile_size="big"), "card.input.tile_size must be"),
    (lambda c: c["input"].update(mean=[0.1, 0.2]), "has 2 values; expected 3"),
    (lambda c: c["input"].update(std=[1, 0, 1]), "must be > 0"),
    (lambda c: c["input"].update(frames=2), "needs 'stacking'"),
    (lambda c: c["input"].update(layout="NHWC"), "expected one of NCHW"),
    (lambda c: c["output"].update(kind="argmax"), "card.output.kind"),
    (lambda c: c["output"].update(classes=[]), "card.output.classes must be a non-empty list"),
    (lambda c: c["output"]["classes"][0].update(value=255), "255 is nodata"),
    (lambda c: c["output"]["classes"][0].update(color="red"), "color must be"),
    (lambda c: c["output"]["classes"][1].update(value=0), "duplicate values"),
    (lambda c: c.update(name=5), "card.name must be a string"),
    (lambda c: c.pop("output"), "missing the key 'output'"),
])
def test_invalid_segmentation_cards(mutate, message):
    card = seg_models.seg_card()
    mutate(card)
    with pytest.raises(ModelError) as err:
        model_card.validate_card(card)
    assert str(err.value).startswith("model: ")
    assert message in str(err.value)


def test_other_tasks_validate_common_keys():
    spectf = {"id": "spectf-cloud-v0.1.0", "task": "spectral-cloud-mask", "threshold": 0.51,
              "source": {"repository": "https://github.com/emit-sds/SpecTf"}, "input": "toa_reflectance",
              "wavelengths_nm": [410.6, 418.0], "drop_ranges_nm": [[0, 405], [2455, 9999]]}
    assert model_card.validate_card(spectf)["threshold"] == 0.51
    assert model_card.validate_card({"id": "ltae", "task": "temporal-attention"})["name"] == "ltae"
    with pytest.raises(ModelError, match="card.threshold must be within"):
        model_card.validate_card(dict(spectf, threshold=3))
    with pytest.raises(ModelError, match="card.license must be a string"):
        model_card.validate_card(dict(spectf, license=["MIT"]))


def test_deepness_metadata_becomes_a_card(tmp_path):
    meta = {"model_type": "Segmentor", "class_names": json.dumps({"0": "background", "1": "building"}),
            "tile_size": "512", "standardization_mean": "[0.485, 0.456, 0.406]",
            "standardization_std": "[0.229, 0.224, 0.225]", "resolution": "20", "tiles_overlap": "15"}
    path = seg_models.conv_model(tmp_path / "deep.onnx", classes=2, metadata=meta)
    card = model_card.load_card(path)
    assert card["id"] == "deep" and card["task"] == "segmentation"
    assert [c["name"] for c in card["output"]["classes"]] == ["background", "building"]
    assert card["input"]["tile_size"] == [512, 512]
    assert card["input"]["scale"] == pytest.approx([1 / 255] * 3)
    assert card["input"]["std"] == pytest.approx([0.229, 0.224, 0.225])
    assert card["tiling"]["overlap"] == pytest.approx(0.15)


# ---- fuzzing: any JSON is either a valid card or a ModelError --------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=25)


def _check(card):
    try:
        out = model_card.validate_card(card)
    except ModelError as exc:
        assert str(exc).startswith("model: ")
        return
    assert isinstance(out, dict) and out["task"] in model_card.TASKS


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_fuzz_any_json(value):
    _check(value)
    try:
        model_card.parse_card_json(json.dumps(value), "fuzz")
    except ModelError:
        pass


KEYS = ["id", "task", "input", "output", "tiling", "tile_size", "bands", "classes", "mean", "std", "scale",
        "frames", "layout", "stacking", "kind", "value", "color", "overlap", "crop", "scheme", "name"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(["", "input", "output", "tiling"]), st.sampled_from(KEYS), json_values),
                max_size=4))
def test_fuzz_mutated_valid_card(mutations):
    card = seg_models.seg_card()
    for where, key, value in mutations:
        target = card if where == "" else card.get(where)
        if isinstance(target, dict):
            target[key] = value
    _check(card)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_fuzz_card_text(text):
    try:
        card = model_card.parse_card_json(text, "fuzz")
    except ModelError:
        return
    _check(card)
