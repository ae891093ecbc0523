"""Run scenes on a Dask cluster: skip finished ones, submit the rest, record each as it ends.

One Dask task per scene (:func:`.worker.run_scene`). The client is the only writer of
``DIR/manifest.jsonl``: a record is appended (and flushed) the moment its scene ends, so a campaign
interrupted at any point resumes from the manifest. A scene whose worker died is resubmitted by the
scheduler (``allowed-failures``); when it runs out of tries it is recorded as failed like any other.
"""
import os
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field

from ..runtime.errors import Cancelled
from . import manifest, tasks
from .tasks import UsageError
from .worker import run_scene


@dataclass
class Summary:
    done: int = 0
    failed: int = 0
    skipped: int = 0
    seconds: float = 0.0
    records: list = field(default_factory=list)

    @property
    def total(self):
        return self.done + self.failed + self.skipped

    @property
    def exit_status(self):
        """0 when every scene is done or skipped, 1 when any failed."""
        return 1 if self.failed else 0


def _clock(seconds):
    seconds = int(round(max(0.0, seconds)))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class Progress:
    """Progress bar on a terminal (one line redrawn), one line per scene otherwise (logs): scenes
    finished / total, done, failed, skipped, rate and ETA. Failures are always printed in full."""

    LOG_EVERY = 10.0

    def __init__(self, total, stream=None, tty=None, width=28):
        self.total = max(0, int(total))
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.width = width
        self.counts = {manifest.DONE: 0, manifest.FAILED: 0, manifest.SKIPPED: 0}
        self.start = time.perf_counter()
        self.computed = 0  # scenes that ran (not skipped), for the rate and the ETA
        self._logged = float("-inf")

    def line(self):
        finished = sum(self.counts.values())
        filled = int(self.width * finished / self.total) if self.total else self.width
        elapsed = time.perf_counter() - self.start
        left = self.total - finished
        if self.computed and left:
            eta = _clock(elapsed / self.computed * left)
        else:
            eta = "0:00:00" if not left else "?"
        rate = f"{self.computed / elapsed:.2f}" if elapsed > 0 and self.computed else "-"
        return (f"[{'#' * filled}{'.' * (self.width - filled)}] {finished}/{self.total} scenes | "
                f"done {self.counts['done']} failed {self.counts['failed']} skipped {self.counts['skipped']} | "
                f"{rate} scenes/s | elapsed {_clock(elapsed)} ETA {eta}")

    def update(self, record):
        status = record["status"]
        self.counts[status] = self.counts.get(status, 0) + 1
        if status != manifest.SKIPPED:
            self.computed += 1
        if status == manifest.FAILED:
            self._print(f"FAILED {record['name']}: {record['error']}")
        elif not self.tty:
            extra = f" ({record['seconds']:.1f} s)" if status == manifest.DONE else ""
            self._print(f"{status} {record['name']}{extra}")
        self.draw()

    def draw(self):
        if self.tty:
            self.stream.write("\r\033[2K" + self.line())
        else:  # logs: the bar at most every LOG_EVERY seconds, and at the end
            finished = sum(self.counts.values()) >= self.total
            if not finished and time.perf_counter() - self._logged < self.LOG_EVERY:
                return
            self._logged = time.perf_counter()
            self.stream.write(self.line() + "\n")
        self.stream.flush()

    def _print(self, text):
        self.stream.write(("\r\033[2K" if self.tty else "") + text + "\n")

    def close(self):
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def validate(task, scenes, global_names=()):
    """Check every scene's values as the Processing algorithm does, before any work. A bad value
    that comes from the command line (``NAME=VALUE``: the same for every scene) raises
    :class:`UsageError`; a bad CSV cell fails that scene only. Returns scene name → message."""
    bad = {}
    for scene in scenes:
        try:
            tasks.parse(task, scene.raw)
        except Exception as exc:  # noqa: BLE001
            text = tasks.message(task, exc)
            name = getattr(tasks.rename_error(task, exc), "parameter", None)
            if name in global_names:
                raise UsageError(text) from None
            bad[scene.name] = text
    return bad


def plan(task, scenes, output_dir, force=False):
    """Split ``scenes`` into (to run, skipped records) from the manifest in ``output_dir``."""
    done = {} if force else manifest.latest_complete(manifest.read(manifest.path_in(output_dir)))
    todo, skipped = [], []
    for scene in scenes:
        rec = done.get(scene.name)
        if manifest.still_complete(rec, task.name, scene):
            skipped.append({"name": scene.name, "status": manifest.SKIPPED, "outputs": rec["outputs"],
                            "error": None, "seconds": 0.0, "algorithm": task.name, "parameters": scene.raw,
                            "fingerprint": scene.fingerprint, "files": rec["files"], "finished": manifest.now()})
        else:
            todo.append(scene)
    return todo, skipped


def _failed(task, scene, message, seconds=0.0):
    return {"name": scene.name, "status": manifest.FAILED, "outputs": {}, "error": message, "seconds": seconds,
            "algorithm": task.name, "parameters": scene.raw, "fingerprint": scene.fingerprint}


def _retries_of(client, key):
    """Times the scheduler resubmitted ``key`` after the worker holding it died (None if unknown)."""
    def suspicious(dask_scheduler, key=key):
        ts = dask_scheduler.tasks.get(key)
        return None if ts is None else int(ts.suspicious)

    try:
        return client.run_on_scheduler(suspicious)
    except Exception:  # noqa: BLE001 - informative only
        return None


