"""``spectraltf:submitbatch`` — the Toolbox algorithm that runs the batch runner (same code as
``python -m spectral_transformers.batch run``): through ``qgis_process`` with a real LocalCluster of
2 workers on 127.0.0.1 (Dask comes from the development venv, which ``scripts/qgis_process`` puts on
QGIS's Python path), and its pieces in-process (assignment splitting, message mapping, Dask missing,
the worker interpreter inside QGIS, cancellation).
"""
import json
import os
import sys
import threading

import numpy as np
import pytest

import batch_scenes
from support import qgis_process

from spectral_transformers.batch import cluster, manifest, runner, scenes, session, submit, tasks
from spectral_transformers.runtime import parameters
from spectral_transformers.runtime.errors import Cancelled, DependencyError


def read(path):
    from osgeo import gdal

    return gdal.Open(str(path)).ReadAsArray()


def write_csv(path, header, rows):
    path.write_text("\n".join(",".join(r) for r in [header] + rows) + "\n", encoding="utf-8")
    return str(path)


def records(folder):
    return [json.loads(line) for line in open(os.path.join(folder, "manifest.jsonl"), encoding="utf-8")]


def submit_batch(*values):
    return qgis_process("run", "spectraltf:submitbatch", "--", *values)


# ---------------------------------------------------------------------------------------------
# the algorithm's pieces
# ---------------------------------------------------------------------------------------------
def test_table_entry_lists_the_batch_algorithms():
    task = parameters.TASKS["submitbatch"]
    assert task.param("ALGORITHM").options == parameters.BATCH_ALGORITHMS
    assert sorted(parameters.BATCH_ALGORITHMS) == sorted(tasks.batch_tasks())
    assert task.param("OUTPUT_DIR").kind == "output_folder" and task.param("OUTPUT_DIR").is_destination
    kw = parameters.parse_values(task, {"INPUTS": "l.csv", "OUTPUT_DIR": "out"})
    assert kw == {"algorithm": "cloudmask", "inputs": "l.csv", "parameters": None, "scheduler": None, "workers": None,
                  "retries": None, "force": False, "output_dir": "out"}
    with pytest.raises(Exception, match=r"^WORKERS: 0 is out of range; expected a value from 1 to 1024"):
        parameters.parse_values(task, {"INPUTS": "l.csv", "OUTPUT_DIR": "out", "WORKERS": "0"})


@pytest.mark.parametrize("text, expected", [
    ("", []),
    ("DEVICE=cpu", ["DEVICE=cpu"]),
    ("MODEL=spectf-cloud-v0.1.0; DEVICE=cpu;", ["MODEL=spectf-cloud-v0.1.0", "DEVICE=cpu"]),
    ("THRESHOLD=0.4\nDEVICE = cpu\r\n", ["THRESHOLD=0.4", "DEVICE = cpu"]),
    ("INPUT_DATES=a.tif;b.tif;c.tif; MODEL=x.onnx", ["INPUT_DATES=a.tif;b.tif;c.tif", "MODEL=x.onnx"]),
])
def test_parameters_for_every_scene_are_split_at_names(text, expected):
    assert submit.split_assignments(text) == expected


def test_list_and_value_mistakes_name_the_algorithms_parameter(tmp_path):
    rfl = batch_scenes.shared("emit", "emit_l2a_rfl_10x10.img")
    lst = write_csv(tmp_path / "list.csv", ["INPUT"], [[str(rfl)]])

    def error(inputs=lst, assignments=(), **kw):
        try:
            session.run_campaign("cloudmask", inputs, str(tmp_path / "out"), assignments, **kw)
        except tasks.UsageError as exc:
            return str(submit.usage_error(exc, assignments))
        raise AssertionError("no error")

    assert error(inputs=str(tmp_path / "none.csv")) == f"INPUTS: file not found: {tmp_path / 'none.csv'}"
    assert error(assignments=["THRESHOLD=2"]) == "PARAMETERS: THRESHOLD: 2 is out of range; expected a value from 0 to 1."
    assert error(assignments=["FOO=1"]).startswith("PARAMETERS: 'FOO' is not a parameter of cloudmask")
    assert error(assignments=["INPUT=x.img"]).startswith("PARAMETERS: INPUT is given both as a column of list.csv "
                                                         "and in the parameters for every scene")
    assert error(workers=2, scheduler="tcp://127.0.0.1:1").startswith("WORKERS: only for a local cluster")
    bad = write_csv(tmp_path / "bad.csv", ["INPUT", "NOPE"], [[str(rfl), "1"]])
    assert error(inputs=bad).startswith("INPUTS: bad.csv: 'NOPE' is not a parameter of cloudmask")
    assert not (tmp_path / "out").exists()  # nothing made before the values are right


