"""ONNX Runtime access: lazy import, device selection and a thread-safe session cache.

onnxruntime is imported only when a model is run, so the plugin loads without it; a missing install
raises :class:`~.errors.DependencyError` whose message gives the exact install command.

Devices: ``auto`` (CUDA when ONNX Runtime can actually use it, else CPU), ``cpu``, ``cuda``
(an error naming ``device`` when CUDA is not usable: an explicit request is never silently ignored).
"""
import os
import threading

from .. import deps
from ..config import cpu_cores, ensure_config
from ..errors import Cancelled, DependencyError, InputError, ModelError

DEVICES = ("auto", "cpu", "cuda")

_lock = threading.Lock()
_sessions = {}


def import_onnxruntime():
    """Return the onnxruntime module or raise :class:`DependencyError` with install instructions."""
    try:
        import onnxruntime  # noqa: WPS433 (lazy on purpose)
    except ImportError as exc:
        raise DependencyError(deps.missing_message("onnxruntime", str(exc))) from None
    return onnxruntime


def available_providers():
    return list(import_onnxruntime().get_available_providers())


def runtime_summary():
    """One line: ONNX Runtime version and available execution providers."""
    ort = import_onnxruntime()
    return f"ONNX Runtime {ort.__version__}; available execution providers: {', '.join(ort.get_available_providers())}"


def _providers_for(device):
    if device not in DEVICES:
        raise InputError(f"unknown device '{device}'; expected one of {', '.join(DEVICES)}.", "device")
    avail = available_providers()
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" in avail and (device == "cuda" or _gpu_present()):
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if device == "cuda":
        raise InputError(
            "CUDA was requested but this ONNX Runtime has no CUDA execution provider "
            f"(available: {', '.join(avail)}). Install onnxruntime-gpu with a matching CUDA/cuDNN, "
            "or use «device»=auto or «device»=cpu.", "device")
    return ["CPUExecutionProvider"]


_gpu = []


def _gpu_present():
    """Whether an NVIDIA GPU is visible (cached): 'auto' tries CUDA only then, which avoids ONNX
    Runtime's noisy CUDA-library errors on CPU-only machines with onnxruntime-gpu."""
    if not _gpu:
        _gpu.append(deps.has_nvidia_gpu())
    return _gpu[0]


def default_device(config=None):
    """Device used for ``auto``: the run's :class:`~.config.RuntimeConfig` ``device`` (the provider's
    "Default device" setting; SPECTRALTF_DEVICE seeds it), else ``auto``."""
    return ensure_config(config).device


def default_threads(config=None):
    """CPU threads for ONNX Runtime: the config's ``threads`` (0 = all cores), never more than the cores."""
    return ensure_config(config).cpu_threads


class Session:
    """An ONNX Runtime inference session plus what the caller needs to know about it."""

    def __init__(self, session, device, providers, path):
        self.session = session
        self.device = device
        self.providers = providers
        self.path = path
        self.inputs = {i.name: i for i in session.get_inputs()}
        self.outputs = {o.name: o for o in session.get_outputs()}
        self.metadata = dict(session.get_modelmeta().custom_metadata_map or {})

    @property
    def active_provider(self):
        return self.providers[0]

    def describe(self):
        return f"ONNX Runtime execution provider: {self.active_provider} (device={self.device})"

    def run(self, output_names, feeds, run_options=None):
        return self.session.run(output_names, feeds, run_options)

    def run_options(self):
        """A fresh RunOptions; set ``terminate = True`` on it from another thread to stop a run."""
        return import_onnxruntime().RunOptions()

    def run_cancellable(self, output_names, feeds, monitor=None, poll_seconds=0.1):
        """Run like :meth:`run`, but stop inside a long inference when ``monitor`` reports
        cancellation (ONNX Runtime's run-termination flag, set from a watchdog thread); raises
        :class:`~.errors.Cancelled` then."""
        if monitor is None:
            return self.session.run(output_names, feeds)
        monitor.check()
        options = self.run_options()
        done = threading.Event()

        def watchdog():
            while not done.wait(poll_seconds):
                if monitor.cancelled():
                    options.terminate = True
                    return

        watcher = threading.Thread(target=watchdog, name="spectraltf-ort-watchdog", daemon=True)
        watcher.start()
        try:
            return self.session.run(output_names, feeds, options)
        except Exception:
            if options.terminate:
                raise Cancelled() from None
            raise
        finally:
            done.set()
            watcher.join()


def load_session(path, device="auto", threads=None, parameter="model", config=None):
    """Load (or reuse from the cache) an inference session for the ONNX file at ``path``.

    ``device`` auto means the config's device; ``threads`` (default: the config's) is capped at the
    cores, so an absurd thread count cannot stall a run.

    Sessions are cached per (path, file mtime/size, device, threads); ONNX Runtime sessions are
    safe to ``run`` from several threads, so concurrent algorithms share them."""
    ort = import_onnxruntime()
    if device == "auto":
        device = default_device(config)
    path = os.path.abspath(str(path))
    if not os.path.isfile(path):
        raise InputError(f"model file not found: {path}", parameter)
    st = os.stat(path)
    threads = min(int(threads), cpu_cores()) if threads and int(threads) > 0 else default_threads(config)
    key = (path, st.st_mtime_ns, st.st_size, device, threads)
    with _lock:
        cached = _sessions.get(key)
        if cached is not None:
            return cached
        providers = _providers_for(device)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        # No busy-waiting worker threads: QGIS and other work share the cores (measured faster under load).
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            sess = ort.InferenceSession(path, sess_options=opts, providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelError(
                f"{path} is not a valid ONNX model that ONNX Runtime can load ({str(exc).splitlines()[0][:300]}).",
                parameter) from None
        active = list(sess.get_providers())
        if device == "cuda" and "CUDAExecutionProvider" not in active:
            raise InputError(
                "CUDA was requested but ONNX Runtime could not initialise it on this machine (no NVIDIA "
                "GPU, driver or CUDA/cuDNN libraries found); use «device»=auto or «device»=cpu.", "device")
        session = Session(sess, "cuda" if active[0] == "CUDAExecutionProvider" else "cpu", active, path)
        _sessions[key] = session
        return session


def clear_cache():
    with _lock:
        _sessions.clear()
