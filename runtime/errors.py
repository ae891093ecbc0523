"""Errors raised by the runtime core.

:class:`InputError` is a problem the user can fix; its message names the parameter and what was
expected, so the Processing adapters pass it on verbatim (as ``QgsProcessingException``).
"""


class SpectralError(Exception):
    """Base class for anticipated, user-facing errors."""

    def __init__(self, message, parameter=None):
        self.parameter = parameter
        self.reason = message  # without the parameter prefix (for renaming, see parameters.Task)
        if parameter and not message.startswith(parameter):
            message = f"{parameter}: {message}"
        super().__init__(message)


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
