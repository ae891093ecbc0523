"""Staging folders: where outputs are written before they are moved into place.

Each destination folder of a run gets one hidden folder ``.spectraltf-partial-<token>`` (on the same
file system, so the final moves are renames) with an ``owner`` file (process id and start time). A
run killed with ``kill -9`` leaves only that folder; :func:`clean_stale_staging` (called by every
later run writing into the folder) removes it once its owner is gone.
"""
import os
import shutil
import time
import uuid

from .writer import OutputError, describe_os_error, immutable

STAGING_PREFIX = ".spectraltf-partial-"
#: Staging folders without a readable owner older than this are removed as stale (seconds).
STALE_UNOWNED_SECONDS = 6 * 3600


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
