"""One output set for every task: checked before any work, staged, committed all together or not at all.

Life of a run::

    outs = OutputSet(config, monitor)
    outs.add_input("INPUT", ds)                 # files of the inputs (data + side files)
    outs.add_output("OUTPUT", path)             # refused now if it is an input, a side file of one,
    outs.add_output("OUTPUT_PROBABILITY", p)    #   another output, a non-writable format/folder/file
    ...cheap checks, model loading...
    with outs:                                  # removes stale temporaries of killed runs, stages
        w = outs.create("OUTPUT", grid, 1, np.uint8, 255)
        ...stream windows into w...
        styles.write_class_qml(outs.style_path("OUTPUT"), entries)
    # leaving the block without an exception: every raster is closed and checked, then every file
    # (data, header, .aux.xml, .qml) of every output is moved into place; otherwise nothing is.

Staging: each destination folder gets one hidden folder ``.spectraltf-partial-<token>`` (same file
system, so the final moves are renames) holding a small ``owner`` file (process id and start time).
A raster being written is never under its final name; a run killed with ``kill -9`` leaves only that
hidden folder, which the next run writing into the same folder removes once its owner is gone.

Commit: existing destination files are first moved aside into the staging folder (so an old
output survives any failure of the commit itself), the new files moved in, the old ones deleted.
Any failure restores the old files and deletes everything this run created.

Errors: disk full, permission, read-only file system and immutable files become one
:class:`~..errors.InputError` line naming the output's parameter.
"""
import errno
import os
import shutil
import sys
import time
import uuid

import numpy as np

from ..errors import InputError
from ..monitor import ensure
from . import formats

STAGING_PREFIX = ".spectraltf-partial-"
#: Staging folders without a readable owner older than this are removed as stale (seconds).
STALE_UNOWNED_SECONDS = 6 * 3600

_FS_IOC_GETFLAGS = 0x80086601
_FS_IMMUTABLE_FL = 0x00000010
_FS_APPEND_FL = 0x00000020


class OutputError(InputError):
    """An output cannot be written (disk full, permission, immutable file, format)."""


# ---------------------------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------------------------
def _identity(path):
    """(device, inode) of an existing file, else its normalised real path."""
    try:
        st = os.stat(path)
        return ("inode", st.st_dev, st.st_ino)
    except OSError:
        return ("path", os.path.normcase(os.path.realpath(path)))


def _keys(path):
    keys = {("path", os.path.normcase(os.path.realpath(path))), ("path", os.path.normcase(os.path.abspath(path)))}
    ident = _identity(path)
    keys.add(ident)
    return keys


