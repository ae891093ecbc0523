"""Errors raised by the runtime core.

:class:`InputError` is a problem the user can fix; its message names the parameter and what was
expected, so the Processing adapters pass it on verbatim (as ``QgsProcessingException``).

The runtime names parameters by its own argument names (the keywords of :mod:`.tasks`:
``observation``, ``solar_zenith``, ``mask``), never by Processing names. ``parameter`` is the
argument the error is about; prose that mentions another parameter writes it as a marker,
``«solar_zenith»`` (``ref("solar_zenith")`` builds one from a variable). The message renders a
marker as the argument name; :meth:`SpectralError.renamed` (what
:meth:`.parameters.Task.rename_error` calls) renders the parameter and every marker with the task's
table instead (``solar_zenith`` → ``SOLAR_ZENITH``), so the same error reads right from the runtime
API and from ``qgis_process``. Monitor messages use the same markers (:func:`render`).

Why not ``{solar_zenith}``: messages are f-strings, and a runtime function usually has a local
variable of that very name (``f"give {solar_zenith}"`` would print the value); braces also occur in
paths and JSON. ``«»`` are inert in f-strings and do not occur in the messages' values.
"""
import re

#: A reference to a parameter by its runtime argument name.
MARKER = re.compile(r"«([a-z][a-z0-9_]*)»")


def ref(name):
    """The marker for argument ``name`` (a name that is not an argument, e.g. an already renamed
    Processing name, is returned as it is)."""
    name = str(name)
    return f"«{name}»" if re.fullmatch(r"[a-z][a-z0-9_]*", name) else name


def render(text, names=None):
    """``text`` with every marker replaced by ``names[argument]`` (default: the argument itself)."""
    names = names or {}
    return MARKER.sub(lambda m: str(names.get(m.group(1), m.group(1))), str(text))


def _rename_markers(text, names):
    """``text`` with the markers of the arguments in ``names`` replaced, other markers kept."""
    return MARKER.sub(lambda m: str(names[m.group(1)]) if m.group(1) in names else m.group(0), str(text))


class SpectralError(Exception):
    """Base class for anticipated, user-facing errors (``parameter``: the argument it is about)."""

    def __init__(self, message, parameter=None):
        self.parameter = parameter
        self.template = str(message)  # markers kept (see renamed)
        self.reason = render(message)  # without the parameter prefix
        text = self.reason
        if parameter and not text.startswith(f"{parameter}:"):
            text = f"{parameter}: {text}"
        super().__init__(text)

    def renamed(self, names):
        """A copy of this error (same class) naming ``names.get(arg, arg)`` for its parameter and for
        every marker; the error itself when that changes nothing (so renaming twice is harmless)."""
        parameter = names.get(self.parameter, self.parameter) if self.parameter else self.parameter
        template = _rename_markers(getattr(self, "template", str(self)), names)
        if parameter == self.parameter and template == getattr(self, "template", None):
            return self
        copy = type(self).__new__(type(self))
        copy.__dict__.update(self.__dict__)
        SpectralError.__init__(copy, template, parameter)
        copy.__cause__, copy.__context__ = self.__cause__, self.__context__
        copy.__traceback__ = self.__traceback__
        return copy


class InputError(SpectralError):
    """A parameter value or input file is unusable (message says why and what is expected)."""


class DependencyError(SpectralError):
    """An optional runtime dependency (e.g. onnxruntime) is missing; message says how to install it."""


class ModelError(SpectralError):
    """A model file or model card is unusable for the requested task."""


class Cancelled(Exception):
    """The user cancelled the run; partial outputs have been removed."""

    def __init__(self, message="Cancelled by the user; no output was written."):
        super().__init__(message)
