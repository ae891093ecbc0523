"""The one streaming loop: windows within a block budget, cancellation, progress, read-cache release.

Every task iterates ``for item in stream(items, monitor, release=datasets, window=...)``: before each
item the monitor is asked whether the user cancelled (:class:`~..errors.Cancelled`), after it the
progress is reported and GDAL's cached blocks of the ``release`` datasets that the scan has moved
past are dropped (otherwise GDAL's cache grows to GDAL_CACHEMAX on large scenes).

:func:`strips` gives full-width windows whose height keeps ``values_per_pixel`` float values per
pixel of one window within the budget (the config's ``block_bytes``), aligned to the output tile
height so a window completes whole rows of compressed tiles.

:func:`overlapped` is the same loop split into three stages, ``read → compute → write``: while
the calling thread computes block k (ONNX Runtime releases the GIL), one reader thread reads and
prepares block k+1 (GDAL and NumPy release it too) and one writer thread writes block k−1. At most
:data:`IN_FLIGHT_BLOCKS` blocks are alive at once (one per stage), so a task sizes its windows with
``budget / IN_FLIGHT_BLOCKS``. The reader owns the input datasets (reads and cache release), the
writer the output datasets, so no GDAL handle is used by two threads. Cancellation is checked in
the calling thread before each block as in :func:`stream`; an error or cancellation in any stage
stops the other two before it is raised in the calling thread, so the caller's
:class:`~.outputs.OutputSet` discards its staged outputs only once nothing writes to them any more.
"""
import queue
import threading

from ..monitor import ProgressReporter, ensure
from ..io.raster_io import block_rows_for, iter_windows, release_read_cache

#: Blocks alive at once in :func:`overlapped`: one being read, one computed, one being written.
IN_FLIGHT_BLOCKS = 3
#: GDAL thread-local configuration options the stage threads inherit from the calling thread
#: (:func:`~..raster_io.pam` sets GDAL_PAM_ENABLED per thread: inputs without, outputs with side files).
_INHERITED_OPTIONS = ("GDAL_PAM_ENABLED",)


def strips(width, height, values_per_pixel, budget_bytes, bytes_per_value=4, align=1):
    """Full-width windows (row-major) of ``budget_bytes`` at most (``values_per_pixel`` values each)."""
    rows = block_rows_for(width, max(1, int(values_per_pixel)), bytes_per_value, int(budget_bytes), align=align)
    return iter_windows(width, height, max(1, rows))


def _pixels(win):
    return int(getattr(win, "xsize", 0) or 0) * int(getattr(win, "ysize", 0) or 0)


def _plan(items, monitor, release, window, span, what):
    """What both loops start from: the items, the datasets to release, each item's window and pixel
    count, whether pixels are counted (else blocks), and the one progress reporter."""
    items = list(items)
    release = [ds for ds in release if ds is not None]
    windows = [window(item) if window is not None else item for item in items]
    sizes = [_pixels(w) for w in windows]
    counted = sum(sizes) > 0
    reporter = ProgressReporter(monitor, sum(sizes) if counted else len(items), len(items),
                                what=what if counted else "blocks", span=span)
    return items, release, windows, sizes, counted, reporter


def stream(items, monitor=None, release=(), window=None, span=(0.0, 1.0), what="pixels"):
    """Yield ``items`` one by one with cancellation, progress and cache release.

    ``release``: datasets (None entries ignored) whose read cache is released after each item;
    ``window``: function item → the window read for it (default: the item itself); ``span``:
    the part of the total progress (start, end) this loop covers. Progress goes through one
    :class:`~..monitor.ProgressReporter`: on long runs the log gets blocks done, pixels/s and ETA."""
    monitor = ensure(monitor)
    items, release, windows, sizes, counted, reporter = _plan(items, monitor, release, window, span, what)
    for item, win, size in zip(items, windows, sizes):
        monitor.check()
        yield item
        if win is not None:
            for ds in release:
                release_read_cache(ds, win)
        reporter.block(size if counted else 1)
    reporter.finish()
    monitor.check()


class _Failed:
    """An exception raised in a stage thread, carried to the calling thread."""

    def __init__(self, exc):
        self.exc = exc


_END = object()


def _gdal_options():
    try:
        from osgeo import gdal
    except ImportError:
        return {}
    return {key: gdal.GetThreadLocalConfigOption(key, None) for key in _INHERITED_OPTIONS}


