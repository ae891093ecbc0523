"""SpecTf PyTorch module, ONNX export/import, model store, training and metrics.

Parity data: real EMIT Libya-4 spectra converted to TOA reflectance with ρ = πLd²/(E cos θ) and
*synthetic* cloudy spectra (cloud spectrum mixed with the real ones; see
``training/spectf_samples.py``) — no real cloudy EMIT spectra exist offline.
"""
import json
import subprocess
import sys

import numpy as np
import pytest

from support import REPO, require_torch, shared

torch = require_torch()
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from spectral_transformers.runtime.models.onnx_backend import load_session  # noqa: E402
from spectral_transformers.training import metrics  # noqa: E402
from spectral_transformers.training.spectf import SpecTf, SpecTfOnnx, keep_bands, load_weights  # noqa: E402
from spectral_transformers.training.spectf_export import (  # noqa: E402
    export_module, import_upstream_onnx, spectf_card)

torch.set_num_threads(1)

UPSTREAM_KEYS = {
    "spectral_embed.linear.weight", "spectral_embed.linear.bias",
    "layers.0.attention.attention.in_proj_weight", "layers.0.attention.attention.in_proj_bias",
    "layers.0.attention.attention.out_proj.weight", "layers.0.attention.attention.out_proj.bias",
    "layers.0.ff.linear1.weight", "layers.0.ff.linear1.bias", "layers.0.ff.linear2.weight",
    "layers.0.ff.linear2.bias", "layers.0.norm1.weight", "layers.0.norm1.bias",
    "layers.0.norm2.weight", "layers.0.norm2.bias", "head.weight", "head.bias"}


@pytest.fixture(scope="module")
def weights():
    return shared("spectf", "spectf_cloud_v0.1.0_weights.pt")


@pytest.fixture(scope="module")
def model(weights):
    return load_weights(weights)


@pytest.fixture(scope="module")
def samples():
    """(clear (266,268), cloudy (56,268), wavelengths (268,)) TOA reflectance."""
    shared("emit", "emit_l1b_rdn_libya4_25x22.img")
    from spectral_transformers.training.spectf_samples import cloudy_mixes, libya4_toa

    rho, wl, _ = libya4_toa()
    keep = keep_bands(wl)
    cloudy, _ = cloudy_mixes(rho, wl, fractions=(0.001, 0.003, 0.01, 0.1, 0.3, 0.6, 1.0))
    return rho[:, keep], cloudy[:, keep], wl[keep].astype(np.float32)


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory, samples):
    path = tmp_path_factory.mktemp("spectf") / "spectf-test.onnx"
    export_module(model, path, spectf_card("0.1.0", samples[2]))
    return path


def reference(model, spectra, wl):
    """Float32 PyTorch reference: probability (N,), logits (N,2), head-averaged attention (N,S)."""
    with torch.no_grad():
        logits, att = model(SpecTf.tokens(spectra, wl), return_attention=True)
    return torch.softmax(logits, -1)[:, 1].numpy(), logits.numpy(), att[0].mean(dim=(1, 2)).numpy()


def run_onnx(path, spectra, wl):
    session = load_session(path, device="cpu", threads=1)
    return session.run(["probability", "logits", "attention"],
                       {"spectra": np.ascontiguousarray(spectra, np.float32), "wavelengths": wl.astype(np.float32)})


def test_module_matches_published_state_dict(weights):
    state = torch.load(str(weights), map_location="cpu", weights_only=True)
    assert set(state) == UPSTREAM_KEYS
    assert set(SpecTf().state_dict()) == UPSTREAM_KEYS
    assert state["layers.0.attention.attention.in_proj_weight"].shape == (192, 64)


def test_attention_weights_shape_and_normalisation(model):
    spectra, wl = torch.rand(3, 50), torch.linspace(420, 2400, 50)
    logits, att = model(SpecTf.tokens(spectra, wl), return_attention=True)
    assert logits.shape == (3, 2) and att[0].shape == (3, 8, 50, 50)
    np.testing.assert_allclose(att[0].sum(-1).detach().numpy(), 1.0, atol=1e-5)


def test_emit_band_selection_gives_268_training_bands(samples):
    assert samples[2].size == 268
    assert keep_bands([405.0, 405.1, 1275.0, 1300.0, 1321.0, 1321.5, 2454.9, 2455.0]).tolist() == [
        False, True, False, False, False, True, True, False]


def test_real_weights_classify_clear_desert_and_synthetic_clouds(model, samples):
    clear, cloudy, wl = samples
    p_clear, p_cloud = model.predict(clear, wl), model.predict(cloudy, wl)
    assert np.mean(p_clear < 0.51) > 0.95, "Libya-4 is a clear-sky desert site"
    assert np.sum(p_cloud >= 0.51) >= 20, "the synthetic cloud mixes should mostly be cloudy"


