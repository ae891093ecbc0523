"""Provider settings (Processing ▸ Options ▸ Providers ▸ Spectral Transformers) drive the runtime."""
import os

import pytest

from spectral_transformers.processing_provider import settings
from spectral_transformers.runtime.models import onnx_backend
from spectral_transformers.runtime.config import RuntimeConfig, cpu_cores


@pytest.fixture
def config(processing_provider):
    from processing.core.ProcessingConfig import ProcessingConfig

    saved = {key: ProcessingConfig.settings[key].value for key in settings.ENV if key in ProcessingConfig.settings}
    yield ProcessingConfig
    for key, value in saved.items():
        ProcessingConfig.settings[key].value = value


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


def test_thread_setting_builds_the_run_config_without_touching_the_environment(config):
    before = dict(os.environ)
    config.settings[settings.THREADS].setValue(1)
    assert settings.runtime_config({}).threads == 1
    assert settings.runtime_config({}).cpu_threads == 1
    config.settings[settings.THREADS].setValue("2")  # what QgsSettings hands back after a restart
    assert settings.runtime_config({}).threads == 2
    config.settings[settings.THREADS].setValue(0)
    assert settings.runtime_config({}).cpu_threads == cpu_cores()
    assert dict(os.environ) == before  # nothing is written to os.environ


def test_default_setting_keeps_the_environment_default(config):
    config.settings[settings.THREADS].setValue(0)
    assert settings.runtime_config({"SPECTRALTF_THREADS": "1"}).threads == 1
    config.settings[settings.THREADS].setValue(1)
    assert settings.runtime_config({"SPECTRALTF_THREADS": "5"}).threads == 1  # the setting wins


def test_device_and_model_folder(config, tmp_path):
    config.settings[settings.DEFAULT_DEVICE].setValue("cpu")
    config.settings[settings.MODEL_FOLDER].setValue(str(tmp_path))
    cfg = settings.runtime_config({})
    assert cfg.device == "cpu" and cfg.model_dirs == (str(tmp_path),)
    assert onnx_backend.default_device(cfg) == "cpu"
    assert "SPECTRALTF_MODEL_DIR" not in os.environ or os.environ["SPECTRALTF_MODEL_DIR"] != str(tmp_path)
    config.settings[settings.DEFAULT_DEVICE].setValue("auto")
    config.settings[settings.MODEL_FOLDER].setValue("")
    cfg = settings.runtime_config({"SPECTRALTF_DEVICE": "cpu", "SPECTRALTF_MODEL_DIR": "/x"})
    assert cfg.device == "cpu" and cfg.model_dirs == ("/x",)  # the environment seeds the defaults
    assert settings.runtime_config({}).device == "auto"
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
    session = onnx_backend.load_session(path, "auto", threads=1, config=settings.runtime_config({}))
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


def test_runtime_config_from_environment_and_bounds():
    cfg = RuntimeConfig.from_environment({"SPECTRALTF_THREADS": "100000", "SPECTRALTF_BLOCK_MB": "8",
                                          "SPECTRALTF_COMPRESS": "none", "SPECTRALTF_DEVICE": "CPU"})
    assert cfg.threads == 100000 and cfg.cpu_threads == cpu_cores()  # capped at the cores
    assert cfg.block_bytes == 8 * 1024 * 1024 and cfg.compression == "NONE" and cfg.device == "cpu"
    junk = RuntimeConfig.from_environment({"SPECTRALTF_THREADS": "lots", "SPECTRALTF_BLOCK_MB": "-1"})
    assert (junk.threads, junk.block_mb, junk.device) == (0, 64, "auto")  # malformed variables: defaults
    with pytest.raises(Exception, match="SPECTRALTF_DEVICE: 'tpu' is not a device"):  # … except the device
        RuntimeConfig.from_environment({"SPECTRALTF_DEVICE": "tpu"})
    assert RuntimeConfig.from_environment({"SPECTRALTF_THREADS": "3"}, threads=1).threads == 1
    with pytest.raises(Exception, match="^device: 'tpu' is not a device"):
        RuntimeConfig(device="tpu")
    with pytest.raises(Exception, match="threads: 1.5 is not a whole number"):
        RuntimeConfig(threads=1.5)
    assert RuntimeConfig(model_dirs="/a" + os.pathsep + "/b").model_dirs == ("/a", "/b")