def test_progress_goes_to_the_processing_log():
    from spectral_transformers.runtime.monitor import RecordingMonitor

    monitor = RecordingMonitor()
    sink = submit.MonitorProgress(monitor)
    sink.begin(4)
    for name, status in (("a", "done"), ("b", "failed"), ("c", "skipped"), ("d", "done")):
        sink.update({"name": name, "status": status, "seconds": 1.25, "error": "INPUT: cannot read b.tif"})
    assert monitor.fractions == [0.25, 0.5, 0.75, 1.0]
    assert monitor.warnings == ["b failed: INPUT: cannot read b.tif"]
    assert monitor.infos[0] == "a: done in 1.2 s" and monitor.infos[1].startswith("c: skipped")


def test_without_dask_the_run_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed → ImportError
    with pytest.raises(DependencyError, match=r"Dask distributed is not installed for this Python .*"
                                              r"python -m pip install \"dask\[distributed\]\" bokeh"):
        submit.submit(None, None, "cloudmask", str(tmp_path / "l.csv"), str(tmp_path / "out"))


def test_workers_start_a_real_python_inside_qgis(monkeypatch):
    assert cluster.worker_python() == sys.executable  # the venv's interpreter: used as it is
    monkeypatch.setattr(sys, "executable", "/usr/bin/qgis")  # what an embedding program reports
    python = cluster.worker_python()
    assert os.path.basename(python).startswith("python") and os.access(python, os.X_OK)
    real = os.path.realpath(python)
    assert any(real.startswith(os.path.realpath(p) + os.sep) for p in (sys.exec_prefix, sys.base_exec_prefix))


def test_provider_settings_reach_the_scene_config():
    from spectral_transformers.runtime.config import RuntimeConfig

    sent = tasks.config_fields(RuntimeConfig(model_dirs=("/models/a",), device="cpu", block_mb=3, threads=7,
                                             native_attention=False))
    cfg = tasks.config(threads=1, base=json.loads(json.dumps(sent)))  # as it travels to a worker
    assert (cfg.model_dirs, cfg.device, cfg.block_mb, cfg.threads, cfg.native_attention) == \
        (("/models/a",), "cpu", 3.0, 1, False)


@pytest.mark.slow
def test_cancel_stops_queued_scenes_and_keeps_finished_ones(client, tmp_path):
    windows = [(f"s{i}", 0, 22) for i in range(6)]
    made = batch_scenes.emit_scenes(str(tmp_path), windows)
    lst = write_csv(tmp_path / "list.csv", ["NAME", "INPUT", "OBSERVATION"], [list(m) for m in made])
    task = tasks.get_task("cloudmask")
    todo = scenes.read_scenes(lst, task, {"DEVICE": "cpu"}, str(tmp_path / "out"))
    seen, stop = [], threading.Event()

    class Sink(runner.Progress):
        def update(self, record):
            seen.append(record)
            stop.set()  # cancel as soon as the first scene is in

    with pytest.raises(Cancelled, match="scenes that had finished are complete"):
        runner.run_batch(task, todo, str(tmp_path / "out"), client, threads=1, progress=Sink(len(todo), open(os.devnull, "w")),
                         cancelled=stop.is_set)
    recs = records(tmp_path / "out")
    assert 1 <= len(recs) < len(todo) and all(r["status"] == manifest.DONE for r in recs), recs
    assert [r["name"] for r in recs] == [r["name"] for r in seen]
    for rec in recs:  # what is recorded is complete
        assert all(os.path.isfile(p) for p in rec["outputs"].values())


@pytest.mark.slow
def test_workers_clean_their_own_hosts_temporaries_after_a_batch_on_a_cluster(client, tmp_path):
    import subprocess

    from spectral_transformers.runtime.pipeline.staging import STAGING_PREFIX, owner_record

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    for name, record in (("killed", owner_record(dead.pid)), ("hostb", dict(owner_record(dead.pid), host="node-b"))):
        stage = tmp_path / f"{STAGING_PREFIX}{name}"
        stage.mkdir()
        (stage / "owner").write_text(json.dumps(record) + "\n")
    runner._clean_on_workers(client, [str(tmp_path)])  # noqa: SLF001 - what run_batch calls on --scheduler
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{STAGING_PREFIX}hostb"]