def _process_start(pid):
    """Start time of process ``pid`` in clock ticks since boot (Linux), else None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode("ascii", "replace")
        return data.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(pid, start):
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError, OverflowError):
        return True
    if start and _process_start(pid) not in (None, start):
        return False  # the pid was reused by another process
    return True


def immutable(path):
    """True when ``path`` carries the immutable or append-only attribute (``chattr +i`` / ``+a``)."""
    try:
        import fcntl
        import struct

        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0))
    except (ImportError, OSError):
        return False
    try:
        buf = fcntl.ioctl(fd, _FS_IOC_GETFLAGS, struct.pack("l", 0))
        flags = struct.unpack("l", buf)[0]
        return bool(flags & (_FS_IMMUTABLE_FL | _FS_APPEND_FL))
    except OSError:
        return False
    finally:
        os.close(fd)


def describe_os_error(exc, path):
    """A short phrase for an OSError (or a GDAL RuntimeError) while writing ``path``."""
    text = str(exc)
    folder = os.path.dirname(os.path.abspath(path))
    code = getattr(exc, "errno", None)
    if code in (errno.ENOSPC, errno.EDQUOT) or "No space left" in text or "quota" in text.lower() or \
            _disk_full(folder):
        return f"the disk holding {folder} is full (no space left); free some space or choose another folder"
    if code == errno.EROFS or "Read-only file system" in text:
        return f"{folder} is on a read-only file system; choose another folder"
    if code in (errno.EPERM, errno.EACCES) or "Permission denied" in text or "not permitted" in text:
        if os.path.exists(path) and immutable(path):
            return f"{path} exists and is immutable (chattr +i); remove the attribute or choose another name"
        return f"permission denied writing {path}; choose a folder you can write to"
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return f"cannot write {path} ({first})"


def _disk_full(folder, minimum=64 * 1024):
    try:
        st = os.statvfs(folder)
    except (OSError, AttributeError):
        return False
    return st.f_bavail * st.f_frsize < minimum


def _remove(path):
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        elif os.path.lexists(path):
            os.remove(path)
    except OSError:
        pass


def clean_stale_staging(folder):
    """Remove staging folders of runs that are gone (killed, crashed). Returns the paths removed."""
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        if not name.startswith(STAGING_PREFIX):
            continue
        path = os.path.join(folder, name)
        if not os.path.isdir(path) or os.path.islink(path):
            continue
        try:
            with open(os.path.join(path, "owner"), encoding="ascii") as f:
                pid, _, start = f.read().strip().partition(" ")
            stale = not _alive(pid, start)
        except (OSError, ValueError):
            try:
                stale = time.time() - os.stat(path).st_mtime > STALE_UNOWNED_SECONDS
            except OSError:
                stale = False
        if stale:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


# ---------------------------------------------------------------------------------------------
# the writer of one raster
# ---------------------------------------------------------------------------------------------
class RasterWriter:
    """Writes one raster window by window into its staging path (created by :meth:`OutputSet.create`).

    ``ds`` is the GDAL dataset (for metadata, colour tables); ``tile`` the GeoTIFF tile height a
    full-width block should be a multiple of."""

    def __init__(self, output, grid, bands, dtype, nodata, tile, compression):
        from osgeo import gdal

        from ..raster_io import _type_maps

        self.output = output
        self.parameter = output.parameter
        self.path = output.staged
        self.grid = grid
        self.bands = int(bands)
        self.dtype = np.dtype(dtype)
        self.nodata = nodata
        self.tile = int(tile)
        self.tile_width = max(self.tile, 256)
        to_gdal, _ = _type_maps()
        options = formats.creation_options(output.driver, output.path, self.dtype, self.bands, self.tile,
                                           self.tile_width, compression)
        try:
            self.ds = gdal.GetDriverByName(output.driver).Create(
                self.path, grid.width, grid.height, self.bands, to_gdal[self.dtype], options)
        except RuntimeError as exc:
            raise self._error(exc) from None
        if self.ds is None:
            raise self._error(RuntimeError(gdal.GetLastErrorMsg() or "GDAL could not create the file"))
        if grid.geotransform is not None:
            self.ds.SetGeoTransform(grid.geotransform)
        if grid.projection:
            self.ds.SetProjection(grid.projection)
        if grid.gcps:
            self.ds.SetGCPs(grid.gcps, grid.gcp_projection)
        if nodata is not None:
            for i in range(self.bands):
                self.ds.GetRasterBand(i + 1).SetNoDataValue(float(nodata))

    def _error(self, exc):
        return OutputError(describe_os_error(exc, self.output.path), self.parameter)

    def write(self, window, array):
        """Write ``array`` (bands, rows, cols), or (rows, cols) for one band, at ``window``."""
        array = np.asarray(array)
        if array.ndim == 2:
            array = array[None]
        if array.shape[0] != self.bands:
            raise ValueError(f"expected {self.bands} bands, got {array.shape[0]}")
        try:
            for i in range(self.bands):
                self.ds.GetRasterBand(i + 1).WriteArray(array[i].astype(self.dtype, copy=False),
                                                        window.xoff, window.yoff)
            bottom = window.yoff + window.ysize
            if window.xoff + window.xsize >= self.grid.width and (bottom % self.tile == 0
                                                                  or bottom >= self.grid.height):
                # a row of tiles is complete: compress it to disk and free it from GDAL's block cache
                self.ds.FlushCache()
        except RuntimeError as exc:
            raise self._error(exc) from None

    def band(self, index):
        """The GDAL band (1-based) for descriptions, metadata or colour tables."""
        return self.ds.GetRasterBand(index)

    def set_band_descriptions(self, names):
        for i, name in enumerate(names):
            self.ds.GetRasterBand(i + 1).SetDescription(str(name))

    def set_metadata(self, metadata, domain=""):
        self.ds.SetMetadata({str(k): str(v) for k, v in metadata.items()}, domain)

    def close(self):
        """Flush and close; a write error (also one GDAL reports while closing) raises OutputError."""
        if self.ds is None:
            return
        captured = []
        previous = sys.unraisablehook
        sys.unraisablehook = lambda unraisable: captured.append(unraisable.exc_value)
        try:
            try:
                self.ds.FlushCache()
            except RuntimeError as exc:
                captured.append(exc)
            self.ds = None  # GDAL writes headers/directories here; errors arrive as "unraisable"
        finally:
            sys.unraisablehook = previous
        if captured:
            raise self._error(captured[0])

    def discard(self):
        """Close without reporting errors (the staged files are deleted anyway)."""
        if self.ds is None:
            return
        previous = sys.unraisablehook
        sys.unraisablehook = lambda unraisable: None
        try:
            self.ds = None
        finally:
            sys.unraisablehook = previous

    def verify(self):
        """Re-open the closed file (headers complete, size and bands right) or raise OutputError."""
        from osgeo import gdal

        try:
            from ..raster_io import read_only

            with read_only():
                ds = gdal.Open(self.path, gdal.GA_ReadOnly)
            ok = ds is not None and (ds.RasterXSize, ds.RasterYSize, ds.RasterCount) == (
                self.grid.width, self.grid.height, self.bands)
            ds = None
        except RuntimeError as exc:
            raise self._error(exc) from None
        if not ok:
            raise self._error(RuntimeError("the written file does not read back as the raster written"))
        if self.output.driver == "ENVI":
            expected = self.grid.width * self.grid.height * self.bands * self.dtype.itemsize
            if os.path.getsize(self.path) < expected:
                raise self._error(RuntimeError("the data file is shorter than the raster written"))


# ---------------------------------------------------------------------------------------------
# the output set
# ---------------------------------------------------------------------------------------------
class Output:
    """One declared output: Processing ``parameter``, destination ``path``, ``driver``, staging paths."""

    def __init__(self, parameter, path, driver):
        self.parameter = parameter
        self.path = path
        self.driver = driver
        self.folder = os.path.dirname(path)
        self.files = formats.output_files(path, driver)
        self.qml = formats.qml_path_for(path)
        self.stage_dir = None
        self.writer = None
        self.style_written = False

    @property
    def staged(self):
        return os.path.join(self.stage_dir, os.path.basename(self.path))

    @property
    def staged_qml(self):
        return os.path.join(self.stage_dir, os.path.basename(self.qml))


class OutputSet:
    """The outputs of one run (see the module docstring)."""

    def __init__(self, config=None, monitor=None):
        from ..config import ensure_config

        self.config = ensure_config(config)
        self.monitor = ensure(monitor)
        self.outputs = {}
        self._input_files = {}  # identity key -> (parameter, path, what)
        self._staging = {}      # destination folder -> staging folder
        self._entered = False
        self._token = uuid.uuid4().hex[:12]

    # -- declaration (before any work) -----------------------------------------------------------
    def add_input(self, parameter, source):
        """Record the files of an input (a GDAL dataset, a path, or a list of either)."""
        if source is None or source == "":
            return
        if isinstance(source, (list, tuple)):
            for item in source:
                self.add_input(parameter, item)
            return
        files = []
        if hasattr(source, "GetFileList"):
            files += [f for f in (source.GetFileList() or []) if not str(f).startswith("/vsi")]
            description = source.GetDescription() or ""
        else:
            description = str(source)
        local = _local_path(description)
        if local:
            files.append(local)
        main = files[0] if files else None
        for f in list(files):
            for side in formats.sidecars_of_input(f):
                if os.path.lexists(side):
                    files.append(side)
        for f in files:
            what = "the file" if f == main or f == local else "a side file"
            for key in _keys(f):
                self._input_files.setdefault(key, (parameter, f, what))
        for out in self.outputs.values():
            self._check_inputs(out)

    def add_output(self, parameter, path):
        """Declare an output; raises :class:`InputError` naming ``parameter`` when it cannot be written
        or would overwrite an input, a side file of an input or another output. Returns its path."""
        if path is None or str(path).strip() == "":
            raise OutputError("no output path given.", parameter)
        path = str(path)
        if path.startswith("/vsi"):
            raise OutputError(f"{path} is a GDAL virtual path; outputs must be ordinary files.", parameter)
        path = os.path.abspath(os.path.expanduser(path))
        driver = formats.driver_for(path, parameter)
        folder = os.path.dirname(path)
        if not os.path.isdir(folder):
            what = "is a file, not a folder" if os.path.exists(folder) else "does not exist"
            raise OutputError(f"the folder {folder} {what}; choose an existing folder for {os.path.basename(path)}.",
                              parameter)
        if os.path.isdir(path):
            raise OutputError(f"{path} is a folder; expected a raster file name such as result.tif.", parameter)
        if not os.access(folder, os.W_OK | os.X_OK):
            raise OutputError(f"the folder {folder} is not writable; choose another location for "
                              f"{os.path.basename(path)}.", parameter)
        out = Output(parameter, path, driver)
        self._check_inputs(out)
        mine = {k for f in out.files + [out.qml] for k in _keys(f)}
        for other in self.outputs.values():
            theirs = {k for f in other.files + [other.qml] for k in _keys(f)}
            if mine & theirs:
                same = _keys(path) & _keys(other.path)
                detail = "the same file as" if same else "files (side file or style) that clash with"
                raise OutputError(f"{path} is {detail} {other.parameter} ({other.path}); give each output its "
                                  "own file name.", parameter)
        for f in out.files + [out.qml]:
            if os.path.lexists(f):
                if not os.path.isfile(f) or os.path.islink(f) and not os.path.exists(f):
                    if os.path.isdir(f):
                        raise OutputError(f"{f} is a folder in the way of the output; choose another name.", parameter)
                if os.path.isfile(f) and immutable(f):
                    raise OutputError(f"{f} exists and is immutable or append-only (chattr +i/+a), so it cannot "
                                      "be replaced; remove the attribute or choose another name.", parameter)
        self.outputs[parameter] = out
        return path

    def _check_inputs(self, out):
        """Refuse ``out`` when one of its files is an input or a side file of one."""
        for f in out.files + [out.qml]:
            for key in _keys(f):
                hit = self._input_files.get(key)
                if hit:
                    other, other_path, what = hit
                    if f == out.path and what == "the file":
                        raise OutputError(f"{out.path} is the input file of {other}; writing it would destroy the "
                                          "input. Choose another output file name.", out.parameter)
                    raise OutputError(f"writing {os.path.basename(out.path)} would overwrite {other_path}, {what} "
                                      f"of the input {other}; choose another output file name.", out.parameter)

    def path(self, parameter):
        return self.outputs[parameter].path

    # -- staging and writing ---------------------------------------------------------------------
    def __enter__(self):
        from ..raster_io import pam

        # outputs keep PAM-only metadata (GeoTIFF category names) in their .aux.xml, even where the
        # process turned side files off for inputs (headless runs, see the provider)
        self._pam = pam(True)
        self._pam.__enter__()
        try:
            return self._stage()
        except BaseException:
            self._pam.__exit__(None, None, None)
            raise

    def _stage(self):
        for folder in sorted({o.folder for o in self.outputs.values()}):
            for stale in clean_stale_staging(folder):
                self.monitor.info(f"Removed the temporary files of an earlier interrupted run: {stale}")
            stage = os.path.join(folder, f"{STAGING_PREFIX}{self._token}")
            try:
                os.mkdir(stage)
                with open(os.path.join(stage, "owner"), "w", encoding="ascii") as f:
                    f.write(f"{os.getpid()} {_process_start(os.getpid()) or ''}\n")
            except OSError as exc:
                self._cleanup()
                param = next(o.parameter for o in self.outputs.values() if o.folder == folder)
                raise OutputError(describe_os_error(exc, os.path.join(folder, "x")), param) from None
            self._staging[folder] = stage
        for i, out in enumerate(self.outputs.values()):
            out.stage_dir = os.path.join(self._staging[out.folder], str(i))
            os.mkdir(out.stage_dir)
        self._entered = True
        return self

    def create(self, parameter, grid, bands, dtype=np.float32, nodata=None, tile=None):
        """A :class:`RasterWriter` for the declared output ``parameter`` (inside the ``with`` block)."""
        from ..raster_io import tile_size_for

        if not self._entered:
            raise RuntimeError("OutputSet.create() must be called inside 'with outputs:'")
        out = self.outputs[parameter]
        tile = tile or tile_size_for(grid.width, int(bands), np.dtype(dtype).itemsize, self.config.block_bytes)
        out.writer = RasterWriter(out, grid, bands, dtype, nodata, tile, self.config.compression)
        return out.writer

    def style_path(self, parameter):
        """Where to write the ``.qml`` style of output ``parameter`` (moved into place with it)."""
        out = self.outputs[parameter]
        out.style_written = True
        return out.staged_qml

    def __contains__(self, parameter):
        return parameter in self.outputs

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            for out in self.outputs.values():
                if out.writer is not None:
                    out.writer.discard()
            self._cleanup()
            return False
        try:
            for out in self.outputs.values():
                if out.writer is None:
                    raise RuntimeError(f"output {out.parameter} was declared but never written")
                out.writer.close()
                out.writer.verify()
            self._commit()
        except BaseException:
            for out in self.outputs.values():
                if out.writer is not None:
                    out.writer.discard()
            self._cleanup()
            raise
        self._cleanup()
        return False

    def _commit(self):
        """Move old destination files aside, move every staged file in; undo everything on failure."""
        backups, moved = [], []
        try:
            for out in self.outputs.values():
                replaced = out.files + ([out.qml] if out.style_written else [])
                for i, f in enumerate(replaced):
                    if os.path.lexists(f):
                        aside = os.path.join(self._staging[out.folder], f"old-{len(backups)}")
                        try:
                            os.replace(f, aside)
                        except OSError as exc:
                            raise OutputError(describe_os_error(exc, f), out.parameter) from None
                        backups.append((aside, f))
            for out in self.outputs.values():
                for name in sorted(os.listdir(out.stage_dir)):
                    if name == os.path.basename(out.qml) and not out.style_written:
                        continue
                    target = os.path.join(out.folder, name)
                    try:
                        os.replace(os.path.join(out.stage_dir, name), target)
                    except OSError as exc:
                        raise OutputError(describe_os_error(exc, target), out.parameter) from None
                    moved.append(target)
        except BaseException:
            for target in moved:
                _remove(target)
            for aside, original in reversed(backups):
                try:
                    os.replace(aside, original)
                except OSError:
                    pass
            raise

    def _cleanup(self):
        for stage in self._staging.values():
            shutil.rmtree(stage, ignore_errors=True)
        self._staging.clear()
        if self._entered and getattr(self, "_pam", None) is not None:
            self._pam.__exit__(None, None, None)
            self._pam = None
        self._entered = False


def _local_path(description):
    """The local file behind a GDAL description / Processing source string, or None."""
    text = str(description or "").strip()
    if not text or text.startswith("/vsi"):
        return None
    try:
        from ..emit_netcdf import split_path

        text, _ = split_path(text)
    except ImportError:
        text = text.split("|")[0]
    return text if os.path.exists(text) else None


def write_text_atomically(path, text, parameter="OUTPUT"):
    """Write a small text output (e.g. a JSON listing) the way rasters are written: checked first
    (a folder, a missing folder, an immutable file are refused naming ``parameter``), staged in a
    hidden folder beside it, renamed into place. Returns the absolute path."""
    if path is None or str(path).strip() == "":
        raise OutputError("no output path given.", parameter)
    path = os.path.abspath(os.path.expanduser(str(path)))
    folder = os.path.dirname(path)
    if os.path.isdir(path):
        raise OutputError(f"{path} is a folder; expected a file name such as models.json.", parameter)
    if not os.path.isdir(folder):
        raise OutputError(f"the folder {folder} does not exist; choose an existing folder.", parameter)
    if os.path.lexists(path) and immutable(path):
        raise OutputError(f"{path} exists and is immutable or append-only (chattr +i/+a), so it cannot be "
                          "replaced; remove the attribute or choose another name.", parameter)
    clean_stale_staging(folder)
    stage = os.path.join(folder, f"{STAGING_PREFIX}{uuid.uuid4().hex[:12]}")
    try:
        os.mkdir(stage)
        with open(os.path.join(stage, "owner"), "w", encoding="ascii") as f:
            f.write(f"{os.getpid()} {_process_start(os.getpid()) or ''}\n")
        staged = os.path.join(stage, os.path.basename(path))
        with open(staged, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(staged, path)
    except OSError as exc:
        raise OutputError(describe_os_error(exc, path), parameter) from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return path
