"""The one streaming loop: windows within a block budget, cancellation, progress, read-cache release.

Every task iterates ``for item in stream(items, monitor, release=datasets, window=...)``: before each
item the monitor is asked whether the user cancelled (:class:`~..errors.Cancelled`), after it the
progress is reported and GDAL's cached blocks of the ``release`` datasets that the scan has moved
past are dropped (otherwise GDAL's cache grows to GDAL_CACHEMAX on large scenes).

:func:`strips` gives full-width windows whose height keeps ``values_per_pixel`` float values per
pixel of one window within the budget (the config's ``block_bytes``), aligned to the output tile
height so a window completes whole rows of compressed tiles.
"""
from ..monitor import ProgressReporter, ensure
from ..io.raster_io import block_rows_for, iter_windows, release_read_cache


def strips(width, height, values_per_pixel, budget_bytes, bytes_per_value=4, align=1):
    """Full-width windows (row-major) of ``budget_bytes`` at most (``values_per_pixel`` values each)."""
    rows = block_rows_for(width, max(1, int(values_per_pixel)), bytes_per_value, int(budget_bytes), align=align)
    return iter_windows(width, height, max(1, rows))


def _pixels(win):
    return int(getattr(win, "xsize", 0) or 0) * int(getattr(win, "ysize", 0) or 0)


def stream(items, monitor=None, release=(), window=None, span=(0.0, 1.0), what="pixels"):
    """Yield ``items`` one by one with cancellation, progress and cache release.

    ``release``: datasets (None entries ignored) whose read cache is released after each item;
    ``window``: function item → the window read for it (default: the item itself); ``span``:
    the part of the total progress (start, end) this loop covers. Progress goes through one
    :class:`~..monitor.ProgressReporter`: on long runs the log gets blocks done, pixels/s and ETA."""
    monitor = ensure(monitor)
    items = list(items)
    release = [ds for ds in release if ds is not None]
    windows = [window(item) if window is not None else item for item in items]
    sizes = [_pixels(w) for w in windows]
    counted = sum(sizes) > 0
    reporter = ProgressReporter(monitor, sum(sizes) if counted else len(items), len(items),
                                what=what if counted else "blocks", span=span)
    for item, win, size in zip(items, windows, sizes):
        monitor.check()
        yield item
        if win is not None:
            for ds in release:
                release_read_cache(ds, win)
        reporter.block(size if counted else 1)
    reporter.finish()
    monitor.check()