def _set_gdal_options(options):
    if options:
        from osgeo import gdal

        for key, value in options.items():
            gdal.SetThreadLocalConfigOption(key, value)


def _put(q, value, stop):
    """Put ``value`` into the bounded queue ``q`` unless ``stop`` is set meanwhile (True if put)."""
    while not stop.is_set():
        try:
            q.put(value, timeout=0.05)
            return True
        except queue.Full:
            continue
    return False


def overlapped(items, read, compute, write, monitor=None, release=(), window=None, span=(0.0, 1.0),
               what="pixels", overlap=True):
    """Run ``read(item) → compute(item, data, advance) → write(item, result)`` over ``items``.

    ``read`` runs in a reader thread one block ahead (it may also prepare the data: TOA conversion,
    valid-pixel selection), ``compute`` in the calling thread, ``write`` in a writer thread one
    block behind; ``advance(fraction)`` reports progress within the block being computed.
    ``release``, ``window``, ``span`` and ``what`` as in :func:`stream` (the read cache of the
    ``release`` datasets is dropped by the reader after each block). With ``overlap=False`` the
    three stages run one after the other in the calling thread (same results; tests compare both).
    Exceptions of any stage (also :class:`~..errors.Cancelled`) are raised here after both threads
    have stopped."""
    monitor = ensure(monitor)
    items, release, windows, sizes, counted, reporter = _plan(items, monitor, release, window, span, what)

    def advancer(size):
        done = [0]

        def advance(fraction):
            step = int(round(max(0.0, min(1.0, float(fraction))) * size)) - done[0]
            if step > 0:
                done[0] += step
                reporter.advance(step)
        return advance, done

    def read_one(item, win):
        data = read(item)
        if win is not None:
            for ds in release:
                release_read_cache(ds, win)
        return data

    def compute_one(item, data, size):
        advance, done = advancer(size if counted else 0)
        result = compute(item, data, advance)
        reporter.block((size - done[0]) if counted else 1)
        return result

    if not overlap:
        for item, win, size in zip(items, windows, sizes):
            monitor.check()
            result = compute_one(item, read_one(item, win), size)
            write(item, result)
        reporter.finish()
        monitor.check()
        return

    options = _gdal_options()
    stop = threading.Event()
    # a slot per input block alive: the one being computed and the one being read (prefetch of 1)
    slots = threading.Semaphore(2)
    ready = queue.Queue(maxsize=1)
    pending = queue.Queue(maxsize=1)
    write_error = []

    def reader():
        _set_gdal_options(options)
        try:
            for item, win in zip(items, windows):
                while not slots.acquire(timeout=0.05):
                    if stop.is_set():
                        return
                if stop.is_set():
                    return
                if not _put(ready, (item, read_one(item, win)), stop):
                    return
            _put(ready, _END, stop)
        except BaseException as exc:  # noqa: BLE001 - carried to the calling thread
            _put(ready, _Failed(exc), stop)

    def writer():
        _set_gdal_options(options)
        while True:
            try:
                job = pending.get(timeout=0.05)
            except queue.Empty:
                if stop.is_set():
                    return
                continue
            if job is _END:
                return
            if write_error or stop.is_set():
                continue  # drain: nothing more is written after a failure
            try:
                write(*job)
            except BaseException as exc:  # noqa: BLE001 - carried to the calling thread
                write_error.append(exc)
                stop.set()

    threads = [threading.Thread(target=reader, name="spectraltf-read", daemon=True),
               threading.Thread(target=writer, name="spectraltf-write", daemon=True)]
    for t in threads:
        t.start()
    try:
        for size in sizes:
            monitor.check()
            while True:
                if write_error:
                    raise write_error[0]
                try:
                    job = ready.get(timeout=0.05)
                    break
                except queue.Empty:
                    continue
            if isinstance(job, _Failed):
                raise job.exc
            item, data = job
            result = compute_one(item, data, size)
            del data, job
            slots.release()
            if write_error:
                raise write_error[0]
            while True:
                if write_error:
                    raise write_error[0]
                try:
                    pending.put((item, result), timeout=0.05)
                    break
                except queue.Full:
                    continue
            del result
        pending.put(_END)  # the writer finishes the queued blocks first
        threads[1].join()
        if write_error:
            raise write_error[0]
    finally:
        stop.set()  # the threads finish the block they are on, then leave
        for t in threads:
            t.join()
    reporter.finish()
    monitor.check()
