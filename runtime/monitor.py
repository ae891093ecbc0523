"""Progress, logging and cancellation interface between the runtime core and its callers.

Runtime functions take a ``monitor`` argument. The Processing adapters pass a
:class:`FeedbackMonitor`-like object wrapping ``QgsProcessingFeedback``; scripts and tests use
:class:`Monitor` (prints nothing, never cancels) or :class:`PrintMonitor`.
"""
import sys

from .errors import Cancelled


class Monitor:
    """No-op monitor. Subclasses override :meth:`info`, :meth:`warn`, :meth:`progress`, :meth:`cancelled`."""

    def info(self, message):
        pass

    def warn(self, message):
        pass

    def progress(self, fraction):
        """Report progress as a fraction in [0, 1]."""

    def cancelled(self):
        return False

    def check(self):
        """Raise :class:`Cancelled` if the user asked to stop (call once per block)."""
        if self.cancelled():
            raise Cancelled()


class PrintMonitor(Monitor):
    """Monitor that writes messages to stderr (command-line use)."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr

    def info(self, message):
        print(message, file=self.stream)

    def warn(self, message):
        print(f"WARNING: {message}", file=self.stream)


class RecordingMonitor(Monitor):
    """Monitor that records messages and progress (tests); can cancel after ``cancel_after`` checks."""

    def __init__(self, cancel_after=None):
        self.infos, self.warnings, self.fractions = [], [], []
        self.cancel_after = cancel_after
        self._checks = 0

    def info(self, message):
        self.infos.append(message)

    def warn(self, message):
        self.warnings.append(message)

    def progress(self, fraction):
        self.fractions.append(fraction)

    def cancelled(self):
        self._checks += 1
        return self.cancel_after is not None and self._checks > self.cancel_after


def ensure(monitor):
    return monitor if monitor is not None else Monitor()