@pytest.mark.parametrize("which", ["clear", "cloudy"])
def test_onnx_matches_pytorch(model, exported, samples, which):
    clear, cloudy, wl = samples
    spectra = clear if which == "clear" else cloudy
    prob, logits, att = run_onnx(exported, spectra, wl)
    r_prob, r_logits, r_att = reference(model, spectra, wl)
    assert prob.shape == (len(spectra),) and logits.shape == (len(spectra), 2)
    assert att.shape == spectra.shape
    np.testing.assert_allclose(prob, r_prob, atol=1e-4)
    np.testing.assert_allclose(logits, r_logits, atol=2e-4, rtol=1e-5)
    np.testing.assert_allclose(att, r_att, atol=1e-5)
    np.testing.assert_allclose(att.sum(axis=1), 1.0, atol=1e-4)


@pytest.mark.parametrize("form", ["fused", "explicit", "per-head"])
def test_probability_variant_matches_pytorch(model, exported, samples, form, tmp_path):
    """The cloud mask's probability-only graph (fused MultiHeadAttention, the pruned explicit graph or
    the head-by-head graph) matches the float32 PyTorch reference, also with another band count."""
    from spectral_transformers.training.spectf_export import PROBABILITY_ATTENTION, write_probability_variant

    card = json.loads(exported.with_suffix(".json").read_text())
    built = exported.parent / card["variants"]["probability_only"]
    assert json.loads(built.with_suffix(".json").read_text())["attention_form"] == PROBABILITY_ATTENTION
    target = write_probability_variant(exported, card, model, form, target=tmp_path / f"{form}.onnx")
    ops = {n.op_type for n in onnx.load(str(target)).graph.node}
    assert ("MultiHeadAttention" in ops) == (form == "fused") and "Softmax" in ops
    softmaxes = sum(n.op_type == "Softmax" for n in onnx.load(str(target)).graph.node)
    assert softmaxes == (9 if form == "per-head" else 2 if form == "explicit" else 1)  # + the logits' one
    clear, cloudy, wl = samples
    idx = np.sort(np.random.default_rng(2).choice(wl.size, 180, replace=False))
    session = load_session(target, device="cpu", threads=1)
    assert set(session.outputs) == {"probability", "logits"}
    for spectra, bands in ((np.concatenate([clear, cloudy]), slice(None)), (cloudy[:, idx], idx)):
        for chunk in (1, 7, len(spectra)):  # batch shapes the runtime uses
            prob = np.concatenate([session.run(["probability"], {"spectra": spectra[i:i + chunk], "wavelengths": wl[bands]})[0]
                                   for i in range(0, len(spectra), chunk)])
            np.testing.assert_allclose(prob, reference(model, spectra, wl[bands])[0], atol=1e-4)


def test_attention_split_graphs_and_native_path_match_pytorch(model, exported, samples):
    """The export's pre/post-attention graphs (cut at the fused attention node) have the interface the
    runtime expects, and the cloud model's native-attention path matches the float32 PyTorch reference
    within 1e-4 (268 and 180 bands)."""
    from spectral_transformers.runtime.models.spectf import SpectfModel
    from spectral_transformers.runtime.native import attention as native

    card = json.loads(exported.with_suffix(".json").read_text())
    assert card["attention_heads"] == 8
    pre = load_session(exported.parent / card["variants"]["pre_attention"], device="cpu", threads=1)
    post = load_session(exported.parent / card["variants"]["post_attention"], device="cpu", threads=1)
    assert set(pre.inputs) == {"spectra", "wavelengths"} and set(pre.outputs) == {"q", "k", "v"}
    assert set(post.inputs) == {"attention_output"} and set(post.outputs) == {"probability", "logits"}
    if native.kernel() is None:
        pytest.skip(f"native attention kernel: {native.unavailable_reason()} (tests/test_native_attention.py "
                    "fails in CI where it should exist)")
    loaded = SpectfModel(str(exported), device="cpu", threads=2)
    assert loaded.native_attention() is not None, loaded.native_attention_reason
    clear, cloudy, wl = samples
    idx = np.sort(np.random.default_rng(5).choice(wl.size, 180, replace=False))
    spectra = np.concatenate([clear, cloudy])
    for x, w in ((spectra, wl), (cloudy[:, idx], wl[idx])):
        np.testing.assert_allclose(loaded.predict(x, w)[0], reference(model, x, w)[0], atol=1e-4)


