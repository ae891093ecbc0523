"""Batch runner (``python -m spectral_transformers.batch``) on a real Dask LocalCluster on loopback.

Scenes are crops of the real Libya-4 EMIT radiance clip + derived OBS and of the real Sentinel-2
chip (../shared/data), written to temporary folders (``batch_scenes.py``). The command-line tests
run the module as users do (a subprocess with 2 workers on 127.0.0.1); the parity tests compare with
``scripts/qgis_process run spectraltf:ALG`` pixel for pixel.
"""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import batch_scenes
from support import REPO, qgis_process

from spectral_transformers.batch import cli, cluster, manifest, runner, scenes, tasks
from spectral_transformers.batch.tasks import UsageError

BATCH = [sys.executable, "-m", "spectral_transformers.batch"]


def read(path):
    from osgeo import gdal

    ds = gdal.Open(str(path))
    return ds.ReadAsArray()


def write_csv(path, header, rows):
    with open(path, "w", encoding="utf-8") as f:
        f.write(",".join(header) + "\n")
        for row in rows:
            f.write(",".join(row) + "\n")
    return str(path)


def run_cli(*args, cwd=None, timeout=240):
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.run(BATCH + [str(a) for a in args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=timeout)
    return proc.returncode, proc.stdout + proc.stderr


def records(out_dir):
    return manifest.read(manifest.path_in(out_dir))


def hidden_entries(folder):
    return sorted(n for n in os.listdir(folder) if n.startswith("."))


# ---------------------------------------------------------------------------------------------
# the list → scenes (no cluster)
# ---------------------------------------------------------------------------------------------
def test_csv_names_paths_outputs_and_overrides(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    lst = write_csv(data / "list.csv", ["name", "Input", "OBSERVATION", "OUTPUT_PROBABILITY"], [
        ["", "scene1_rdn.img", "obs/scene1_obs.img", ""],
        ["north", "/abs/scene2.img", "", "/elsewhere/p.tif"],
    ])
    task = tasks.get_task("spectraltf:cloudmask")
    got = scenes.read_scenes(lst, task, {"DEVICE": "cpu", "MODEL": "spectf-cloud-v0.1.0"}, "out", cwd=str(tmp_path))
    out = tmp_path / "out"
    first, second = got
    assert first.name == "scene1_rdn" and second.name == "north"
    # CSV paths relative to the CSV's folder; outputs not given → DIR/<scene>_<param lower>.tif
    assert first.raw["INPUT"] == str(data / "scene1_rdn.img")
    assert first.raw["OBSERVATION"] == str(data / "obs" / "scene1_obs.img")
    assert first.outputs == {"OUTPUT": str(out / "scene1_rdn_output.tif")}  # empty optional output: not written
    assert "OUTPUT_PROBABILITY" not in first.raw
    assert second.outputs == {"OUTPUT": str(out / "north_output.tif"), "OUTPUT_PROBABILITY": "/elsewhere/p.tif"}
    assert first.raw["DEVICE"] == second.raw["DEVICE"] == "cpu"  # NAME=VALUE applies to every row
    assert first.raw["MODEL"] == "spectf-cloud-v0.1.0"  # a registry id is not a path
    # without the column, every destination is filled (the naming)
    lst2 = write_csv(data / "l2.csv", ["INPUT"], [["scene3.img"]])
    (s3,) = scenes.read_scenes(lst2, task, {}, str(out))
    assert s3.outputs == {"OUTPUT": str(out / "scene3_output.tif"),
                          "OUTPUT_PROBABILITY": str(out / "scene3_output_probability.tif")}
    # the fingerprint follows the values
    (s3b,) = scenes.read_scenes(lst2, task, {"THRESHOLD": "0.4"}, str(out))
    assert s3b.fingerprint != s3.fingerprint


@pytest.mark.parametrize("header, rows, overrides, expected", [
    (["INPUT", "COLOUR"], [["a.img", "red"]], {}, "'COLOUR' is not a parameter of cloudmask; expected INPUT"),
    (["INPUT"], [["x/a.img"], ["y/a.img"]], {}, "two scenes named 'a'"),
    (["INPUT", "DEVICE"], [["a.img", "cpu"]], {"DEVICE": "cpu"}, "DEVICE is given both"),
    (["INPUT"], [], {}, "no scenes"),
    (["NAME", "INPUT"], [["../up", "a.img"]], {}, "cannot be a scene name"),
    (["INPUT"], [["a.img", "b.img"]], {}, "2 values for 1 columns"),
    (["INPUT", "OUTPUT"], [["a.img", "same.tif"], ["b.img", "same.tif"]], {}, "OUTPUT and OUTPUT are both"),
])
def test_csv_mistakes_are_usage_errors(tmp_path, header, rows, overrides, expected):
    lst = write_csv(tmp_path / "list.csv", header, rows)
    with pytest.raises(UsageError, match=expected.replace("(", r"\(")):
        scenes.read_scenes(lst, tasks.get_task("cloudmask"), overrides, str(tmp_path / "out"))


def test_command_line_mistakes_exit_2_before_any_work(tmp_path, capsys):
    lst = write_csv(tmp_path / "list.csv", ["INPUT"], [["a.img"]])
    out = tmp_path / "out"
    cases = [
        (["run", "nosuchalg", "--inputs", lst, "--output-dir", out], "unknown algorithm 'nosuchalg'"),
        (["run", "cloudmask", "--inputs", tmp_path / "none.csv", "--output-dir", out], "file not found"),
        (["run", "cloudmask", "--inputs", lst, "--output-dir", out, "THRESHOLD"], "'THRESHOLD' is not NAME=VALUE"),
        (["run", "cloudmask", "--inputs", lst, "--output-dir", out, "--workers", "0"], "--workers: 0"),
        # a bad value for every scene: the table's message, before a cluster is started
        (["run", "cloudmask", "--inputs", lst, "--output-dir", out, "THRESHOLD=2"],
         "THRESHOLD: 2 is out of range; expected a value from 0 to 1."),
        (["run", "cloudmask", "--inputs", lst, "--output-dir", out, "BATCH_SIZE=abc"],
         "BATCH_SIZE: 'abc' is not a whole number."),
    ]
    for argv, expected in cases:
        assert cli.main([str(a) for a in argv]) == cli.EXIT_USAGE, argv
        err = capsys.readouterr().err
        assert expected in err, (argv, err)
        assert "Traceback" not in err and "Starting a local Dask cluster" not in err
    assert not (out / manifest.FILENAME).exists()


def test_bad_cell_fails_that_scene_only(tmp_path):
    lst = write_csv(tmp_path / "list.csv", ["NAME", "INPUT", "BATCH_SIZE"], [["ok", "a.img", "64"], ["bad", "b.img", "1.5"]])
    task = tasks.get_task("cloudmask")
    got = scenes.read_scenes(lst, task, {"DEVICE": "cpu"}, str(tmp_path / "out"))
    assert runner.validate(task, got, global_names={"DEVICE"}) == {"bad": "BATCH_SIZE: '1.5' is not a whole number."}


def test_skip_rule_needs_same_parameters_and_untouched_files(tmp_path):
    out = tmp_path / "o.tif"
    out.write_bytes(b"x" * 10)
    scene = scenes.Scene("s", {"INPUT": "a", "OUTPUT": str(out)}, {"OUTPUT": str(out)}, 2)
    rec = {"name": "s", "status": "done", "algorithm": "toareflectance", "fingerprint": scene.fingerprint,
           "outputs": {"OUTPUT": str(out)}, "files": manifest.file_stamps([str(out)])}
    assert manifest.still_complete(rec, "toareflectance", scene)
    assert not manifest.still_complete(rec, "cloudmask", scene)
    other = scenes.Scene("s", {"INPUT": "b", "OUTPUT": str(out)}, {"OUTPUT": str(out)}, 2)
    assert not manifest.still_complete(rec, "toareflectance", other)
    out.write_bytes(b"y" * 11)  # replaced since
    assert not manifest.still_complete(rec, "toareflectance", scene)
    out.unlink()
    assert not manifest.still_complete(rec, "toareflectance", scene)


# ---------------------------------------------------------------------------------------------
# SLURM recipe (dask-jobqueue): the job script it generates
# ---------------------------------------------------------------------------------------------
def test_slurm_recipe_job_script(tmp_path):
    slurm = cluster.slurm_cluster(cores=8, memory="16GB", workers_per_job=2, queue="short", account="geo",
                                  walltime="02:00:00", host="127.0.0.1", dashboard_address="127.0.0.1:0",
                                  log_directory=str(tmp_path))
    try:
        script = slurm.job_script()
        address = slurm.scheduler_address
    finally:
        slurm.close()
    lines = script.splitlines()
    for expected in ("#SBATCH --cpus-per-task=8", "#SBATCH -p short", "#SBATCH -A geo", "#SBATCH -t 02:00:00",
                     "#SBATCH -J spectraltf-batch", "export SPECTRALTF_THREADS=4", "export OMP_NUM_THREADS=1",
                     "export OPENBLAS_NUM_THREADS=1"):
        assert expected in lines, (expected, script)
    assert any(line.startswith("#SBATCH --mem=") for line in lines)
    worker = next(line for line in lines if "distributed.cli.dask_worker" in line)
    assert worker.startswith(sys.executable) and address in worker and address.startswith("tcp://127.0.0.1:")
    assert "--nthreads 1" in worker and "--nworkers 2" in worker and "--nanny" in worker
    # the job's environment makes the batch worker importable without QGIS
    exports = "\n".join(line for line in lines if line.startswith("export "))
    probe = (f"{exports}\n{sys.executable} -c 'import sys, spectral_transformers.batch.worker as w; "
             "sys.exit(\"qgis\" in sys.modules)'")
    proc = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, cwd=str(tmp_path),
                          env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    with pytest.raises(ValueError, match="workers per job"):
        cluster.slurm_cluster(cores=2, memory="1GB", workers_per_job=3, host="127.0.0.1")


# ---------------------------------------------------------------------------------------------
# command line on a real LocalCluster (2 workers, 127.0.0.1)
# ---------------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.qgis_process
def test_cloudmask_corrupt_scene_rerun_skips_and_matches_qgis_process(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    made = batch_scenes.emit_scenes(str(data), [("north", 0, 9), ("middle", 8, 9), ("south", 16, 9)])
    corrupt = batch_scenes.corrupt_copy(made[0][1], data / "corrupt_rdn.tif")
    good_rows = [[name, os.path.basename(r), os.path.basename(o)] for name, r, o in made]
    header = ["NAME", "INPUT", "OBSERVATION"]
    lst = write_csv(data / "list.csv", header, good_rows + [["corrupt", "corrupt_rdn.tif", "north_obs.tif"]])
    out = tmp_path / "out"

    rc, log = run_cli("run", "cloudmask", "--inputs", lst, "--output-dir", out, "--workers", "2",
                      "--dashboard-address", "127.0.0.1:0", "DEVICE=cpu")
    assert rc == 1, log
    assert "Dashboard: http://127.0.0.1:" in log and "4/4 scenes" in log and "ETA" in log
    recs = {r["name"]: r for r in records(out)}
    assert {n: r["status"] for n, r in recs.items()} == {"north": "done", "middle": "done", "south": "done",
                                                          "corrupt": "failed"}
    err = recs["corrupt"]["error"]
    # the damaged TIFF is refused naming INPUT: as truncated before any work, or (newer GDAL) when opened
    assert err.startswith("INPUT: ") and str(corrupt) in err and "\n" not in err, err
    assert f"FAILED corrupt: {err}" in log and "Traceback" not in log
    for name, rec in recs.items():
        assert set(rec) >= {"name", "status", "outputs", "error", "seconds"}
        if name != "corrupt":
            assert rec["outputs"] == {"OUTPUT": str(out / f"{name}_output.tif"),
                                      "OUTPUT_PROBABILITY": str(out / f"{name}_output_probability.tif")}
            assert rec["error"] is None and rec["seconds"] > 0 and rec["results"]["VALID_PIXELS"] > 0
    assert not any(n.startswith("corrupt") for n in os.listdir(out)) and hidden_entries(out) == []
    stamps = {p: os.stat(p).st_mtime_ns for p in (str(x) for x in out.glob("*.tif"))}
    assert len(stamps) == 6

    # rerun without the corrupt scene: everything skipped, no file rewritten
    good = write_csv(data / "good.csv", header, good_rows)
    rc, log = run_cli("run", "cloudmask", "--inputs", good, "--output-dir", out, "--workers", "2",
                      "--dashboard-address", "127.0.0.1:0", "DEVICE=cpu")
    assert rc == 0, log
    assert [r["status"] for r in records(out)[4:]] == ["skipped"] * 3
    assert {p: os.stat(p).st_mtime_ns for p in stamps} == stamps

    # the same scene through qgis_process: identical pixels
    name, rdn, obs = made[1]
    ref_mask, ref_prob = tmp_path / "qp_mask.tif", tmp_path / "qp_prob.tif"
    code, _, stdout, stderr = qgis_process("run", "spectraltf:cloudmask", "--", f"INPUT={rdn}", f"OBSERVATION={obs}",
                                           "DEVICE=cpu", f"OUTPUT={ref_mask}", f"OUTPUT_PROBABILITY={ref_prob}")
    assert code == 0, stdout + stderr
    np.testing.assert_array_equal(read(out / f"{name}_output.tif"), read(ref_mask))
    np.testing.assert_array_equal(read(out / f"{name}_output_probability.tif"), read(ref_prob))


def _descendants(pid):
    import psutil

    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _writer_of(pid, folder):
    """(process, path) of a descendant of ``pid`` holding a file open under ``folder``."""
    import psutil

    for proc in _descendants(pid):
        try:
            for f in proc.open_files():
                if f.path.startswith(str(folder) + os.sep) and f.path.endswith(".tif"):
                    return proc, f.path
        except psutil.Error:
            continue
    return None, None


@pytest.mark.slow
def test_worker_killed_mid_scene_is_retried_complete_and_identical(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    made = [(f"s{i}",) + batch_scenes.emit_like(str(data), f"s{i}", 64) for i in range(3)]
    lst = write_csv(data / "list.csv", ["NAME", "INPUT", "OBSERVATION"], [[n, r, o] for n, r, o in made])
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.Popen(BATCH + ["run", "cloudmask", "--inputs", lst, "--output-dir", str(out), "--workers", "2",
                                     "--retries", "2", "--dashboard-address", "127.0.0.1:0", "DEVICE=cpu"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    killed, victim_file = None, None
    try:
        deadline = time.time() + 180
        while time.time() < deadline and proc.poll() is None:
            worker, path = _writer_of(proc.pid, out)
            if worker is not None:
                victim_file = path
                killed = worker.pid
                os.kill(worker.pid, signal.SIGKILL)  # mid-scene: its output is being written
                break
            time.sleep(0.02)
        log, _ = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert killed is not None, "no worker was caught writing a scene"
    assert proc.returncode == 0, log
    victim = next(n for n, _, _ in made if os.path.basename(victim_file).lstrip(".").startswith(f"{n}_"))
    print(f"killed worker pid {killed} while it wrote {victim_file}")
    recs = {r["name"]: r for r in records(out)}
    assert all(r["status"] == "done" for r in recs.values()) and len(recs) == 3, recs
    assert recs[victim]["resubmitted"] >= 1 and recs[victim]["pid"] != killed, recs[victim]
    assert hidden_entries(out) == [], os.listdir(out)  # nothing partial left
    # complete and pixel-identical to a single run of the same scene in this process
    from spectral_transformers.runtime.monitor import Monitor

    task = tasks.get_task("cloudmask")
    _, rdn, obs = next(m for m in made if m[0] == victim)
    ref = {"OUTPUT": str(tmp_path / "ref_mask.tif"), "OUTPUT_PROBABILITY": str(tmp_path / "ref_prob.tif")}
    tasks.run(task, tasks.parse(task, {"INPUT": rdn, "OBSERVATION": obs, "DEVICE": "cpu", **ref}), tasks.config(1),
              Monitor())
    np.testing.assert_array_equal(read(out / f"{victim}_output.tif"), read(ref["OUTPUT"]))
    np.testing.assert_array_equal(read(out / f"{victim}_output_probability.tif"), read(ref["OUTPUT_PROBABILITY"]))


# ---------------------------------------------------------------------------------------------
# the runner API on one shared LocalCluster: TOA and segmentation parity, QGIS-free workers
# ---------------------------------------------------------------------------------------------
def _batch(client, alg, csv_path, out, **overrides):
    task = tasks.get_task(alg)
    got = scenes.read_scenes(csv_path, task, overrides, str(out))
    summary = runner.run_batch(task, got, str(out), client, threads=cluster.local_threads(2), retries=1,
                               global_names=set(overrides), tty=False)
    return summary, {r["name"]: r for r in summary.records}


@pytest.mark.slow
@pytest.mark.qgis_process
def test_toa_and_segment_match_qgis_process_on_qgis_free_workers(client, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    made = batch_scenes.emit_scenes(str(data), [("a", 0, 13), ("b", 12, 13)])
    lst = write_csv(data / "toa.csv", ["NAME", "INPUT", "OBSERVATION"], [list(m) for m in made])
    summary, recs = _batch(client, "toareflectance", lst, tmp_path / "toa")
    assert summary.exit_status == 0 and summary.done == 2, recs
    name, rdn, obs = made[1]
    ref = tmp_path / "qp_toa.tif"
    code, _, stdout, stderr = qgis_process("run", "spectraltf:toareflectance", "--", f"INPUT={rdn}",
                                           f"OBSERVATION={obs}", f"OUTPUT={ref}")
    assert code == 0, stdout + stderr
    np.testing.assert_array_equal(read(recs[name]["outputs"]["OUTPUT"]), read(ref))

    chips = [batch_scenes.sentinel2_chip(str(data), f"s2_{i}", row0=128 * i, size=128) for i in range(2)]
    lst = write_csv(data / "seg.csv", ["INPUT"], [[c] for c in chips])
    summary, recs = _batch(client, "segment", lst, tmp_path / "seg", MODEL="ukis-csmask-6b-l2a", DEVICE="cpu",
                           OUTPUT_PROBABILITIES="", OUTPUT_CONFIDENCE="")
    assert summary.exit_status == 0 and sorted(recs) == ["s2_0", "s2_1"], recs
    assert recs["s2_1"]["outputs"] == {"OUTPUT": str(tmp_path / "seg" / "s2_1_output.tif")}
    ref = tmp_path / "qp_seg.tif"
    code, _, stdout, stderr = qgis_process("run", "spectraltf:segment", "--", f"INPUT={chips[1]}",
                                           "MODEL=ukis-csmask-6b-l2a", "DEVICE=cpu", f"OUTPUT={ref}")
    assert code == 0, stdout + stderr
    np.testing.assert_array_equal(read(recs["s2_1"]["outputs"]["OUTPUT"]), read(ref))

    # workers never imported QGIS or Qt, and ONNX Runtime ran with cores / workers threads
    from spectral_transformers.batch import worker

    for mods in client.run(worker.runtime_modules).values():
        assert not {"qgis", "PyQt5", "PyQt6", "processing"} & set(mods)
    used = client.run(worker.onnx_threads)
    assert set().union(*used.values()) == {cluster.local_threads(2)}, used
    for limits in client.run(worker.thread_limits).values():  # no machine-sized OpenMP/BLAS pools
        assert limits == {name: "1" for name in cluster.WORKER_THREAD_LIMITS}, limits


def test_progress_lines_for_logs():
    import io

    buf = io.StringIO()
    progress = runner.Progress(3, buf, tty=False)
    for status, name in (("done", "a"), ("failed", "b"), ("skipped", "c")):
        progress.update({"name": name, "status": status, "error": "INPUT: bad" if status == "failed" else None,
                         "seconds": 1.5})
    lines = buf.getvalue().splitlines()
    assert [line for line in lines if not line.startswith("[")] == ["done a (1.5 s)", "FAILED b: INPUT: bad",
                                                                     "skipped c"]
    assert len(lines) == 5  # the bar after the first scene, then at most every 10 s, and at the end
    assert lines[-1].startswith("[" + "#" * 28 + "] 3/3 scenes | done 1 failed 1 skipped 1 |")
    assert lines[-1].endswith("ETA 0:00:00")


@pytest.mark.slow
def test_scheduler_address_uses_an_existing_cluster(client, tmp_path):
    (name, rdn, obs), = batch_scenes.emit_scenes(str(tmp_path), [("only", 0, 6)])
    lst = write_csv(tmp_path / "list.csv", ["NAME", "INPUT", "OBSERVATION"], [[name, rdn, obs]])
    address = client.scheduler.address
    assert address.startswith("tcp://127.0.0.1:")
    rc, log = run_cli("run", "toareflectance", "--inputs", lst, "--output-dir", tmp_path / "out", "--scheduler", address,
                      "--retries", "1")
    assert rc == 0, log
    assert f"Connected to {address}: 2 worker(s)." in log and "Starting a local Dask cluster" not in log
    (rec,) = records(tmp_path / "out")
    assert rec["status"] == "done" and rec["worker"] in client.scheduler_info(n_workers=-1)["workers"]
    assert os.path.isfile(rec["outputs"]["OUTPUT"])


@pytest.mark.parametrize("path", ["onnx-attention", "native-attention", "native-forward"])
def test_one_thread_spectf_runs_small_chunks_with_identical_results(monkeypatch, path):
    """A batch worker has one ONNX Runtime thread: SpecTf then still runs small chunks per call
    (CPU_CHUNK on ONNX Runtime's attention, NATIVE_CHUNK around the native kernel, FORWARD_CHUNK in the
    native forward pass: the fast path of the multi-threaded case, ~25 % less CPU than one call per
    batch), with the same probabilities as two threads."""
    from spectral_transformers.runtime.config import RuntimeConfig
    from spectral_transformers.runtime.models import spectf
    from support import built_model

    built_model("spectf-cloud-v0.1.0")
    rng = np.random.default_rng(1)
    spectra = rng.uniform(0.05, 0.6, (64, 268)).astype(np.float32)
    wl = np.linspace(410, 2450, 268).astype(np.float32)
    probs = {}
    for threads in (1, 2):
        model = spectf.SpectfModel.load("spectf-cloud-v0.1.0", device="cpu", threads=threads,
                                        config=RuntimeConfig(native_attention=path != "onnx-attention"))
        if path == "native-forward":
            if model.native_forward() is None:
                pytest.skip(f"native forward pass: {model.native_forward_reason} (tests/test_native_forward.py "
                            "fails in CI where it should exist)")
            single, chunk = model.native_forward(), spectf.FORWARD_CHUNK
            count = (lambda args: len(args[0]))
        elif path == "native-attention":
            if model.native_attention() is None:
                pytest.skip(f"native attention: {model.native_attention_reason} (tests/test_native_attention.py "
                            "fails in CI where it should exist)")
            monkeypatch.setattr(model, "native_forward", lambda: None)  # the kernel between the ONNX graphs
            single, chunk = model.native_attention()[0], spectf.NATIVE_CHUNK  # the pre-attention session
            count = (lambda args: len(args[1]["spectra"]))
        else:
            single, chunk = model._single_threaded(model.probability_session()), spectf.CPU_CHUNK  # noqa: SLF001
            count = (lambda args: len(args[1]["spectra"]))
        sizes = []
        real_run = single.run
        monkeypatch.setattr(single, "run", lambda *a, **k: sizes.append(count(a)) or real_run(*a, **k))
        probs[threads], _ = model.predict(spectra, wl)
        monkeypatch.undo()
        assert set(sizes) == {chunk} and sum(sizes) == 64, (threads, sizes)
    np.testing.assert_array_equal(probs[1], probs[2])


@pytest.mark.qgis_process
@pytest.mark.parametrize("assignment", ["THRESHOLD=2", "DEVICE=gpu"])
def test_bad_value_gets_the_qgis_process_message(tmp_path, capsys, assignment):
    rfl = batch_scenes.shared("emit", "emit_l2a_rfl_10x10.img")
    lst = write_csv(tmp_path / "list.csv", ["INPUT"], [[str(rfl)]])
    assert cli.main(["run", "cloudmask", "--inputs", lst, "--output-dir", str(tmp_path / "out"), assignment]) == 2
    message = capsys.readouterr().err.strip().splitlines()[-1].removeprefix("error: ")
    assert message.startswith(assignment.split("=")[0] + ": "), message
    code, _, stdout, stderr = qgis_process("run", "spectraltf:cloudmask", "--", f"INPUT={rfl}", assignment,
                                           f"OUTPUT={tmp_path / 'x.tif'}", json_output=False)
    assert code != 0 and message in stdout + stderr, (message, stdout + stderr)