#: What a cancelled batch says (finished scenes keep their outputs).
CANCELLED = ("Cancelled by the user; the scenes that had finished are complete and in the manifest (a rerun "
             "skips them), the others were not written.")


class _Canceller:
    """Polls ``cancelled()`` from a thread while the client waits for scenes; when it turns True the
    scenes still queued or running are cancelled (the wait then ends at once)."""

    def __init__(self, client, futures, cancelled, every=0.2):
        self.fired = False
        self._done = threading.Event()

        def watch():
            while not self._done.wait(every):
                if cancelled():
                    self.fired = True
                    client.cancel(futures)
                    return

        self._thread = threading.Thread(target=watch, name="spectraltf-batch-cancel", daemon=True)
        self._thread.start()

    def close(self):
        self._done.set()
        self._thread.join()


def _clean_on_workers(client, folders):
    """Every worker removes the temporaries that killed workers *of its own host* left in
    ``folders`` (a staging folder's owner pid can only be checked on its host; see
    :mod:`..runtime.pipeline.staging`). Hosts without a worker left keep theirs until they are old."""
    try:
        client.run(tasks.clean_partials_in, folders)
    except Exception:  # noqa: BLE001 - housekeeping; the next run in the folder cleans up too
        pass


def _killed_message(exc, retries):
    tries = (f"{retries + 1} time{'s' if retries else ''}" if retries is not None else "too many times")
    return (f"the worker running this scene died {tries} (killed, or over its memory limit); gave up "
            f"(--retries {retries if retries is not None else '?'}).")


def run_batch(task, scenes, output_dir, client, threads=None, threads_by_worker=None, retries=None,
              global_names=(), force=False, stream=None, tty=None, local=True, progress=None, cancelled=None,
              base_config=None):
    """Run ``scenes`` of ``task`` on ``client``'s cluster, writing into ``output_dir`` and appending
    to its manifest. ``threads``: ONNX Runtime threads per scene (local cluster); ``threads_by_worker``:
    per-worker defaults (existing cluster). ``local``: the workers run on this machine (temporaries
    of killed workers are removed here at the end; on an existing cluster each worker removes those
    of its own host). ``progress``: where scenes are reported (default: a :class:`Progress` on
    ``stream``; a sink with ``begin(total)`` is told the number of scenes first); ``cancelled()``: polled while scenes run, True cancels the rest and raises
    :class:`~..runtime.errors.Cancelled` (what has finished is in the manifest); ``base_config``: runtime
    settings for every scene (:func:`.tasks.config_fields`; None: each worker's environment).
    Returns a :class:`Summary`."""
    from distributed import as_completed

    os.makedirs(output_dir, exist_ok=True)
    started = time.perf_counter()
    bad = validate(task, scenes, global_names)
    todo, skipped = plan(task, scenes, output_dir, force)
    summary = Summary()
    if progress is None:
        progress = Progress(len(scenes), stream, tty)
    elif hasattr(progress, "begin"):
        progress.begin(len(scenes))
    token = uuid.uuid4().hex[:8]
    with manifest.Writer(manifest.path_in(output_dir)) as writer:
        def record(rec):
            rec.setdefault("finished", manifest.now())
            writer.append(rec)
            summary.records.append(rec)
            setattr(summary, rec["status"], getattr(summary, rec["status"]) + 1)
            progress.update(rec)

        for rec in skipped:
            record(rec)
        futures, by_key = [], {}
        for scene in todo:
            if scene.name in bad:
                record(_failed(task, scene, bad[scene.name]))
                continue
            job = {"algorithm": task.name, "name": scene.name, "parameters": scene.raw, "outputs": scene.outputs,
                   "fingerprint": scene.fingerprint, "threads": threads,
                   "threads_by_worker": threads_by_worker or {}, "config": base_config}
            key = f"spectraltf-{task.name}-{scene.name}-{token}"
            fut = client.submit(run_scene, job, key=key, pure=False, retries=0)
            futures.append(fut)
            by_key[key] = scene
        if futures:
            progress.draw()
        stop = _Canceller(client, futures, cancelled) if cancelled and futures else None

        def stopping():  # the user's request itself: the canceller thread may not have acted on it yet
            return bool(cancelled is not None and (cancelled() or stop.fired))
        try:
            for fut in as_completed(futures):
                if fut.status == "cancelled" or (fut.status != "finished" and stopping()):
                    continue  # stopped by the user: not a result, not recorded
                scene = by_key[fut.key]
                resubmitted = _retries_of(client, fut.key)
                if fut.status == "finished":
                    rec = fut.result()
                else:
                    exc = fut.exception()
                    if exc is None and (fut.status == "cancelled" or stopping()):
                        continue  # yielded before the user's cancel reached it, cancelled while we asked
                    name = type(exc).__name__
                    message = (_killed_message(exc, retries) if name == "KilledWorker"
                               else tasks.message(task, exc) if exc is not None
                               else f"the scene ended in Dask state {fut.status!r} without a result or an error.")
                    rec = _failed(task, scene, message)
                rec["resubmitted"] = resubmitted
                fut.release()
                record(rec)
            if stop is not None and stop.fired:
                raise Cancelled(CANCELLED)
        except (KeyboardInterrupt, Cancelled):
            client.cancel(futures)
            progress.close()
            raise
        finally:
            if stop is not None:
                stop.close()
            folders = sorted({os.path.dirname(p) for s in todo for p in s.outputs.values()})
            if local:
                tasks.clean_partials_in(folders)
            elif folders:
                _clean_on_workers(client, folders)
    progress.close()
    summary.seconds = time.perf_counter() - started
    return summary
