"""The streaming pipeline every task runs on (TOA, SpecTf, segmentation, L-TAE, GLT).

- :mod:`.outputs`: :class:`OutputSet` — outputs declared and checked before any work, staged in a
  hidden folder, committed together (data, metadata and style) or not at all;
  :mod:`.writer` (:class:`RasterWriter`, one staged raster, file-system errors as one line) and
  :mod:`.staging` (the hidden folders, stale ones of killed runs removed; small text outputs).
- :mod:`.stream`: :func:`stream` / :func:`strips` — the one loop over windows with the block
  budget, cancellation, progress and GDAL read-cache release.
- :mod:`.formats`: the whitelist of writable raster formats and the files each one occupies.
"""
from .formats import driver_for, qml_path_for
from .outputs import OutputSet
from .staging import clean_stale_staging, write_text_atomically
from .writer import OutputError, RasterWriter
from .stream import stream, strips

__all__ = ["OutputSet", "OutputError", "RasterWriter", "clean_stale_staging", "stream", "strips",
           "driver_for", "qml_path_for", "write_array", "write_text_atomically"]


def write_array(path, array, like=None, grid=None, nodata=None, dtype=None, parameter="output", config=None):
    """Write a whole (bands, rows, cols) array at once through an :class:`OutputSet` (small rasters,
    tests and fixtures). Returns ``path``."""
    import numpy as np

    from ..io.raster_io import Grid, Window

    array = np.asarray(array)
    if array.ndim == 2:
        array = array[None]
    if grid is None:
        grid = Grid.of(like) if like is not None else Grid(array.shape[2], array.shape[1])
    outs = OutputSet(config)
    outs.add_output(parameter, path)
    with outs:
        w = outs.create(parameter, grid, array.shape[0], dtype or array.dtype, nodata)
        w.write(Window(0, 0, grid.width, grid.height), array)
    return path
