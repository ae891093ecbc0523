"""Algorithms run the way the Processing dialog runs them: in a ``QgsProcessingAlgRunnerTask`` on
QGIS's task manager (a worker thread), two at once, and cancelled part-way.

Each test adds the task(s) to ``QgsApplication.taskManager()`` and spins
``QgsApplication.processEvents()`` until every task's ``executed(bool, dict)`` signal fired (with a
timeout). Results are compared with a direct ``processing.run`` of the same algorithm. Cancellation
is requested through the task's ``QgsProcessingFeedback`` from the worker thread as soon as the first
progress report arrives, so the run is certainly still going; it must end with ``executed(False)``,
a cancellation message, and no output or partial file.

Inputs: the real EMIT Libya-4 radiance clip and its derived OBS, EMIT L2A reflectance, a Sentinel-2
chip (ukis-csmask test file) and, for cancellation, a 300-line radiance cube tiled from the EMIT clip
(written to a temporary folder). Cloud masks use the SpecTf model built into ``models/`` by
``make setup``; segmentation a tiny random conv model (``seg_models``).
"""
import os
import re
import time

import numpy as np
import pytest
from osgeo import gdal

from support import built_model, shared

gdal.UseExceptions()

EMIT_RDN = ("emit", "emit_l1b_rdn_libya4_25x22.img")
EMIT_OBS = ("emit", "emit_l1b_obs_libya4_25x22_derived.img")
EMIT_RFL = ("emit", "emit_l2a_rfl_10x10.img")
S2_NPZ = ("multispectral", "sentinel2.npz")
SPECTF = "spectf-cloud-v0.1.0"
TIMEOUT_S = 180


# ---------------------------------------------------------------------------------------------
# running algorithms as background tasks
# ---------------------------------------------------------------------------------------------
class TaskRun:
    """One algorithm queued as a ``QgsProcessingAlgRunnerTask``; records what its signals report."""

    def __init__(self, alg_id, params, cancel_on_progress=False):
        from qgis.core import QgsApplication, QgsProcessingAlgRunnerTask, QgsProcessingContext, QgsProcessingFeedback
        from qgis.PyQt.QtCore import Qt

        alg = QgsApplication.processingRegistry().algorithmById(alg_id)
        assert alg is not None, f"{alg_id} is not registered"
        self.alg_id = alg_id
        self.context = QgsProcessingContext()
        self.feedback = QgsProcessingFeedback()
        self.progress = []            # progress values (%) as reported from the worker thread
        self.cancelled_at = None      # number of progress reports when cancel() was requested
        self.ok = None
        self.results = None
        self.cancel_on_progress = cancel_on_progress
        # DirectConnection: runs in the worker thread right when the algorithm reports progress
        self.feedback.progressChanged.connect(self._on_progress, Qt.ConnectionType.DirectConnection)
        self.task = QgsProcessingAlgRunnerTask(alg, params, self.context, self.feedback)
        self.task.executed.connect(self._on_executed)

    def _on_progress(self, value):
        self.progress.append(float(value))
        if self.cancel_on_progress and self.cancelled_at is None and value > 0:
            self.cancelled_at = len(self.progress)
            self.feedback.cancel()

    def _on_executed(self, ok, results):
        self.ok, self.results = bool(ok), dict(results or {})

    @property
    def done(self):
        return self.ok is not None

    def running(self):
        from qgis.PyQt import sip

        from spectral_transformers.qgis_compat import TASK_RUNNING

        return not self.done and not sip.isdeleted(self.task) and self.task.status() == TASK_RUNNING

    @property
    def log(self):
        return self.feedback.textLog()


def run_tasks(runs, timeout=TIMEOUT_S):
    """Queue every :class:`TaskRun` at once and spin the event loop until all executed; returns the
    largest number of tasks seen running at the same time."""
    from qgis.core import QgsApplication

    manager = QgsApplication.taskManager()
    for run in runs:
        manager.addTask(run.task)
    deadline = time.monotonic() + timeout
    most = 0
    while not all(r.done for r in runs):
        assert time.monotonic() < deadline, f"tasks did not finish within {timeout} s: " + \
            ", ".join(f"{r.alg_id} progress {r.progress[-1:] or 0}" for r in runs if not r.done)
        QgsApplication.processEvents()
        most = max(most, sum(r.running() for r in runs))
        time.sleep(0.005)
    for _ in range(5):  # let the manager delete the finished tasks
        QgsApplication.processEvents()
    return most