def test_unloadable_probability_variant_falls_back_to_full_model(model, exported, samples, tmp_path):
    """An ONNX Runtime that cannot load the variant (e.g. without its fused contrib op) still runs the
    cloud mask, on the full graph, with the same probabilities."""
    import shutil

    from spectral_transformers.runtime.models.spectf import SpectfModel

    card = json.loads(exported.with_suffix(".json").read_text())
    path = tmp_path / exported.name
    shutil.copy(exported, path)
    shutil.copy(exported.with_suffix(".json"), path.with_suffix(".json"))
    variant = tmp_path / card["variants"]["probability_only"]
    variant.parent.mkdir(parents=True)
    variant.write_bytes(b"not an onnx model")
    loaded = SpectfModel(str(path), device="cpu", threads=1)
    assert loaded.probability_session() is loaded.session
    clear, cloudy, wl = samples
    np.testing.assert_allclose(loaded.predict(cloudy, wl)[0], reference(model, cloudy, wl)[0], atol=1e-4)


def test_onnx_dynamic_band_count(model, exported, samples):
    clear, cloudy, wl = samples
    idx = np.sort(np.random.default_rng(1).choice(wl.size, 200, replace=False))
    spectra = np.concatenate([clear[:20], cloudy[:20]])[:, idx]
    prob, logits, att = run_onnx(exported, spectra, wl[idx])
    r_prob, r_logits, r_att = reference(model, spectra, wl[idx])
    assert att.shape == (40, 200)
    np.testing.assert_allclose(prob, r_prob, atol=1e-4)
    np.testing.assert_allclose(att, r_att, atol=1e-5)
    # batch of one and the explicit export form in torch agree too
    with torch.no_grad():
        p1 = SpecTfOnnx(model)(torch.tensor(spectra[:1]), torch.tensor(wl[idx]))[0].numpy()
    np.testing.assert_allclose(run_onnx(exported, spectra[:1], wl[idx])[0], p1, atol=1e-5)


def test_card_embedded_and_sidecar(exported):
    embedded = json.loads({p.key: p.value for p in onnx.load(str(exported)).metadata_props}["model_card"])
    sidecar = json.loads(exported.with_suffix(".json").read_text())
    assert embedded == sidecar
    for key in ("id", "name", "version", "task", "source", "license", "description", "architecture",
                "threshold", "input", "wavelengths_nm", "drop_ranges_nm", "wavelength_offset_nm",
                "wavelength_scale_nm", "trained_on"):
        assert key in embedded, key
    assert embedded["id"] == "spectf-cloud-v0.1.0" and embedded["task"] == "spectral-cloud-mask"
    assert embedded["threshold"] == 0.51 and len(embedded["wavelengths_nm"]) == 268
    assert embedded["drop_ranges_nm"] == [[0, 405], [1275, 1321], [2455, 9999]]
    assert embedded["published_f1"]["all"] == 0.948
    from spectral_transformers.runtime.models import model_card  # the registry's parser accepts it
    assert model_card.load_card(exported)["id"] == "spectf-cloud-v0.1.0"
    graph = onnx.load(str(exported))
    assert max(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")) >= 17


def test_imported_upstream_bf16_matches_export(model, samples, tmp_path):
    src = shared("spectf", "spectf_cloud_v0.1.0_upstream_bf16.onnx")
    dst = import_upstream_onnx(src, tmp_path / "upstream.onnx", spectf_card("0.1.0", samples[2]), tokens_only=True)
    session = load_session(dst, device="cpu", threads=1)
    assert session.inputs["tokens"].shape[0] == "N"
    clear, cloudy, wl = samples
    spectra = np.concatenate([clear[:30], cloudy])
    tokens = SpecTf.tokens(spectra, wl).numpy()
    logits = session.run(["logits"], {"tokens": tokens})[0]
    assert logits.shape == (len(spectra), 2)
    # the upstream file holds bf16-rounded weights (and bf16 constants such as 1/sqrt(8)):
    # compare with the same weights rounded to bf16, then with the float32 export
    rounded = load_weights(shared("spectf", "spectf_cloud_v0.1.0_weights.pt"))
    with torch.no_grad():
        for p in rounded.parameters():
            p.copy_(p.to(torch.bfloat16).float())
        ref_bf16 = rounded(torch.tensor(tokens)).numpy()
    np.testing.assert_allclose(logits, ref_bf16, atol=1e-2)
    prob = torch.softmax(torch.tensor(logits), -1)[:, 1].numpy()
    r_prob = reference(model, spectra, wl)[0]
    assert np.max(np.abs(prob - r_prob)) < 0.02
    assert np.mean((prob >= 0.51) == (r_prob >= 0.51)) == 1.0


def test_build_store_is_idempotent(tmp_path):
    from spectral_transformers.training import build_store

    wdir = shared("spectf")
    lines = []
    built = build_store.build(wdir, tmp_path, log=lines.append)
    assert [p.name for p in built] == ["spectf-cloud-v0.1.0.onnx", "spectf-cloud-v0.0.1.onnx"]
    card = json.loads((tmp_path / "spectf-cloud-v0.0.1.json").read_text())
    assert card["threshold"] == 0.52 and card["version"] == "0.0.1"
    mtime = built[0].stat().st_mtime_ns
    lines.clear()
    build_store.build(wdir, tmp_path, log=lines.append)
    assert all("up to date" in line for line in lines) and built[0].stat().st_mtime_ns == mtime


def test_build_store_cli_without_weights(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "spectral_transformers.training.build_store",
                           "--weights-dir", str(tmp_path / "nowhere")], capture_output=True, text=True,
                          cwd=REPO)
    assert proc.returncode == 2 and "not a folder" in proc.stderr