# ---------------------------------------------------------------------------------------------
# through qgis_process: a real LocalCluster of 2 workers on 127.0.0.1
# ---------------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.qgis_process
def test_submit_from_qgis_process_runs_the_batch_and_matches_a_single_run(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    made = batch_scenes.emit_scenes(str(data), [("north", 0, 9), ("south", 13, 9)])
    corrupt = batch_scenes.corrupt_copy(made[0][1], data / "corrupt_rdn.tif")
    rows = [[name, os.path.basename(r), os.path.basename(o)] for name, r, o in made]
    lst = write_csv(data / "list.csv", ["NAME", "INPUT", "OBSERVATION"],
                    rows + [["corrupt", os.path.basename(corrupt), "north_obs.tif"]])
    out = tmp_path / "out"
    values = [f"ALGORITHM=cloudmask", f"INPUTS={lst}", "PARAMETERS=DEVICE=cpu; THRESHOLD=0.51", "WORKERS=2",
              f"OUTPUT_DIR={out}"]

    code, res, stdout, stderr = submit_batch(*values)
    assert code == 0 and res, stdout + stderr
    results = res["results"]
    assert (results["TOTAL"], results["DONE"], results["FAILED"], results["SKIPPED"]) == (3, 2, 1, 0), results
    assert results["MANIFEST"] == str(out / "manifest.jsonl") and results["OUTPUT_DIR"] == str(out)
    log = stdout + stderr
    assert "Starting a local Dask cluster: 2 worker(s)" in log and "Traceback" not in log
    assert f"corrupt failed: INPUT: " in log and str(corrupt) in log
    recs = {r["name"]: r for r in records(out)}
    assert {n: r["status"] for n, r in recs.items()} == {"north": "done", "south": "done", "corrupt": "failed"}
    assert not [n for n in os.listdir(out) if n.startswith(".")]  # no staging left
    stamps = {p: os.stat(p).st_mtime_ns for p in map(str, out.glob("*.tif"))}
    assert len(stamps) == 4

    # a single qgis_process run of one scene with the same parameters: identical pixels
    name, rdn, obs = made[1]
    mask, prob = tmp_path / "one_mask.tif", tmp_path / "one_prob.tif"
    code, _, so, se = qgis_process("run", "spectraltf:cloudmask", "--", f"INPUT={rdn}", f"OBSERVATION={obs}",
                                   "DEVICE=cpu", "THRESHOLD=0.51", f"OUTPUT={mask}", f"OUTPUT_PROBABILITY={prob}")
    assert code == 0, so + se
    np.testing.assert_array_equal(read(out / f"{name}_output.tif"), read(mask))
    np.testing.assert_array_equal(read(out / f"{name}_output_probability.tif"), read(prob))

    # run again: the complete scenes are skipped without rewriting a file, the corrupt one fails again
    code, res, stdout, stderr = submit_batch(*values)
    assert code == 0, stdout + stderr
    results = res["results"]
    assert (results["DONE"], results["FAILED"], results["SKIPPED"]) == (0, 1, 2), results
    assert {p: os.stat(p).st_mtime_ns for p in stamps} == stamps


@pytest.mark.qgis_process
def test_submit_mistakes_are_one_line_before_any_cluster(tmp_path):
    rfl = batch_scenes.shared("emit", "emit_l2a_rfl_10x10.img")
    lst = write_csv(tmp_path / "list.csv", ["INPUT"], [[str(rfl)]])
    out = tmp_path / "out"
    for values, message in (
            ([f"INPUTS={lst}", "PARAMETERS=THRESHOLD=2"],
             "PARAMETERS: THRESHOLD: 2 is out of range; expected a value from 0 to 1."),
            ([f"INPUTS={tmp_path / 'missing.csv'}"], "file not found"),
            ([f"INPUTS={lst}", "SCHEDULER=tcp://127.0.0.1:1", "WORKERS=2"], "WORKERS: only for a local cluster")):
        code, _, stdout, stderr = qgis_process("run", "spectraltf:submitbatch", "--", *values, f"OUTPUT_DIR={out}",
                                               json_output=False)
        log = stdout + stderr
        assert code != 0 and message in log, (values, log)
        assert "Traceback" not in log and "Starting a local Dask cluster" not in log, log
    assert not out.exists() or not os.listdir(out)
