"""Run-time settings of the QGIS-free core, passed explicitly to every task (never through os.environ).

The Processing adapters build one :class:`RuntimeConfig` per run from the provider settings
(Processing ▸ Options ▸ Providers ▸ Spectral Transformers); scripts and the batch runner call
:meth:`RuntimeConfig.from_environment`. Environment variables only seed the defaults:

==========================  ========================================================  ===========
Variable                    Meaning                                                   Default
==========================  ========================================================  ===========
``SPECTRALTF_MODEL_DIR``    extra model folders (``os.pathsep``-separated)            none
``SPECTRALTF_DEVICE``       device used when a task's ``device`` is ``auto``          auto
``SPECTRALTF_THREADS``      ONNX Runtime CPU threads (0 = all cores; capped at cores) 0
``SPECTRALTF_BLOCK_MB``     streaming block budget in MiB (input data per block)      64
``SPECTRALTF_COMPRESS``     GeoTIFF compression: ZSTD, DEFLATE, LZW or NONE           ZSTD
``SPECTRALTF_NATIVE_ATTN``  0 = SpecTf on CPU never uses the native attention kernel  1
==========================  ========================================================  ===========

Nothing here writes the environment; a malformed variable is ignored (the default applies) except
``SPECTRALTF_DEVICE``, whose unknown values are refused like ``device`` (running on another device than
asked is not a default); a malformed explicit value raises :class:`~.errors.InputError` naming the
setting.
"""
import os
from dataclasses import dataclass, field, replace

from .errors import InputError

DEVICES = ("auto", "cpu", "cuda")
COMPRESSIONS = ("ZSTD", "DEFLATE", "LZW", "NONE")
DEFAULT_BLOCK_MB = 64
#: Upper bound of the block budget (MiB): a block is held a few times in memory.
MAX_BLOCK_MB = 16 * 1024

ENV_MODEL_DIR = "SPECTRALTF_MODEL_DIR"
ENV_DEVICE = "SPECTRALTF_DEVICE"
ENV_THREADS = "SPECTRALTF_THREADS"
ENV_BLOCK_MB = "SPECTRALTF_BLOCK_MB"
ENV_COMPRESS = "SPECTRALTF_COMPRESS"
ENV_NATIVE_ATTENTION = "SPECTRALTF_NATIVE_ATTN"


