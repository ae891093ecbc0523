"""One output set for every task: checked before any work, staged, committed all together or not at all.

Life of a run::

    outs = OutputSet(config, monitor)
    outs.add_input("input", ds)                 # files of the inputs (data + side files)
    outs.add_output("mask", path)               # refused now if it is an input, a side file of one,
    outs.add_output("probability", p)           #   another output, a non-writable format/folder/file
    ...cheap checks, model loading...
    with outs:                                  # removes stale temporaries of killed runs, stages
        w = outs.create("mask", grid, 1, np.uint8, 255)
        ...stream windows into w...
        styles.write_class_qml(outs.style_path("mask"), entries)
    # leaving the block without an exception: every raster is closed and checked, then every file
    # (data, header, .aux.xml, .qml) of every output is moved into place; otherwise nothing is.

Staging: each destination folder gets one hidden folder ``.spectraltf-partial-<token>`` (same file
system, so the final moves are renames) holding a small ``owner`` record (host, process id and start time; see :mod:`.staging`).
A raster being written is never under its final name; a run killed with ``kill -9`` leaves only that
hidden folder, which the next run writing into the same folder removes once its owner is gone.

Commit: existing destination files are first moved aside into the staging folder (so an old
output survives any failure of the commit itself), the new files moved in, the old ones deleted.
Any failure restores the old files and deletes everything this run created.

Errors: disk full, permission, read-only file system and immutable files become one
:class:`~..errors.InputError` line naming the output's parameter.
"""
import os
import shutil
import uuid

import numpy as np

from ..errors import ref
from ..monitor import ensure
from . import formats
from .staging import STAGING_PREFIX, _remove, clean_stale_staging, write_owner
from .writer import OutputError, RasterWriter, describe_os_error, immutable


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


class Output:
    """One declared output: ``parameter`` (runtime argument), destination ``path``, ``driver``, staging paths."""

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
                raise OutputError(f"{path} is {detail} {ref(other.parameter)} ({other.path}); give each output its "
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
                        raise OutputError(f"{out.path} is the input file of {ref(other)}; writing it would destroy the "
                                          "input. Choose another output file name.", out.parameter)
                    raise OutputError(f"writing {os.path.basename(out.path)} would overwrite {other_path}, {what} "
                                      f"of the input {ref(other)}; choose another output file name.", out.parameter)

    def path(self, parameter):
        return self.outputs[parameter].path

    # -- staging and writing ---------------------------------------------------------------------
    def __enter__(self):
        from ..io.raster_io import pam

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
                write_owner(stage)
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
        from ..io.raster_io import tile_size_for

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
        from ..io.emit_netcdf import split_path

        text, _ = split_path(text)
    except ImportError:
        text = text.split("|")[0]
    return text if os.path.exists(text) else None
