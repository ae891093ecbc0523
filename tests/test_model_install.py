"""runtime/models/model_install.py + spectraltf:installmodel: models from a URL (local HTTP server on
127.0.0.1) or a file, SHA-256 checked, cards validated, bad input refused with one line, nothing partial."""
import hashlib
import http.server
import json
import os
import shutil
import threading
import zipfile
from functools import partial

import pytest

import seg_models
from support import MODELS, built_model
from spectral_transformers.runtime.models import model_install
from spectral_transformers.runtime.models import registry
from spectral_transformers.runtime.errors import Cancelled, InputError, ModelError
from spectral_transformers.runtime.monitor import RecordingMonitor


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    """An HTTP server on the loopback interface serving ``tmp_path / 'www'``; yields its base URL."""
    www = tmp_path / "www"
    www.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(www)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield www, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def _spectf_bundle(folder, model_id="spectf-copy"):
    """A copy of the built SpecTf model under another id, with the files its card names (zip layout)."""
    built_model("spectf-cloud-v0.1.0")
    folder.mkdir(parents=True, exist_ok=True)
    card = json.loads((MODELS / "spectf-cloud-v0.1.0.json").read_text())
    card["id"] = model_id
    shutil.copy(MODELS / "spectf-cloud-v0.1.0.onnx", folder / f"{model_id}.onnx")
    (folder / f"{model_id}.json").write_text(json.dumps(card))
    shutil.copy(MODELS / card["solar_irradiance_file"], folder / card["solar_irradiance_file"])
    (folder / "variants").mkdir(exist_ok=True)
    for variant in card["variants"].values():  # probability-only, pre/post-attention graphs, native weights
        shutil.copy(MODELS / variant, folder / variant)
    return folder


def _zip(folder, target, top="bundle"):
    with zipfile.ZipFile(target, "w") as zf:
        for root, _, files in os.walk(folder):
            for f in files:
                path = os.path.join(root, f)
                zf.write(path, f"{top}/{os.path.relpath(path, folder)}")
    return target


def _listing(folder):
    return sorted(os.path.relpath(os.path.join(r, f), folder) for r, _, fs in os.walk(folder) for f in fs)


def test_zip_over_http_with_sha256_installs_and_resolves(server, tmp_path):
    www, url = server
    archive = _zip(_spectf_bundle(tmp_path / "src"), www / "spectf-copy.zip")
    target = tmp_path / "models"
    monitor = RecordingMonitor()
    installed = model_install.install_model(f"{url}/spectf-copy.zip", sha256=_sha(archive), models_dir=str(target),
                                            monitor=monitor)
    assert [m["id"] for m in installed] == ["spectf-copy"]
    assert _listing(target) == sorted(["spectf-copy.json", "spectf-copy.onnx", "spectf-cloud-v0.1.0.solar.csv",
                                       "variants/spectf-cloud-v0.1.0.probability.onnx",
                                       "variants/spectf-cloud-v0.1.0.pre-attention.onnx",
                                       "variants/spectf-cloud-v0.1.0.post-attention.onnx",
                                       "variants/spectf-cloud-v0.1.0.native.npz"])
    assert monitor.fractions[-1] == 1.0 and monitor.fractions == sorted(monitor.fractions)
    entry = registry.resolve("spectf-copy", extra_dirs=[str(target)], task="spectral-cloud-mask")
    assert entry.path == str(target / "spectf-copy.onnx")
    from spectral_transformers.runtime.models import spectf

    model = spectf.SpectfModel.load(entry, device="cpu")
    assert model.solar_irradiance_path == str(target / "spectf-cloud-v0.1.0.solar.csv")
    if model.native_attention() is not None and model.native_attention()[3].isa == 2:
        assert model.native_forward() is not None, model.native_forward_reason  # its weights came along
    # installed again: refused unless replacing
    with pytest.raises(ModelError, match="source: model 'spectf-copy' is already installed"):
        model_install.install_model(f"{url}/spectf-copy.zip", models_dir=str(target))
    model_install.install_model(f"{url}/spectf-copy.zip", models_dir=str(target), overwrite=True)
    assert "spectf-copy.onnx" in _listing(target) and len(_listing(target)) == 7


def test_onnx_file_with_sidecar_and_onnx_url_with_card_url(server, tmp_path):
    www, url = server
    card = seg_models.seg_card("tiny-seg-install")
    src = tmp_path / "src"
    src.mkdir()
    seg_models.conv_model(src / "tiny.onnx", in_ch=3, classes=3)
    (src / "tiny.json").write_text(json.dumps(card))
    target = tmp_path / "models"
    (installed,) = model_install.install_model(str(src / "tiny.onnx"), models_dir=str(target))
    assert installed["id"] == "tiny-seg-install" and _listing(target) == ["tiny-seg-install.json",
                                                                          "tiny-seg-install.onnx"]
    shutil.copy(src / "tiny.onnx", www / "tiny.onnx")
    (www / "card.json").write_text(json.dumps(dict(card, id="tiny-seg-url")))
    (installed,) = model_install.install_model(f"{url}/tiny.onnx", card=f"{url}/card.json", models_dir=str(target))
    assert installed["id"] == "tiny-seg-url"
    assert registry.resolve("tiny-seg-url", extra_dirs=[str(target)]).card["task"] == "segmentation"


