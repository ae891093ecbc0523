"""The overlapped streaming loop (read k+1 / compute k / write k−1 in threads) and SpecTf on it.

Outputs are identical with and without overlap; errors of any stage and cancellation mid-run stop
both threads and leave no output; no nodata pixel reaches the model; the quick synthetic EMIT scene
through qgis_process matches a float32 reference (bench/spectf_scene.py, correctness part only).
"""
import importlib.util
import os
import threading
import time

import numpy as np
import pytest
from osgeo import gdal

from support import REPO, qgis_process, require, shared
from test_cloudmask import EMIT, EMIT_OBS, build_tiny_spectf, random_toa, read, real_model, write_cube

from spectral_transformers.runtime.models import spectf, spectf_pipeline
from spectral_transformers.runtime.errors import Cancelled, InputError
from spectral_transformers.runtime.monitor import RecordingMonitor
from spectral_transformers.runtime.pipeline import IN_FLIGHT_BLOCKS, overlapped
from spectral_transformers.runtime.pipeline.writer import OutputError, RasterWriter

gdal.UseExceptions()


def _stage_threads():
    return [t for t in threading.enumerate() if t.name in ("spectraltf-read", "spectraltf-write")]


class _Recorder:
    """Stages that record which thread ran them and how many read blocks are alive at once."""

    def __init__(self, fail=None, slow=0.0):
        self.lock = threading.Lock()
        self.alive = self.peak_alive = 0
        self.threads = {"read": set(), "compute": set(), "write": set()}
        self.written = []
        self.fail = fail or {}
        self.slow = slow

    def read(self, item):
        self.threads["read"].add(threading.current_thread().name)
        if self.fail.get("read") == item:
            raise ValueError(f"read {item}")
        with self.lock:
            self.alive += 1
            self.peak_alive = max(self.peak_alive, self.alive)
        time.sleep(self.slow)
        return np.full(3, item)

    def compute(self, item, data, advance):
        self.threads["compute"].add(threading.current_thread().name)
        if self.fail.get("compute") == item:
            raise ValueError(f"compute {item}")
        advance(0.5)
        out = data * 2
        with self.lock:
            self.alive -= 1
        return out

    def write(self, item, result):
        self.threads["write"].add(threading.current_thread().name)
        if self.fail.get("write") == item:
            raise ValueError(f"write {item}")
        time.sleep(self.slow)
        self.written.append((item, result.tolist()))


@pytest.mark.parametrize("overlap", [True, False])
def test_overlapped_runs_every_stage_in_order(overlap):
    rec = _Recorder(slow=0.002)
    monitor = RecordingMonitor()
    overlapped(range(20), rec.read, rec.compute, rec.write, monitor, overlap=overlap)
    assert rec.written == [(i, [2 * i] * 3) for i in range(20)]
    assert monitor.fractions[-1] == pytest.approx(1.0) and monitor.fractions == sorted(monitor.fractions)
    main = threading.current_thread().name
    assert rec.threads["compute"] == {main}
    if overlap:
        assert rec.threads["read"] == {"spectraltf-read"} and rec.threads["write"] == {"spectraltf-write"}
        assert rec.peak_alive <= 2 <= IN_FLIGHT_BLOCKS  # one computed, one read ahead
    else:
        assert rec.threads["read"] == rec.threads["write"] == {main}
    assert not _stage_threads()


@pytest.mark.parametrize("stage", ["read", "compute", "write"])
def test_overlapped_error_in_any_stage_stops_both_threads(stage):
    rec = _Recorder(fail={stage: 5})
    with pytest.raises(ValueError, match=f"{stage} 5"):
        overlapped(range(20), rec.read, rec.compute, rec.write, overlap=True)
    assert not _stage_threads()
    assert [i for i, _ in rec.written] == list(range(len(rec.written))) and len(rec.written) <= 5
    assert all(i < 5 for i, _ in rec.written)


def test_overlapped_cancellation():
    rec = _Recorder(slow=0.001)
    with pytest.raises(Cancelled):
        overlapped(range(50), rec.read, rec.compute, rec.write, RecordingMonitor(cancel_after=7))
    assert not _stage_threads() and len(rec.written) <= 7


# ---------------------------------------------------------------------------------------------
# SpecTf on the overlapped loop
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_spectf(tmp_path_factory.mktemp("models") / "tiny-spectf.onnx")


def _outputs(folder, keys=("mask", "probability", "attention", "top_wavelength")):
    os.makedirs(folder, exist_ok=True)
    return {k: os.path.join(folder, f"{k}.tif") for k in keys}


