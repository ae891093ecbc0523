"""One model base for every ONNX task (QGIS-free): card, session, input/output check, batched run,
cancellation.

:class:`OnnxModel` is what SpecTf (:class:`.spectf.SpectfModel`), segmentation
(:class:`.segmentation.ModelRunner`) and L-TAE (:class:`.ltae.TemporalModel`) share: the model is
resolved once (:func:`.registry.resolve`: a registered id or an ``.onnx`` path), its session comes
from :func:`.onnx_backend.load_session` (device, threads and cache from the run's config), its
inputs and outputs are checked against what the task needs before any pixel is read, and every
inference call stops inside ONNX Runtime when the monitor reports cancellation. An inference error
of ONNX Runtime becomes a :class:`~.errors.ModelError` naming the model parameter.
"""
import os

import numpy as np

from . import onnx_backend
from ..errors import Cancelled, ModelError


def dims(arg):
    """The shape of an ONNX input/output as a list (symbolic dimensions as strings or None)."""
    return list(getattr(arg, "shape", None) or [])


def static_dim(shape, i):
    """Dimension ``i`` of ``shape`` when it is a fixed integer, else None."""
    try:
        v = shape[i]
    except (IndexError, TypeError):
        return None
    return v if isinstance(v, int) and v > 0 else None


class OnnxModel:
    """A loaded ONNX model with its card.

    Attributes: ``path``, ``card`` (dict, ``{}`` for a bare .onnx file), ``id``, ``session``
    (:class:`~.onnx_backend.Session`), ``parameter`` (the name errors are raised under)."""

    #: model-card task(s) this kind of model serves (checked when a card gives one)
    TASKS = ()

    def __init__(self, path, card=None, model_id=None, device="auto", threads=None, parameter="model",
                 config=None):
        self.parameter = parameter
        self._config = config
        self._threads = threads
        self.session = onnx_backend.load_session(path, device, threads, parameter, config=config)
        self.path = self.session.path
        self.card = dict(card or {})
        self.id = model_id or self.card.get("id") or os.path.splitext(os.path.basename(self.path))[0]

    @staticmethod
    def resolve(value, parameter="model", config=None, task=None, cardless=False):
        """``(path, card, id)`` of a registered id or an ``.onnx`` path: the one model resolution
        (:func:`.registry.resolve`; ``cardless`` accepts a bare .onnx file with card ``{}``)."""
        from . import registry

        entry = registry.resolve(value, parameter=parameter, task=task, config=config, cardless=cardless)
        return str(entry.path), dict(entry.card or {}), entry.id

    # -- what the model is -------------------------------------------------------------------
    @property
    def provider(self):
        """The ONNX Runtime execution provider in use (e.g. ``CPUExecutionProvider``)."""
        return self.session.active_provider

    def describe(self):
        return self.session.describe()

    @property
    def inputs(self):
        return self.session.inputs

    @property
    def outputs(self):
        return self.session.outputs

    def check_task(self, what, expected):
        """Refuse a card whose task is not one of this class's :attr:`TASKS` (``what``: e.g. "a SpecTf
        cloud model"; ``expected``: the tensors the task needs, for the message)."""
        task = self.card.get("task")
        if task not in (None, "") and self.TASKS and task not in self.TASKS:
            raise ModelError(f"{self.path} is a '{task}' model, not {what} ({', '.join(self.TASKS)}); {expected}.",
                             self.parameter)

    def check_io(self, inputs, outputs, what, expected):
        """Check the graph: ``inputs`` / ``outputs`` map tensor names to their rank (None = any).
        Raises :class:`ModelError` saying what was ``expected`` and what the model has."""
        ok = all(name in self.inputs and (rank is None or len(dims(self.inputs[name])) == rank)
                 for name, rank in inputs.items())
        ok = ok and all(name in self.outputs and (rank is None or len(dims(self.outputs[name])) == rank)
                        for name, rank in outputs.items())
        if not ok:
            got_in = ", ".join(f"{n} {dims(a)}" for n, a in self.inputs.items())
            got_out = ", ".join(f"{n} {dims(a)}" for n, a in self.outputs.items())
            raise ModelError(f"{self.path} is not {what}: {expected}; it has inputs {got_in} "
                             f"and outputs {got_out}.", self.parameter)

    # -- running -----------------------------------------------------------------------------
    def infer(self, names, feeds, monitor=None, session=None):
        """One inference call, stopped inside ONNX Runtime when ``monitor`` reports cancellation;
        an ONNX Runtime failure becomes a :class:`ModelError` naming the model parameter."""
        session = session or self.session
        try:
            return session.run_cancellable(names, feeds, monitor)
        except Cancelled:
            raise
        except Exception as exc:  # onnxruntime raises its own types
            shapes = " and ".join(f"a {tuple(np.shape(v))}" for v in feeds.values())
            raise ModelError(f"the model failed on {shapes} input ({str(exc).splitlines()[0][:300]}).",
                             self.parameter) from None

    def run_batches(self, names, batched, fixed, batch_size, monitor=None):
        """Run over ``batched`` (name → array, split along axis 0 into ``batch_size`` rows) with the
        ``fixed`` feeds; checks cancellation between batches. Returns the outputs concatenated."""
        n = len(next(iter(batched.values())))
        parts = [[] for _ in names]
        for start in range(0, n, max(1, int(batch_size))):
            if monitor is not None:
                monitor.check()
            feeds = {k: v[start:start + batch_size] for k, v in batched.items()}
            feeds.update(fixed)
            for part, out in zip(parts, self.infer(names, feeds, monitor)):
                part.append(out)
        return [np.concatenate(p) if p else np.empty(0, np.float32) for p in parts]
