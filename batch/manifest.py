"""``DIR/manifest.jsonl``: one JSON object per scene and run, appended as scenes finish.

Fields: ``name``, ``status`` (``done`` | ``failed`` | ``skipped``), ``outputs`` (destination parameter
→ path, the files the scene wrote), ``error`` (one line, for failed scenes, else null), ``seconds``
(wall time of the scene on its worker; 0 for skipped), ``cpu_seconds`` (CPU time of the worker
process meanwhile, all threads), ``algorithm``, ``parameters`` (the values
used, outputs included), ``fingerprint`` (hash of algorithm and parameters), ``files`` (path →
size in bytes and mtime in ns when written), ``resubmitted`` (times the scheduler gave the scene to another worker
after the one holding it died), ``worker``, ``warnings``, ``results`` (numbers the task returns) and
``finished`` (UTC ISO time).

Skip rule: a scene is skipped when its latest ``done``/``skipped`` record has the same algorithm
and fingerprint and every file it lists is still there with the recorded size and mtime. The
runtime writes every output to a temporary file renamed into place when complete, so a file that
exists is a whole file; the size/mtime check catches files replaced or removed since.
"""
import datetime
import json
import os

FILENAME = "manifest.jsonl"
DONE, FAILED, SKIPPED = "done", "failed", "skipped"


def path_in(output_dir):
    return os.path.join(output_dir, FILENAME)


def now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def file_stamps(paths):
    """path → {"size", "mtime_ns"} for the files that exist."""
    stamps = {}
    for p in paths:
        try:
            st = os.stat(p)
        except OSError:
            continue
        stamps[p] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
    return stamps


def read(path):
    """Records of a manifest (an unreadable line, e.g. a run killed mid-write, is ignored)."""
    records = []
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(rec, dict) and "name" in rec:
                    records.append(rec)
    except FileNotFoundError:
        pass
    return records


def latest_complete(records):
    """Scene name → its latest ``done`` or ``skipped`` record."""
    latest = {}
    for rec in records:
        if rec.get("status") in (DONE, SKIPPED):
            latest[rec["name"]] = rec
    return latest


def still_complete(record, algorithm, scene):
    """Whether ``record`` says ``scene`` is already done with the same parameters and its files are
    untouched (then it is skipped)."""
    if record is None or record.get("algorithm") != algorithm or record.get("fingerprint") != scene.fingerprint:
        return False
    files = record.get("files") or {}
    outputs = record.get("outputs") or {}
    if not outputs or not files or set(outputs.values()) - set(files):
        return False
    now_stamps = file_stamps(files)
    return all(now_stamps.get(p) == {"size": int(s["size"]), "mtime_ns": int(s["mtime_ns"])}
               for p, s in files.items())


class Writer:
    """Appends records to the manifest, one flushed line each (one writer: the client)."""

    def __init__(self, path):
        self.path = path
        self._f = open(path, "a", encoding="utf-8")

    def append(self, record):
        self._f.write(json.dumps(record, sort_keys=False, default=str) + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())

    def close(self):
        self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