def test_spectf_outputs_identical_with_and_without_overlap(tmp_path, tiny):
    cube, wl, fwhm = random_toa(shape=(37, 13), nodata_pixels=((0, 0), (3, 4), (20, 7), (36, 12)))
    cube[40:60, 10, 5] = -9999.0  # a pixel with a few nodata bands: nodata in the outputs
    src = write_cube(tmp_path / "toa.tif", cube, wl, fwhm)
    results = {}
    for overlap in (True, False):
        out = _outputs(tmp_path / str(overlap))
        mon = RecordingMonitor()
        res = spectf_pipeline.run_spectf(src, tiny, out, input_type="reflectance", device="cpu", batch_size=5,
                                block_bytes=13 * 268 * 5 * 4 * 3 * 3, monitor=mon, overlap=overlap)
        streaming = next(m for m in mon.infos if m.startswith("Streaming"))
        assert streaming.startswith("Streaming 13 block(s) of up to 3 rows" if overlap else
                                    "Streaming 5 block(s) of up to 9 rows"), streaming
        results[overlap] = res, {k: read(p)[0] for k, p in out.items()}
    (ra, a), (rb, b) = results[True], results[False]
    assert ra.valid_pixels == rb.valid_pixels == 37 * 13 - 5 and ra.cloud_pixels == rb.cloud_pixels
    assert ra.top_wavelength_range == rb.top_wavelength_range
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert a["mask"][10, 5] == 255 and a["mask"][0, 0] == 255 and set(np.unique(a["mask"])) <= {0, 1, 255}
    assert sorted(os.listdir(tmp_path / "True")) == sorted(os.listdir(tmp_path / "False"))


def test_spectf_real_model_radiance_obs_identical_with_and_without_overlap(tmp_path):
    """Real EMIT radiance + OBS (TOA conversion in the reader thread), many small blocks."""
    model = real_model()
    probs = {}
    for overlap in (True, False):
        out = _outputs(tmp_path / str(overlap), ("mask", "probability"))
        spectf_pipeline.run_spectf(str(shared(*EMIT)), model, out, observation=str(shared(*EMIT_OBS)), device="cpu",
                          block_bytes=22 * 268 * 3 * 4 * 2 * 3, overlap=overlap)
        probs[overlap] = read(out["probability"])[0], read(out["mask"])[0]
    np.testing.assert_array_equal(probs[True][0], probs[False][0])
    np.testing.assert_array_equal(probs[True][1], probs[False][1])
    assert np.sum(probs[True][1] != 255) == 266


def test_spectf_cancel_mid_run_leaves_nothing(tmp_path, tiny):
    cube, wl, fwhm = random_toa(shape=(40, 10))
    src = write_cube(tmp_path / "toa.tif", cube, wl, fwhm)
    out = _outputs(tmp_path / "out")
    with pytest.raises(Cancelled):
        spectf_pipeline.run_spectf(src, tiny, out, input_type="reflectance", device="cpu", batch_size=4,
                          block_bytes=10 * 268 * 5 * 4 * 2 * 3, monitor=RecordingMonitor(cancel_after=12))
    assert os.listdir(tmp_path / "out") == [] and not _stage_threads()


def test_spectf_write_error_mid_run_leaves_nothing(tmp_path, tiny, monkeypatch):
    cube, wl, fwhm = random_toa(shape=(40, 10))
    src = write_cube(tmp_path / "toa.tif", cube, wl, fwhm)
    out = _outputs(tmp_path / "out", ("mask", "probability"))
    original, calls = RasterWriter.write, []

    def failing(self, window, array):
        calls.append(window.yoff)
        if len(calls) == 7:
            raise OutputError("the disk is full (simulated)", self.parameter)
        return original(self, window, array)

    monkeypatch.setattr(RasterWriter, "write", failing)
    with pytest.raises(InputError, match="^mask: .*simulated"):
        spectf_pipeline.run_spectf(src, tiny, out, input_type="reflectance", device="cpu",
                          block_bytes=10 * 268 * 3 * 4 * 2 * 3)
    assert os.listdir(tmp_path / "out") == [] and not _stage_threads() and len(calls) == 7


def test_nodata_pixels_never_reach_the_model(tmp_path):
    """Spy on the model: every spectrum it gets is finite, positive reflectance of a valid pixel."""
    model = spectf.SpectfModel.load(real_model(), device="cpu")
    seen = []
    original = model.predict

    def spy(spectra, wavelengths_nm, attention=False, monitor=None):
        spectra = np.asarray(spectra)
        assert np.all(np.isfinite(spectra)) and spectra.min() > -1 and spectra.max() < 5
        seen.append(spectra.shape[0])
        return original(spectra, wavelengths_nm, attention=attention, monitor=monitor)

    model.predict = spy
    out = _outputs(tmp_path, ("mask",))
    res = spectf_pipeline.run_spectf(str(shared(*EMIT)), model, out, observation=str(shared(*EMIT_OBS)), device="cpu",
                            block_bytes=22 * 268 * 3 * 4 * 4 * 3)
    assert sum(seen) == res.valid_pixels == 266  # 550 pixels, 284 of them −9999 fill


# ---------------------------------------------------------------------------------------------
# the scene bench's correctness part through qgis_process (no timing)
# ---------------------------------------------------------------------------------------------
def _bench():
    spec = importlib.util.spec_from_file_location("spectf_scene", REPO / "bench" / "spectf_scene.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.qgis_process
def test_scene_bench_quick_correctness(tmp_path):
    require(shared(*EMIT))
    real_model()
    figures = _bench().main(["--lines", "48", "--samples", "64", "--workdir", str(tmp_path), "--no-timing"])
    assert figures["valid_as_built"]  # exactly the fill pixels are nodata
    assert figures["max_abs_dp"] <= 1e-4 and figures["reference_spectra"] > 200
    assert figures["mask_agreement"] == 1.0 and figures["nodata_ok"]
    assert 0.1 < figures["cloud_fraction"] < 0.9  # both classes in the mask
    assert figures["reference_cloud_fraction"] > 0.0
    assert not os.path.exists(tmp_path / "out_48x64")
