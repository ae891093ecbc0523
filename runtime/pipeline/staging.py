"""Staging folders: where outputs are written before they are moved into place.

Each destination folder of a run gets one hidden folder ``.spectraltf-partial-<token>`` (on the same
file system, so the final moves are renames) with an ``owner`` record: one JSON line with the host
name, the kernel's boot id and pid namespace, the process id and its start time, and the creation
time. A run killed with ``kill -9`` leaves only that folder; :func:`clean_stale_staging` (called by
every later run writing into the folder) removes it once it is sure the owner is gone:

- owner on this host (same host name, boot id and pid namespace): removed when that process is
  gone (or its pid now belongs to a process started at another time);
- owner on another host (a folder shared over NFS/Lustre/SMB by several machines, e.g. batch workers
  on a cluster): its process cannot be checked from here, so the folder is removed only when nothing
  in it has changed for :data:`STALE_OTHER_HOST_SECONDS` (24 h: a live run's staged raster changes
  each time a row of tiles is written, and no block computes for hours). The same rule applies to records of older
  versions (``<pid> <start>``, no host) and, after :data:`STALE_UNOWNED_SECONDS`, to folders without
  a readable record.
"""
import json
import os
import shutil
import socket
import time
import uuid

from .writer import OutputError, describe_os_error, immutable

STAGING_PREFIX = ".spectraltf-partial-"
OWNER_FILE = "owner"
#: Staging folders of another host (or of an owner record without a host) are removed when nothing in
#: them has changed for this long (seconds).
STALE_OTHER_HOST_SECONDS = 24 * 3600
#: Staging folders without a readable owner record are removed when nothing in them has changed for
#: this long (seconds; a record is written right after the folder is made, so such a folder belongs
#: to a run that died at once, or is being made on another host and not yet visible here).
STALE_UNOWNED_SECONDS = 6 * 3600


def _process_start(pid):
    """Start time of process ``pid`` in clock ticks since boot (Linux), else None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode("ascii", "replace")
        return data.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _boot_id():
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            return f.read().strip() or None
    except OSError:
        return None


def _pid_namespace():
    try:
        return os.readlink("/proc/self/ns/pid")
    except (OSError, AttributeError):
        return None


def this_host():
    """What identifies this machine's process table: host name, boot id, pid namespace (the last two
    None where the OS does not tell)."""
    return {"host": socket.gethostname(), "boot_id": _boot_id(), "pid_ns": _pid_namespace()}


def owner_record(pid=None):
    """The owner record of process ``pid`` (default: this one) as a dict."""
    pid = os.getpid() if pid is None else int(pid)
    return dict(this_host(), pid=pid, start=_process_start(pid), created=round(time.time(), 3))


def write_owner(stage):
    """Write this process's owner record into the staging folder ``stage``."""
    with open(os.path.join(stage, OWNER_FILE), "w", encoding="utf-8") as f:
        f.write(json.dumps(owner_record()) + "\n")


def read_owner(stage):
    """The owner record of ``stage`` as a dict (``host`` None for records of older versions:
    ``<pid> <start>``), or None when there is none or it cannot be read."""
    try:
        with open(os.path.join(stage, OWNER_FILE), encoding="utf-8") as f:
            text = f.read().strip()
    except (OSError, UnicodeDecodeError):
        return None
    if text.startswith("{"):
        try:
            rec = json.loads(text)
            int(rec["pid"])
        except (ValueError, KeyError, TypeError):
            return None
        return rec if isinstance(rec, dict) else None
    pid, _, start = text.partition(" ")
    if not pid.strip().isdigit():
        return None
    return {"host": None, "pid": int(pid), "start": start.strip() or None}


def same_host(record, here=None):
    """Whether ``record`` was written on this host, in this kernel boot and pid namespace (so its pid
    can be checked here). A field either side does not know is not compared; the host name must match."""
    here = here or this_host()
    if not record.get("host") or record.get("host") != here["host"]:
        return False
    return all(record.get(k) is None or here[k] is None or record.get(k) == here[k] for k in ("boot_id", "pid_ns"))


def _alive(pid, start):
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError, OverflowError):
        return True
    if start and _process_start(pid) not in (None, str(start)):
        return False  # the pid was reused by another process
    return True


def last_change(path):
    """Newest modification time (s since the epoch) of ``path`` and everything in it."""
    newest = 0.0
    for root, dirs, files in os.walk(path):
        for name in [root] + [os.path.join(root, n) for n in dirs + files]:
            try:
                newest = max(newest, os.lstat(name).st_mtime)
            except OSError:
                pass
    return newest


def _remove(path):
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        elif os.path.lexists(path):
            os.remove(path)
    except OSError:
        pass


def is_stale(stage, now=None, here=None, other_host_seconds=None):
    """Whether the staging folder ``stage`` belongs to a run that is gone (see the module docstring)."""
    now = time.time() if now is None else now
    record = read_owner(stage)
    if record is None:
        limit = STALE_UNOWNED_SECONDS
    elif same_host(record, here):
        return not _alive(record["pid"], record.get("start"))
    else:
        limit = STALE_OTHER_HOST_SECONDS if other_host_seconds is None else other_host_seconds
    return now - last_change(stage) > limit


def clean_stale_staging(folder, other_host_seconds=None):
    """Remove staging folders of runs that are gone (killed, crashed). Returns the paths removed."""
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    here = this_host()
    for name in names:
        if not name.startswith(STAGING_PREFIX):
            continue
        path = os.path.join(folder, name)
        if not os.path.isdir(path) or os.path.islink(path):
            continue
        if is_stale(path, here=here, other_host_seconds=other_host_seconds):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def write_text_atomically(path, text, parameter="output"):
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
        write_owner(stage)
        staged = os.path.join(stage, os.path.basename(path))
        with open(staged, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(staged, path)
    except OSError as exc:
        raise OutputError(describe_os_error(exc, path), parameter) from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return path
