"""Model registry: store, user folders, package adapters (ukis-csmask), resolve by id or path."""
import json
import os

import numpy as np
import pytest

import seg_models
from spectral_transformers.runtime.models import registry
from spectral_transformers.runtime.errors import ModelError

UKIS_IDS = ["ukis-csmask-6b-l2a", "ukis-csmask-6b-l1c", "ukis-csmask-4b-l2a", "ukis-csmask-4b-l1c"]


def test_ukis_models_are_adapted_from_the_package_files():
    folder = registry.package_dir("ukis_csmask")
    assert folder and os.path.isfile(os.path.join(folder, "mask.py"))
    entries = {e.id: e for e in registry.list_models()}
    for mid in UKIS_IDS:
        e = entries[mid]
        assert e.error is None and e.origin == "package ukis-csmask" and e.path.endswith(".onnx")
    card = entries["ukis-csmask-6b-l2a"].card
    with open(os.path.join(folder, "model_6b_l2a.json")) as f:
        meta = json.load(f)
    stats = meta["data"]["dataset_statistics"]
    assert [b["name"] for b in card["input"]["bands"]] == stats["band_names"]
    assert card["input"]["mean"] == stats["img"][0] and card["input"]["std"] == stats["img"][1]
    assert card["input"]["tile_size"] == meta["data"]["target_size"]
    assert [c["name"] for c in card["output"]["classes"]] == ["clear", "cloud", "cloud shadow"]
    assert card["output"]["kind"] == "logits" and card["tiling"]["scheme"] == "padded"
    assert card["version"] == meta["model"]["version"]
    assert len(entries["ukis-csmask-4b-l1c"].card["input"]["bands"]) == 4


def test_user_folder_env_and_extra_dirs(tmp_path, monkeypatch):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    seg_models.conv_model(a / "one.onnx", card=seg_models.seg_card("user-one"))
    seg_models.conv_model(b / "two.onnx")
    (b / "two.json").write_text(json.dumps(seg_models.seg_card("user-two")))
    seg_models.add_model(b / "nocard.onnx")
    monkeypatch.setenv(registry.ENV_DIRS, str(a))
    entries = {e.id: e for e in registry.list_models(extra_dirs=[b])}
    assert entries["user-one"].origin.startswith("user folder") and entries["user-one"].error is None
    assert entries["user-two"].card["id"] == "user-two"
    assert "no model card" in entries["nocard"].error
    # the listing's JSON says what is wrong with the file, without a parameter prefix (no runtime
    # argument, no Processing name: it is about the model, in any task)
    listed = entries["nocard"].as_dict()["error"]
    assert "no model card" in listed and not listed.lower().startswith("model:") and "«" not in listed
    assert "nocard" not in {e.id for e in registry.list_models(extra_dirs=[b], include_invalid=False)}
    assert registry.resolve("user-two", extra_dirs=[b]).path == str(b / "two.onnx")
    registry.set_user_dirs([b])
    try:
        assert registry.resolve("user-two").id == "user-two"
    finally:
        registry.set_user_dirs([])


def test_resolve_by_path_and_errors(tmp_path):
    path = seg_models.conv_model(tmp_path / "m.onnx", card=seg_models.seg_card("by-path"))
    e = registry.resolve(path)
    assert e.id == "by-path" and e.origin == "file" and e.card["task"] == "segmentation"
    with pytest.raises(ModelError, match="model: no model with id 'nope' is registered .*ukis-csmask-6b-l2a"):
        registry.resolve("nope")
    with pytest.raises(ModelError, match="model: model file not found"):
        registry.resolve(str(tmp_path / "missing.onnx"))
    with pytest.raises(ModelError, match="no model given"):
        registry.resolve("  ")
    with pytest.raises(ModelError, match="'segmentation' model; this algorithm needs a 'temporal-attention'"):
        registry.resolve(path, task="temporal-attention")
    with pytest.raises(ModelError, match="has no model card"):
        registry.resolve(seg_models.add_model(tmp_path / "add.onnx"))


def test_resolve_package_file_path_uses_adapter():
    e = registry.resolve("ukis-csmask-4b-l2a")
    again = registry.resolve(e.path)
    assert again.id == "ukis-csmask-4b-l2a" and again.origin == "package ukis-csmask"


def test_listing_is_fast_and_reads_no_sessions(monkeypatch):
    import time

    from spectral_transformers.runtime.models import onnx_backend

    monkeypatch.setattr(onnx_backend, "load_session", lambda *a, **k: pytest.fail("listing created a session"))
    t = time.perf_counter()
    entries = registry.list_models()
    assert len(entries) >= 4
    assert time.perf_counter() - t < 5.0
    assert np.all([isinstance(e.as_dict(), dict) for e in entries])


def test_runtime_is_qgis_free_and_packages_are_not_imported():
    """Listing locates ukis-csmask with find_spec only; the segmentation runtime never imports QGIS."""
    import subprocess
    import sys

    from support import PLUGINS

    code = ("import sys; from spectral_transformers.runtime.models import registry, segmentation, model_card, tiling; "
            "from spectral_transformers.runtime.physics import band_matching; ids = [e.id for e in registry.list_models()]; assert 'ukis-csmask-6b-l2a' in ids; "
            "assert 'ukis_csmask' not in sys.modules; "
            "assert not any(m == 'qgis' or m.startswith('qgis.') for m in sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True, cwd="/", env=dict(os.environ, PYTHONPATH=str(PLUGINS)))
