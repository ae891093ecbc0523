"""Progress, logging and cancellation interface between the runtime core and its callers.

Runtime functions take a ``monitor`` argument. The Processing adapters pass a
:class:`FeedbackMonitor`-like object wrapping ``QgsProcessingFeedback``; scripts and tests use
:class:`Monitor` (prints nothing, never cancels) or :class:`PrintMonitor`.
"""
import sys
import time

from .errors import Cancelled, render


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
        print(render(message), file=self.stream)

    def warn(self, message):
        print(f"WARNING: {render(message)}", file=self.stream)


class RecordingMonitor(Monitor):
    """Monitor that records messages and progress (tests); can cancel after ``cancel_after`` checks."""

    def __init__(self, cancel_after=None):
        self.infos, self.warnings, self.fractions = [], [], []
        self.cancel_after = cancel_after
        self._checks = 0

    def info(self, message):
        self.infos.append(render(message))

    def warn(self, message):
        self.warnings.append(render(message))

    def progress(self, fraction):
        self.fractions.append(fraction)

    def cancelled(self):
        self._checks += 1
        return self.cancel_after is not None and self._checks > self.cancel_after


class RenamingMonitor(Monitor):
    """Passes everything on to ``monitor`` (None: a no-op one), with the ``«arg»`` markers of log
    messages rendered by ``names`` (runtime argument → parameter name, see
    :meth:`.parameters.Task.run`); other attributes are the wrapped monitor's."""

    def __init__(self, monitor, names=None):
        self.monitor = ensure(monitor)
        self.names = dict(names or {})

    def info(self, message):
        self.monitor.info(render(message, self.names))

    def warn(self, message):
        self.monitor.warn(render(message, self.names))

    def progress(self, fraction):
        self.monitor.progress(fraction)

    def cancelled(self):
        return self.monitor.cancelled()

    def check(self):
        self.monitor.check()

    def __getattr__(self, name):
        return getattr(self.__dict__.get("monitor") or Monitor(), name)


def ensure(monitor):
    return monitor if monitor is not None else Monitor()


def _duration(seconds):
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class ProgressReporter:
    """Progress bar plus a log line every ``interval`` seconds on long runs: blocks done, pixels/s, ETA.

    Call :meth:`block` once per block (strip, tile row) with the pixels it held (and :meth:`advance`
    for progress inside a long block); the streaming loops use it. Short runs (finished before the first interval) log nothing extra; a long
    one ends with a summary line. ``clock`` is injectable for tests."""

    def __init__(self, monitor, total_pixels, total_blocks=None, what="pixels", interval=10.0, clock=None,
                 span=(0.0, 1.0)):
        self.monitor = ensure(monitor)
        self.span = span
        self.total = max(1, int(total_pixels))
        self.total_blocks = total_blocks
        self.what = what
        self.interval = float(interval)
        self.clock = clock or time.monotonic
        self.start = self.last = self.clock()
        self.done = 0
        self.blocks = 0
        self.logged = 0

    def line(self):
        elapsed = max(1e-9, self.clock() - self.start)
        rate = self.done / elapsed
        blocks = f"{self.blocks}/{self.total_blocks}" if self.total_blocks else f"{self.blocks}"
        pct = 100.0 * self.done / self.total
        eta = _duration((self.total - self.done) / rate) if rate > 0 and self.done < self.total else "0 s"
        return (f"Progress: block {blocks}, {self.done:,} of {self.total:,} {self.what} ({pct:.0f} %), "
                f"{rate:,.0f} {self.what}/s, ETA {eta}")

    def advance(self, pixels):
        """``pixels`` more pixels done (within a block, e.g. per inference batch)."""
        self.done = min(self.total, self.done + int(pixels))
        lo, hi = self.span
        self.monitor.progress(lo + (hi - lo) * self.done / self.total)
        now = self.clock()
        if now - self.last >= self.interval:
            self.last = now
            self.logged += 1
            self.monitor.info(self.line())

    def block(self, pixels=0):
        """One block finished, holding ``pixels`` pixels not yet counted with :meth:`advance`."""
        self.blocks += 1
        self.advance(pixels)

    def finish(self):
        """Summary line when the run lasted long enough to have logged progress."""
        if self.logged:
            elapsed = self.clock() - self.start
            self.monitor.info(f"Done: {self.blocks} blocks, {self.done:,} {self.what} in {_duration(elapsed)} "
                              f"({self.done / max(elapsed, 1e-9):,.0f} {self.what}/s)")