def direct(alg_id, params):
    import processing
    from qgis.core import QgsProcessingContext, QgsProcessingFeedback

    return processing.run(alg_id, params, context=QgsProcessingContext(), feedback=QgsProcessingFeedback())


def read(path):
    return gdal.Open(str(path)).ReadAsArray()


def files_in(folder):
    return sorted(os.listdir(folder))


def _concurrency_possible():
    from qgis.PyQt.QtCore import QThreadPool

    return QThreadPool.globalInstance().maxThreadCount() >= 2


# ---------------------------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------------------------
def tall_radiance(path, lines=300):
    """A ``lines`` × 22 × 285 EMIT radiance cube (the real Libya-4 clip tiled downtrack) as GeoTIFF
    with the clip's wavelengths and FWHM; nodata −9999."""
    from spectral_transformers.runtime.pipeline import write_array
    from spectral_transformers.runtime.io.spectral import read_spectral_info, write_spectral_metadata

    ds = gdal.Open(str(shared(*EMIT_RDN)))
    cube = ds.ReadAsArray().astype(np.float32)
    info = read_spectral_info(ds)
    tall = np.tile(cube, (1, -(-lines // cube.shape[1]), 1))[:, :lines]
    write_array(str(path), tall, nodata=-9999.0)
    out = gdal.Open(str(path), gdal.GA_Update)
    write_spectral_metadata(out, info.wavelength_nm, info.fwhm_nm)
    out = None
    return str(path)


def s2_raster(path, size):
    """Real Sentinel-2 reflectance (ukis-csmask chip, blue/green/red), tiled to ``size`` × ``size``."""
    from seg_models import write_raster

    img = np.load(shared(*S2_NPZ))["img"][:, :, :3]
    img = np.tile(img, (-(-size // img.shape[0]), -(-size // img.shape[1]), 1))[:size, :size]
    return write_raster(path, np.moveaxis(img, -1, 0), names=["blue", "green", "red"], nodata=-9999.0)


# ---------------------------------------------------------------------------------------------
# tests
# ---------------------------------------------------------------------------------------------
def test_every_algorithm_may_run_in_a_background_task(processing_provider):
    from spectral_transformers.qgis_compat import ALGORITHM_FLAG_NO_THREADING

    algs = processing_provider.algorithms()
    assert len(algs) >= 5
    for alg in algs:
        assert not alg.flags() & ALGORITHM_FLAG_NO_THREADING, alg.id()


def test_toa_and_cloudmask_at_once_match_direct_runs(processing_provider, tmp_path, monkeypatch):
    built_model(SPECTF)
    monkeypatch.setenv("SPECTRALTF_BLOCK_MB", "0.2")  # ~8 radiance lines per block: several blocks
    rdn, obs = str(shared(*EMIT_RDN)), str(shared(*EMIT_OBS))
    toa_params = {"INPUT": rdn, "OBSERVATION": obs, "OUTPUT": str(tmp_path / "toa_task.tif")}
    cm_params = {"INPUT": rdn, "OBSERVATION": obs, "DEVICE": "cpu", "OUTPUT": str(tmp_path / "mask_task.tif"),
                 "OUTPUT_PROBABILITY": str(tmp_path / "prob_task.tif")}
    toa, cm = TaskRun("spectraltf:toareflectance", toa_params), TaskRun("spectraltf:cloudmask", cm_params)
    most = run_tasks([toa, cm])
    assert toa.ok, toa.log
    assert cm.ok, cm.log
    if _concurrency_possible():
        assert most == 2, "the two tasks never ran at the same time"
    for run in (toa, cm):  # progress per block, increasing, ending at 100 %
        assert len(run.progress) >= 3 and run.progress[-1] == pytest.approx(100.0), run.progress
        assert all(b >= a for a, b in zip(run.progress, run.progress[1:])), run.progress

    ref_toa = direct("spectraltf:toareflectance", dict(toa_params, OUTPUT=str(tmp_path / "toa_direct.tif")))
    ref_cm = direct("spectraltf:cloudmask", dict(cm_params, OUTPUT=str(tmp_path / "mask_direct.tif"),
                                                   OUTPUT_PROBABILITY=str(tmp_path / "prob_direct.tif")))
    got = read(toa.results["OUTPUT"])
    assert got.shape == (285, 25, 22)
    np.testing.assert_array_equal(got, read(ref_toa["OUTPUT"]))
    valid = read(rdn)[0] != -9999
    assert np.all(np.isfinite(got[:, valid])) and np.all(got[:, ~valid] == -9999)
    np.testing.assert_array_equal(read(cm.results["OUTPUT"]), read(ref_cm["OUTPUT"]))
    np.testing.assert_allclose(read(cm.results["OUTPUT_PROBABILITY"]), read(ref_cm["OUTPUT_PROBABILITY"]),
                               atol=1e-6)
    assert cm.results["VALID_PIXELS"] == ref_cm["VALID_PIXELS"] == 266
    assert cm.results["CLOUD_PIXELS"] == ref_cm["CLOUD_PIXELS"] == 0  # clear-sky desert


def test_two_cloudmasks_share_one_cached_session(processing_provider, tmp_path):
    from spectral_transformers.runtime.models import onnx_backend

    model = str(built_model(SPECTF))
    onnx_backend.clear_cache()
    runs = [TaskRun("spectraltf:cloudmask", {"INPUT": str(shared(*EMIT_RDN)), "OBSERVATION": str(shared(*EMIT_OBS)),
                                             "MODEL": model, "DEVICE": "cpu", "BATCH_SIZE": 64,
                                             "OUTPUT_PROBABILITY": str(tmp_path / "p_rdn.tif"),
                                             "OUTPUT": str(tmp_path / "m_rdn.tif")}),
            TaskRun("spectraltf:cloudmask", {"INPUT": str(shared(*EMIT_RFL)), "MODEL": model, "DEVICE": "cpu",
                                             "BATCH_SIZE": 16, "OUTPUT_PROBABILITY": str(tmp_path / "p_rfl.tif"),
                                             "OUTPUT": str(tmp_path / "m_rfl.tif")})]
    run_tasks(runs)
    for run in runs:
        assert run.ok, run.log
    cached = [key for key in onnx_backend._sessions if key[0] == os.path.abspath(model)]
    assert len(cached) == 1, f"expected one shared session, got {cached}"
    for run, name in zip(runs, ("rdn", "rfl")):
        params = {"INPUT": str(shared(*(EMIT_RDN if name == "rdn" else EMIT_RFL))), "MODEL": model, "DEVICE": "cpu",
                  "OUTPUT": str(tmp_path / f"ref_m_{name}.tif"), "OUTPUT_PROBABILITY": str(tmp_path / f"ref_p_{name}.tif")}
        if name == "rdn":
            params["OBSERVATION"] = str(shared(*EMIT_OBS))
        ref = direct("spectraltf:cloudmask", params)
        np.testing.assert_array_equal(read(tmp_path / f"m_{name}.tif"), read(ref["OUTPUT"]))
        np.testing.assert_allclose(read(tmp_path / f"p_{name}.tif"), read(ref["OUTPUT_PROBABILITY"]), atol=1e-6)
        assert run.results["VALID_PIXELS"] == ref["VALID_PIXELS"] > 0
    assert len([k for k in onnx_backend._sessions if k[0] == os.path.abspath(model)]) == 1


def _other_algorithm_params(name, tmp_path, suffix):
    import seg_models

    if name == "segment":
        model = tmp_path / "seg.onnx"
        if not model.exists():
            seg_models.conv_model(model, card=seg_models.seg_card("task-seg", tile=32, overlap=8))
            s2_raster(tmp_path / "s2.tif", 70)
        return {"INPUT": [str(tmp_path / "s2.tif")], "MODEL": str(model), "DEVICE": "cpu",
                "OUTPUT": str(tmp_path / f"classes_{suffix}.tif"), "OUTPUT_CONFIDENCE": str(tmp_path / f"conf_{suffix}.tif")}
    if name == "attentionmaps":
        built_model(SPECTF)
        return {"INPUT": [str(shared(*EMIT_RFL))], "MODEL": SPECTF, "DEVICE": "cpu",
                "OUTPUT": str(tmp_path / f"att_{suffix}.tif"), "OUTPUT_TOP_WAVELENGTH": str(tmp_path / f"top_{suffix}.tif")}
    if name == "orthorectify":
        return {"INPUT": str(shared("emit", "EMIT_L2A_MASK_001_20220827T060753_9999999_999.nc")),
                "OUTPUT": str(tmp_path / f"ortho_{suffix}.tif")}
    return {"OUTPUT_JSON": str(tmp_path / f"models_{suffix}.json")}  # models


@pytest.mark.parametrize("name", ["segment", "attentionmaps", "orthorectify", "models"])
def test_other_algorithms_in_a_task_match_direct_runs(name, processing_provider, tmp_path):
    run = TaskRun(f"spectraltf:{name}", _other_algorithm_params(name, tmp_path, "task"))
    run_tasks([run])
    assert run.ok, run.log
    ref = direct(f"spectraltf:{name}", _other_algorithm_params(name, tmp_path, "direct"))
    compared = 0
    for key, value in ref.items():
        if isinstance(value, str) and value.endswith(".tif"):
            np.testing.assert_array_equal(read(run.results[key]), read(value), err_msg=key)
            compared += 1
        elif isinstance(value, str) and value.endswith(".json"):
            assert open(run.results[key]).read() == open(value).read()
            compared += 1
    assert compared >= 1, ref


GUI_CALLS = ("iface", "qgis.gui", "QgsProject.instance", "QMessageBox", "QFileDialog", "QWidget",
             "processEvents")


def test_algorithms_and_runtime_make_no_gui_calls():
    """``run()`` executes in a worker thread: the algorithm adapters and the runtime must not touch
    the GUI (widgets, iface, the project, the event loop)."""
    from support import REPO

    offenders = []
    for folder in ("algorithms", "runtime"):
        for path in sorted((REPO / folder).glob("*.py")):
            text = path.read_text(encoding="utf-8")
            offenders += [f"{folder}/{path.name}: {call}" for call in GUI_CALLS
                          if re.search(rf"(?<![\w.]){re.escape(call)}\b", text)]
    assert offenders == []


@pytest.fixture(scope="module")
def cancel_inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cancel_inputs")
    import seg_models

    return {"radiance": tall_radiance(folder / "radiance_300_lines.tif"),
            "s2": s2_raster(folder / "s2_256.tif", 256),
            "seg_model": seg_models.conv_model(folder / "seg.onnx",
                                               card=seg_models.seg_card("cancel-seg", tile=32, overlap=8))}


CANCEL_CASES = {
    "toareflectance": lambda i, out: {"INPUT": i["radiance"], "SOLAR_ZENITH": 30.0, "EARTH_SUN_DISTANCE": 1.0,
                                      "OUTPUT": f"{out}/toa.tif"},
    "cloudmask": lambda i, out: {"INPUT": i["radiance"], "INPUT_TYPE": "radiance", "SOLAR_ZENITH": 30.0,
                                 "EARTH_SUN_DISTANCE": 1.0, "DEVICE": "cpu", "BATCH_SIZE": 64,
                                 "OUTPUT": f"{out}/mask.tif", "OUTPUT_PROBABILITY": f"{out}/prob.tif"},
    "segment": lambda i, out: {"INPUT": [i["s2"]], "MODEL": i["seg_model"], "DEVICE": "cpu", "BATCH_SIZE": 1,
                               "OUTPUT": f"{out}/classes.tif", "OUTPUT_CONFIDENCE": f"{out}/conf.tif"},
}


@pytest.mark.parametrize("name", sorted(CANCEL_CASES))
def test_cancelled_task_leaves_no_output(name, processing_provider, cancel_inputs, tmp_path, monkeypatch):
    if name == "cloudmask":
        built_model(SPECTF)
    monkeypatch.setenv("SPECTRALTF_BLOCK_MB", "1")  # ~40 lines of the 300-line cube per block
    out = tmp_path / "out"
    out.mkdir()
    run = TaskRun(f"spectraltf:{name}", CANCEL_CASES[name](cancel_inputs, out), cancel_on_progress=True)
    run_tasks([run])
    assert run.cancelled_at is not None, "the run finished before reporting any progress"
    assert run.ok is False, f"a cancelled run reported success: {run.results}"
    assert "cancel" in run.log.lower(), run.log
    assert files_in(out) == [], f"cancelled run left files: {files_in(out)}"
    assert max(run.progress) < 100.0, "cancellation came too late to stop anything"
    # honoured within one block: at most one more progress report after the request
    assert len(run.progress) - run.cancelled_at <= 1, run.progress