def cpu_cores():
    """Cores this process may use (scheduler affinity where the OS reports it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class RuntimeConfig:
    """Settings of one run.

    ``model_dirs``: extra model folders; ``device``: auto | cpu | cuda (what ``device=auto`` means);
    ``threads``: ONNX Runtime intra-op threads, 0 = all cores, never more than the cores;
    ``block_mb``: input data per streamed block (MiB); ``compression``: GeoTIFF compression;
    ``native_attention``: SpecTf on CPU may run its attention in :mod:`.native.attention` (where
    built and supported; ONNX Runtime's otherwise)."""

    model_dirs: tuple = ()
    device: str = "auto"
    threads: int = 0
    block_mb: float = DEFAULT_BLOCK_MB
    compression: str = "ZSTD"
    native_attention: bool = True
    #: where the values came from, for the log ("setting", "SPECTRALTF_THREADS", ...)
    sources: tuple = field(default=(), compare=False)

    def __post_init__(self):
        dirs = self.model_dirs
        if isinstance(dirs, (str, os.PathLike)):
            dirs = [d for d in str(dirs).split(os.pathsep)]
        object.__setattr__(self, "model_dirs", tuple(str(d).strip() for d in (dirs or ()) if str(d).strip()))
        device = str(self.device or "auto").strip().lower()
        if device not in DEVICES:
            raise InputError(f"'{self.device}' is not a device; expected one of {', '.join(DEVICES)}.", "device")
        object.__setattr__(self, "device", device)
        threads = _whole(self.threads, "threads", 0)
        object.__setattr__(self, "threads", threads)
        try:
            block = float(self.block_mb)
        except (TypeError, ValueError):
            raise InputError(f"'{self.block_mb}' is not a number of MiB.", "block_mb") from None
        if not (block > 0) or block > MAX_BLOCK_MB:
            raise InputError(f"{block:g} MiB is outside (0, {MAX_BLOCK_MB}].", "block_mb")
        object.__setattr__(self, "block_mb", block)
        method = str(self.compression or "ZSTD").strip().upper()
        if method not in COMPRESSIONS:
            raise InputError(f"'{self.compression}' is not a compression; expected one of "
                             f"{', '.join(COMPRESSIONS)}.", "compression")
        object.__setattr__(self, "compression", method)
        if not isinstance(self.native_attention, bool):
            raise InputError(f"'{self.native_attention}' is not true or false.", "native_attention")

    # -- derived values --------------------------------------------------------------------------
    @property
    def block_bytes(self):
        """Streaming block budget in bytes."""
        return int(self.block_mb * 1024 * 1024)

    @property
    def cpu_threads(self):
        """ONNX Runtime CPU threads actually used: ``threads`` (0 = all cores) capped at the cores."""
        cores = cpu_cores()
        return cores if self.threads <= 0 else min(self.threads, cores)

    def resolve_device(self, requested="auto"):
        """The device for a task's ``device`` value: an explicit cpu/cuda wins, auto → ``device``."""
        requested = str(requested or "auto").strip().lower()
        if requested not in DEVICES:
            raise InputError(f"'{requested}' is not a valid choice; expected one of {', '.join(DEVICES)}.", "device")
        return self.device if requested == "auto" else requested

    def with_overrides(self, **values):
        """A copy with some values replaced (None leaves a value as it is)."""
        return replace(self, **{k: v for k, v in values.items() if v is not None})

    # -- construction ----------------------------------------------------------------------------
    @classmethod
    def from_environment(cls, environ=None, **overrides):
        """Defaults seeded from the ``SPECTRALTF_*`` variables of ``environ`` (default os.environ);
        ``overrides`` (None = keep) win over them. Malformed variables are ignored, an unknown
        ``SPECTRALTF_DEVICE`` raises :class:`~.errors.InputError` naming it."""
        env = os.environ if environ is None else environ
        values, sources = {}, []
        dirs = env.get(ENV_MODEL_DIR, "")
        if dirs.strip():
            values["model_dirs"] = tuple(d for d in dirs.split(os.pathsep) if d.strip())
            sources.append(ENV_MODEL_DIR)
        device = env.get(ENV_DEVICE, "").strip().lower()
        if device in DEVICES:
            values["device"] = device
            sources.append(ENV_DEVICE)
        elif device:  # a typo (gpu, cuda0) must not silently run on another device
            raise InputError(f"'{env.get(ENV_DEVICE)}' is not a device; expected one of {', '.join(DEVICES)} "
                             f"(or unset {ENV_DEVICE}).", ENV_DEVICE)
        threads = env.get(ENV_THREADS, "").strip()
        if threads.isdigit():
            values["threads"] = int(threads)
            sources.append(ENV_THREADS)
        block = env.get(ENV_BLOCK_MB, "").strip()
        try:
            if block and 0 < float(block) <= MAX_BLOCK_MB:
                values["block_mb"] = float(block)
                sources.append(ENV_BLOCK_MB)
        except ValueError:
            pass
        method = env.get(ENV_COMPRESS, "").strip().upper()
        if method in COMPRESSIONS:
            values["compression"] = method
            sources.append(ENV_COMPRESS)
        native = env.get(ENV_NATIVE_ATTENTION, "").strip().lower()
        if native in ("0", "1", "false", "true", "off", "on", "no", "yes"):
            values["native_attention"] = native in ("1", "true", "on", "yes")
            sources.append(ENV_NATIVE_ATTENTION)
        for key, value in overrides.items():
            if value is not None:
                values[key] = value
        return cls(sources=tuple(sources), **values)

    def describe(self):
        return (f"device {self.device}, {self.cpu_threads} CPU thread(s), blocks of {self.block_mb:g} MiB, "
                f"{self.compression} compression"
                + ("" if self.native_attention else ", native attention off")
                + (f", model folders {', '.join(self.model_dirs)}" if self.model_dirs else ""))


def _whole(value, name, minimum):
    if isinstance(value, bool):
        raise InputError(f"'{value}' is not a whole number.", name)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"'{value}' is not a whole number.", name) from None
    if number != int(number) or number < minimum:
        raise InputError(f"{value} is not a whole number >= {minimum}.", name)
    return int(number)


def ensure_config(config):
    """``config`` or the environment-seeded default."""
    return config if config is not None else RuntimeConfig.from_environment()
