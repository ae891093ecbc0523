"""Provider settings (Processing ▸ Options ▸ Providers ▸ Spectral Transformers) drive the runtime."""
import os

import pytest

from spectral_transformers.processing_provider import settings
from spectral_transformers.runtime import onnx_backend


@pytest.fixture
def config(processing_provider):
    from processing.core.ProcessingConfig import ProcessingConfig

    saved = {key: ProcessingConfig.settings[key].value for key in settings.ENV if key in ProcessingConfig.settings}
    env = {var: os.environ.get(var) for var in settings.ENV.values()}
    yield ProcessingConfig
    for key, value in saved.items():
        ProcessingConfig.settings[key].value = value
    for var, value in env.items():
        if value is None:
            os.environ.pop(var, None)
        else:
            os.environ[var] = value


def test_settings_registered_on_provider_load(config):
    group = config.getSettings()["Spectral Transformers"]
    by_key = {s.name: s for s in group}
    assert set(by_key) == set(settings.ENV)
    from processing.core.ProcessingConfig import Setting

    assert by_key[settings.MODEL_FOLDER].valuetype == Setting.FOLDER
    assert by_key[settings.DEFAULT_DEVICE].valuetype == Setting.SELECTION
    assert by_key[settings.DEFAULT_DEVICE].options == ["auto", "cpu", "cuda"]
    assert by_key[settings.THREADS].valuetype == Setting.INT
    with pytest.raises(ValueError):
        by_key[settings.THREADS].setValue(-1)


def test_thread_setting_changes_default_threads(config, monkeypatch):
    config.settings[settings.THREADS].setValue(3)
    settings.apply_settings()
    assert onnx_backend.default_threads() == 3
    config.settings[settings.THREADS].setValue("2")  # what QgsSettings hands back after a restart
    settings.apply_settings()
    assert onnx_backend.default_threads() == 2
    config.settings[settings.THREADS].setValue(0)
    os.environ.pop("SPECTRALTF_THREADS", None)
    monkeypatch.setitem(settings._STARTUP_ENV, "SPECTRALTF_THREADS", None)
    settings.apply_settings()
    assert onnx_backend.default_threads() == (os.cpu_count() or 1)


def test_default_setting_keeps_startup_environment(config, monkeypatch):
    monkeypatch.setitem(settings._STARTUP_ENV, "SPECTRALTF_THREADS", "5")
    config.settings[settings.THREADS].setValue(0)
    settings.apply_settings()
    assert onnx_backend.default_threads() == 5


def test_device_and_model_folder(config, tmp_path, monkeypatch):
    config.settings[settings.DEFAULT_DEVICE].setValue("cpu")
    config.settings[settings.MODEL_FOLDER].setValue(str(tmp_path))
    values = settings.apply_settings()
    assert values == {"model_folder": str(tmp_path), "device": "cpu", "threads": values["threads"]}
    assert onnx_backend.default_device() == "cpu"
    assert os.environ["SPECTRALTF_MODEL_DIR"] == str(tmp_path)
    config.settings[settings.DEFAULT_DEVICE].setValue("auto")
    config.settings[settings.MODEL_FOLDER].setValue("")
    monkeypatch.setitem(settings._STARTUP_ENV, "SPECTRALTF_DEVICE", None)
    monkeypatch.setitem(settings._STARTUP_ENV, "SPECTRALTF_MODEL_DIR", None)
    settings.apply_settings()
    assert onnx_backend.default_device() == "auto"
    assert "SPECTRALTF_MODEL_DIR" not in os.environ
    with pytest.raises(ValueError):
        config.settings[settings.MODEL_FOLDER].setValue(str(tmp_path / "missing"))


def test_auto_device_uses_default_device(config, tmp_path):
    """DEVICE=auto resolves through the setting: 'cpu' gives a CPU session."""
    pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = tmp_path / "id.onnx"
    onnx.save(model, str(path))
    config.settings[settings.DEFAULT_DEVICE].setValue("cpu")
    settings.apply_settings()
    session = onnx_backend.load_session(path, "auto", threads=1)
    assert session.providers == ["CPUExecutionProvider"]
    assert session.device == "cpu"


def test_settings_removed_on_unload(config):
    from spectral_transformers.processing_provider.provider import SpectralTransformersProvider

    # A second provider instance, loaded and unloaded on its own, must leave Processing's
    # configuration without our keys (then restore them for the shared provider).
    provider = SpectralTransformersProvider()
    assert provider.load()
    assert all(key in config.settings for key in settings.ENV)
    provider.unload()
    assert not any(key in config.settings for key in settings.ENV)
    settings.register("Spectral Transformers")


def test_version_info_reports_runtime(processing_provider):
    pytest.importorskip("onnxruntime")
    import onnxruntime

    info = processing_provider.versionInfo()
    assert onnxruntime.__version__ in info and "CPUExecutionProvider" in info
    assert f"ONNX Runtime {onnxruntime.__version__}" in processing_provider.longName()