@pytest.mark.parametrize("case,message", [
    ("wrong-sha", r"^sha256: the file's SHA-256 is [0-9a-f]{64}, expected 0{64}; nothing was installed\.$"),
    ("bad-sha", r"^sha256: 'abc' is not a SHA-256 \(expected 64 hexadecimal digits\)\.$"),
    ("not-found", r"^source: cannot download http://127\.0\.0\.1:\d+/missing\.zip: .*"),
    ("txt", r"^source: 'notes\.txt' is neither an \.onnx file nor a \.zip of models\.$"),
    ("ftp", r"^source: 'ftp://' URLs are not supported"),
    ("not-zip", r"^source: broken\.zip is not a valid zip file\.$"),
    ("unsafe", r"^source: the zip file holds an unsafe path '\.\./evil\.onnx'; nothing was installed\.$"),
    ("no-card", r"^source: .*has no model card"),
    ("missing-ref", r"^source: model 'spectf-copy': its card names .*solar\.csv, which the download lacks\.$"),
    ("not-onnx", r"^source: spectf-copy\.onnx is not a loadable ONNX model: "),
    ("no-file", r"^source: file not found: "),
])
def test_bad_input_is_refused_and_leaves_nothing(server, tmp_path, case, message):
    www, url = server
    target = tmp_path / "models"
    sha = None
    if case in ("wrong-sha", "bad-sha"):
        source = str(_zip(_spectf_bundle(tmp_path / "src"), www / "m.zip"))
        sha = "0" * 64 if case == "wrong-sha" else "abc"
    elif case == "not-found":
        source = f"{url}/missing.zip"
    elif case == "txt":
        source = str(tmp_path / "notes.txt")
    elif case == "ftp":
        source = "ftp://127.0.0.1/m.zip"
    elif case == "not-zip":
        (www / "broken.zip").write_bytes(b"not a zip")
        source = f"{url}/broken.zip"
    elif case == "unsafe":
        with zipfile.ZipFile(www / "evil.zip", "w") as zf:
            zf.writestr("../evil.onnx", b"x")
        source = f"{url}/evil.zip"
    elif case == "no-card":
        source = seg_models.conv_model(tmp_path / "bare.onnx")
    elif case == "missing-ref":
        bundle = _spectf_bundle(tmp_path / "src")
        os.remove(bundle / "spectf-cloud-v0.1.0.solar.csv")
        source = str(_zip(bundle, www / "m.zip"))
    elif case == "not-onnx":
        bundle = _spectf_bundle(tmp_path / "src")
        (bundle / "spectf-copy.onnx").write_bytes(b"\x08\x07garbage that is not a protobuf graph")
        source = str(bundle / "spectf-copy.onnx")
    else:
        source = str(tmp_path / "nope.onnx")
    with pytest.raises((InputError, ModelError)) as info:
        model_install.install_model(source, sha256=sha, models_dir=str(target))
    text = str(info.value)
    import re

    assert re.search(message, text), text
    assert "\n" not in text
    assert not target.exists() or os.listdir(target) == []


def test_cancel_during_download_leaves_nothing(server, tmp_path):
    www, url = server
    _zip(_spectf_bundle(tmp_path / "src"), www / "m.zip")
    target = tmp_path / "models"
    with pytest.raises(Cancelled):
        model_install.install_model(f"{url}/m.zip", models_dir=str(target), monitor=RecordingMonitor(cancel_after=0))
    assert os.listdir(target) == []


def test_install_model_algorithm(processing_provider, server, tmp_path, monkeypatch):
    import processing
    from qgis.core import QgsProcessingException

    www, url = server
    monkeypatch.setenv("SPECTRALTF_DATA_DIR", str(tmp_path / "data"))
    archive = _zip(_spectf_bundle(tmp_path / "src", "spectf-alg"), www / "m.zip")
    result = processing.run("spectraltf:installmodel", {"SOURCE": f"{url}/m.zip", "SHA256": _sha(archive)})
    assert result["MODEL_IDS"] == "spectf-alg" and result["COUNT"] == 1
    assert result["FOLDER"] == str(tmp_path / "data" / "models")
    assert "spectf-alg" in {e.id for e in registry.list_models()}  # the user model folder is searched
    with pytest.raises(QgsProcessingException, match="already installed"):
        processing.run("spectraltf:installmodel", {"SOURCE": f"{url}/m.zip"})


@pytest.mark.parametrize("model_id,hint", [
    ("ukis-csmask-4b-l1c", "Install dependencies… (headless: qgis_process run spectraltf:installdependencies)"),
    ("spectf-cloud-v9.9.9", "the SpecTf models ship inside the plugin ZIP"),
    ("someone-elses-model", "Install model… (spectraltf:installmodel"),
])
def test_no_model_messages_tell_a_zip_user_what_to_do(model_id, hint, monkeypatch):
    monkeypatch.setattr(registry, "PACKAGE_ADAPTERS", ())  # as in a fresh install: no ukis-csmask package
    with pytest.raises(ModelError) as info:
        registry.resolve(model_id)
    text = str(info.value)
    assert text.startswith(f"model: no model with id '{model_id}' is registered") and hint in text, text
    assert "make " not in text and "\n" not in text
