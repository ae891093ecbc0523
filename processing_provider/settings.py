"""Provider settings shown under Processing ▸ Options ▸ Providers ▸ Spectral Transformers.

=========================  ===============================================  =============================
Setting                    Meaning                                          Seeded from (when left empty)
=========================  ===============================================  =============================
Extra model folder         folder with more ``<id>.onnx`` models (+ cards)  ``SPECTRALTF_MODEL_DIR``
Default device             device used when an algorithm's DEVICE is auto   ``SPECTRALTF_DEVICE``
CPU threads (0 = all)      ONNX Runtime intra-op threads (capped at cores)  ``SPECTRALTF_THREADS``
=========================  ===============================================  =============================

:func:`runtime_config` turns them into the run's :class:`~..runtime.config.RuntimeConfig`, which the
algorithms pass down explicitly; nothing writes ``os.environ``. A setting left at its default keeps
the value its environment variable gives (so an exported variable still works headless).
"""
import os

#: Setting keys (global in Processing's configuration, hence the prefix).
MODEL_FOLDER = "SPECTRALTF_MODEL_FOLDER"
DEFAULT_DEVICE = "SPECTRALTF_DEFAULT_DEVICE"
THREADS = "SPECTRALTF_THREADS"

DEVICE_OPTIONS = ["auto", "cpu", "cuda"]

#: Setting key → environment variable that seeds its default.
ENV = {
    MODEL_FOLDER: "SPECTRALTF_MODEL_DIR",
    DEFAULT_DEVICE: "SPECTRALTF_DEVICE",
    THREADS: "SPECTRALTF_THREADS",
}


def _config():
    """Processing's ProcessingConfig, or None where the Processing plugin is not importable."""
    try:
        from processing.core.ProcessingConfig import ProcessingConfig, Setting
    except ImportError:
        return None, None
    return ProcessingConfig, Setting


def register(group):
    """Add the settings to Processing's options (call from the provider's ``load``)."""
    config, setting = _config()
    if config is None:
        return False
    config.addSetting(setting(group, MODEL_FOLDER, "Extra model folder (ONNX models with model cards)", "",
                              valuetype=setting.FOLDER, validator=_check_folder))
    config.addSetting(setting(group, DEFAULT_DEVICE, "Default device when an algorithm's DEVICE is 'auto'",
                              DEVICE_OPTIONS[0], valuetype=setting.SELECTION, options=DEVICE_OPTIONS))
    config.addSetting(setting(group, THREADS, "CPU threads for ONNX Runtime (0 = all cores)", 0,
                              valuetype=setting.INT, validator=_check_threads))
    config.readSettings()
    return True


def unregister():
    """Remove the settings again (call from the provider's ``unload``)."""
    config, _ = _config()
    if config is None:
        return
    for key in ENV:
        if key in config.settings:
            config.removeSetting(key)


def _check_folder(value):
    """Our own check: QGIS 3.44's folder setting accepts a missing folder whose parent exists."""
    if value and not os.path.isdir(str(value).strip()):
        raise ValueError(f"Extra model folder: {value!r} is not an existing folder")


def _check_threads(value):
    try:
        ok = int(value) >= 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"CPU threads must be a whole number >= 0 (0 = all cores), got {value!r}")


def current():
    """Current values: {"model_folder": str, "device": "auto|cpu|cuda", "threads": int (0 = all)}."""
    config, _ = _config()
    values = {"model_folder": "", "device": "auto", "threads": 0}
    if config is None or MODEL_FOLDER not in config.settings:
        return values
    folder = config.getSetting(MODEL_FOLDER)
    values["model_folder"] = str(folder).strip() if folder else ""
    device = config.getSetting(DEFAULT_DEVICE, readable=True)
    values["device"] = device if device in DEVICE_OPTIONS else "auto"
    try:
        values["threads"] = max(0, int(config.getSetting(THREADS) or 0))
    except (TypeError, ValueError):
        values["threads"] = 0
    return values


def runtime_config(environ=None):
    """The :class:`~..runtime.config.RuntimeConfig` of one run: environment defaults, overridden by the
    settings that are not at their defaults (empty folder, ``auto``, 0 threads)."""
    from ..runtime.config import RuntimeConfig

    values = current()
    return RuntimeConfig.from_environment(
        environ,
        model_dirs=(values["model_folder"],) if values["model_folder"] else None,
        device=values["device"] if values["device"] != "auto" else None,
        threads=values["threads"] if values["threads"] > 0 else None,
    )