def _write_h5(path, spectra, labels, fids, wl):
    import h5py

    with h5py.File(path, "w") as f:
        f.create_dataset("spectra", data=spectra.astype(np.float64))
        f.create_dataset("labels", data=labels.astype(np.int64))
        f.create_dataset("fids", data=np.array(fids, dtype="S"))
        f.create_dataset("indices", data=np.arange(len(labels), dtype=np.int64))
        f.attrs["bands"] = wl.astype(np.float64)


def test_train_cli_on_small_hdf5(samples, tmp_path):
    from spectral_transformers.training.spectf_samples import cloudy_mixes

    clear, _, wl = samples
    rng = np.random.default_rng(0)
    full_wl = np.asarray(wl, dtype=np.float64)
    cloudy, _ = cloudy_mixes(clear, full_wl, fractions=(0.3, 0.5, 0.8, 1.0), seed=3)
    cloudy = np.concatenate([cloudy] * 4) * rng.uniform(0.9, 1.1, (len(cloudy) * 4, 1))
    clear = clear[:128] * rng.uniform(0.9, 1.1, (128, 1))
    spectra = np.concatenate([clear, cloudy]).astype(np.float32)
    labels = np.r_[np.zeros(len(clear)), np.ones(len(cloudy))].astype(np.int64)
    labels[:16] = 2  # shadow counts as clear
    fids = np.array([f"emit2022{i % 6}" for i in range(len(labels))])
    _write_h5(tmp_path / "data.h5", spectra, labels, fids, full_wl)
    (tmp_path / "train.csv").write_text("fid\n" + "\n".join(f"emit2022{i}" for i in range(4)) + "\n")
    (tmp_path / "test.csv").write_text("fid\nemit20224\nemit20225\n")
    out = tmp_path / "trained.onnx"
    proc = subprocess.run(
        [sys.executable, "-m", "spectral_transformers.training", "train", str(tmp_path / "data.h5"),
         "--train-fids", str(tmp_path / "train.csv"), "--test-fids", str(tmp_path / "test.csv"),
         "--output", str(out), "--epochs", "4", "--batch-size", "32", "--lr", "3e-3", "--threads", "1"],
        capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "test: " in proc.stdout and out.exists()
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["test_metrics"]["n"] == int(np.isin(fids, ["emit20224", "emit20225"]).sum())
    assert card["test_metrics"]["f1"] > 0.8, proc.stdout
    from spectral_transformers.runtime.models import model_card
    assert model_card.load_card(out)["task"] == "spectral-cloud-mask"
    prob = run_onnx(out, spectra[:5], wl)[0]
    assert prob.shape == (5,) and np.all((prob >= 0) & (prob <= 1))


def test_metrics_against_hand_computed_values():
    y = np.array([1, 1, 0, 0, 1, 0])
    pred = np.array([1, 0, 0, 1, 1, 0])
    assert metrics.confusion(y, pred) == (2, 1, 1, 2)
    assert metrics.f1_score(y, pred) == pytest.approx(2 / 3)
    # AUC: positives {0.9, 0.4, 0.4}, negatives {0.4, 0.2, 0.1}; 7 pairs won + 2 ties = 8/9
    assert metrics.roc_auc(y, [0.9, 0.4, 0.1, 0.4, 0.4, 0.2]) == pytest.approx((7 + 0.5 * 2) / 9)
    assert metrics.roc_auc([1, 1], [0.2, 0.3]) != metrics.roc_auc([1, 1], [0.2, 0.3])  # NaN
    s = np.random.default_rng(0).random(200)
    yy = (s + np.random.default_rng(1).normal(0, 0.3, 200)) > 0.5
    brute = np.mean([(a > b) + 0.5 * (a == b) for a in s[yy] for b in s[~yy]])
    assert metrics.roc_auc(yy, s) == pytest.approx(brute)


def test_training_cli_lists_commands():
    proc = subprocess.run([sys.executable, "-m", "spectral_transformers.training", "--help"],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0
    for name in ("export", "import-onnx", "train", "build-store"):
        assert name in proc.stdout
