"""Stale staging folders in a destination folder that several hosts write into (shared DIR).

The owner record names host, boot id, pid namespace, pid and start time: a dead pid of this host is
cleaned at once, another host's temporaries (whose pid means nothing here) only when nothing in them
changed for STALE_OTHER_HOST_SECONDS. "Another host" is simulated by records with another host name
or boot id, the only thing that tells hosts apart.
"""
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from spectral_transformers.runtime.pipeline import OutputSet, clean_stale_staging, staging
from spectral_transformers.runtime.pipeline.staging import (STAGING_PREFIX, STALE_OTHER_HOST_SECONDS,
                                                              STALE_UNOWNED_SECONDS, owner_record, read_owner)
from spectral_transformers.runtime.io.raster_io import Grid, Window


def dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def make_stage(folder, name, record):
    """A staging folder with a partial raster and ``record`` (dict → JSON, str as is, None: none)."""
    stage = folder / f"{STAGING_PREFIX}{name}"
    (stage / "0").mkdir(parents=True)
    (stage / "0" / "scene_output.tif").write_bytes(b"II*\x00partial")
    if record is not None:
        (stage / "owner").write_text(record if isinstance(record, str) else json.dumps(record) + "\n")
    return stage


def age(path, seconds):
    """Set the mtime of ``path`` and everything in it ``seconds`` into the past."""
    when = time.time() - seconds
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.utime(os.path.join(root, name), (when, when))
    os.utime(path, (when, when))


def remaining(folder):
    return sorted(p.name for p in folder.iterdir())


def test_record_names_host_boot_namespace_pid_and_start(tmp_path):
    rec = owner_record()
    assert rec["host"] and rec["pid"] == os.getpid() and rec["created"] > 0
    if os.path.exists("/proc/self/stat"):  # Linux: the pid's start time and the kernel's identity
        assert rec["start"] and rec["boot_id"] and rec["pid_ns"]
    assert staging.same_host(rec)


def test_output_set_writes_the_record_while_it_runs(tmp_path):
    outs = OutputSet()
    outs.add_output("OUTPUT", tmp_path / "a.tif")
    with outs:
        stage = next(tmp_path.glob(f"{STAGING_PREFIX}*"))
        rec = read_owner(stage)
        assert rec == dict(rec, **staging.this_host(), pid=os.getpid())
        assert clean_stale_staging(tmp_path) == []  # its own staging is live
        outs.create("OUTPUT", Grid(2, 2), 1).write(Window(0, 0, 2, 2), np.ones((1, 2, 2)))
    assert remaining(tmp_path) == ["a.tif"]


def test_dead_pid_on_this_host_is_removed_live_one_kept(tmp_path):
    dead = make_stage(tmp_path, "dead", owner_record(dead_pid()))
    live = make_stage(tmp_path, "live", owner_record())
    reused = make_stage(tmp_path, "reused", dict(owner_record(), start="1"))  # our pid, another start time
    assert sorted(clean_stale_staging(tmp_path)) == sorted([str(dead), str(reused)])
    assert remaining(tmp_path) == [live.name]


@pytest.mark.parametrize("change", [{"host": "other-node-17"}, {"boot_id": "00000000-not-this-boot"},
                                    {"pid_ns": "pid:[1]"}])
def test_other_hosts_temporaries_are_kept_until_old(tmp_path, change):
    # host B's live run: its pid is dead *here*, which says nothing about host B
    record = dict(owner_record(dead_pid()), **change)
    fresh = make_stage(tmp_path, "fresh", record)
    recent = make_stage(tmp_path, "recent", record)
    age(recent, STALE_OTHER_HOST_SECONDS - 600)
    old = make_stage(tmp_path, "old", record)
    age(old, STALE_OTHER_HOST_SECONDS + 600)
    assert clean_stale_staging(tmp_path) == [str(old)]
    assert remaining(tmp_path) == sorted([fresh.name, recent.name])


def test_recent_write_inside_keeps_an_old_folder(tmp_path):
    stage = make_stage(tmp_path, "busy", dict(owner_record(dead_pid()), host="other-node-17"))
    age(stage, STALE_OTHER_HOST_SECONDS + 600)
    (stage / "0" / "scene_output.tif").write_bytes(b"II*\x00more")  # host B still writes its raster
    assert clean_stale_staging(tmp_path) == []
    assert staging.last_change(stage) > time.time() - 60


def test_records_of_older_versions_and_unreadable_ones_go_by_age(tmp_path):
    legacy = make_stage(tmp_path, "legacy", f"{dead_pid()} 1\n")  # "<pid> <start>": host unknown
    legacy_old = make_stage(tmp_path, "legacy_old", f"{dead_pid()} 1\n")
    age(legacy_old, STALE_OTHER_HOST_SECONDS + 600)
    unowned = make_stage(tmp_path, "unowned", None)
    garbled = make_stage(tmp_path, "garbled", "{not json")
    unowned_old = make_stage(tmp_path, "unowned_old", None)
    age(unowned_old, STALE_UNOWNED_SECONDS + 600)
    assert read_owner(legacy)["host"] is None and read_owner(garbled) is None
    assert sorted(clean_stale_staging(tmp_path)) == sorted([str(legacy_old), str(unowned_old)])
    assert remaining(tmp_path) == sorted([legacy.name, unowned.name, garbled.name])


def test_a_run_on_this_host_leaves_other_hosts_staging_alone(tmp_path):
    other = make_stage(tmp_path, "hostb", dict(owner_record(dead_pid()), host="other-node-17"))
    dead_here = make_stage(tmp_path, "killed", owner_record(dead_pid()))
    outs = OutputSet()
    outs.add_output("OUTPUT", tmp_path / "a.tif")
    with outs:
        outs.create("OUTPUT", Grid(2, 2), 1).write(Window(0, 0, 2, 2), np.ones((1, 2, 2)))
    assert remaining(tmp_path) == sorted(["a.tif", other.name])
    assert not dead_here.exists()
