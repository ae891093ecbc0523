"""ONNX Runtime sessions: device selection, cache, errors and cancellable runs (no QGIS needed)."""
import threading
import time
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

from support import add_onnx  # noqa: E402

from spectral_transformers.runtime.models import onnx_backend  # noqa: E402
from spectral_transformers.runtime.errors import Cancelled, InputError, ModelError  # noqa: E402
from spectral_transformers.runtime.monitor import Monitor  # noqa: E402


def _add_model(path):
    return Path(add_onnx(path, {"model_card": '{"id": "add"}'}))


def _slow_model(path, n=1400, repeats=60):
    """A chain of large MatMuls: long enough (seconds) to test run termination."""
    nodes, prev = [], "x"
    # 1/n keeps every value at 1.0: a shrinking chain ends in float32 denormals, which are slow enough on x86
    # to make the run take minutes instead of seconds
    w = helper.make_tensor("w", TensorProto.FLOAT, [n, n], np.full(n * n, 1.0 / n, np.float32).tobytes(), raw=True)
    for i in range(repeats):
        nodes.append(helper.make_node("MatMul", [prev, "w"], [f"h{i}"]))
        prev = f"h{i}"
    graph = helper.make_graph(nodes, "slow", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n, n])],
                              [helper.make_tensor_value_info(prev, TensorProto.FLOAT, [n, n])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path, prev


def test_cpu_session_runs_and_is_cached(tmp_path):
    path = _add_model(tmp_path / "add.onnx")
    s1 = onnx_backend.load_session(path, "cpu")
    s2 = onnx_backend.load_session(path, "cpu")
    assert s1 is s2
    assert s1.active_provider == "CPUExecutionProvider"
    assert s1.metadata["model_card"] == '{"id": "add"}'
    (y,) = s1.run(["y"], {"x": np.arange(3, dtype=np.float32)})
    np.testing.assert_array_equal(y, [0, 2, 4])
    assert "CPUExecutionProvider" in s1.describe()


def test_unknown_device_and_missing_or_corrupt_model(tmp_path):
    path = _add_model(tmp_path / "add.onnx")
    with pytest.raises(InputError, match="^device: "):
        onnx_backend.load_session(path, "tpu")
    with pytest.raises(InputError, match="model: model file not found"):
        onnx_backend.load_session(tmp_path / "missing.onnx", "cpu")
    bad = tmp_path / "truncated.onnx"
    bad.write_bytes(path.read_bytes()[:20])
    with pytest.raises(ModelError, match="not a valid ONNX model"):
        onnx_backend.load_session(bad, "cpu")


def test_cuda_without_gpu_is_a_clear_error(tmp_path):
    if onnx_backend._gpu_present():
        pytest.skip("a GPU is present")
    path = _add_model(tmp_path / "add.onnx")
    with pytest.raises(InputError, match="device: CUDA was requested"):
        onnx_backend.load_session(path, "cuda")
    assert onnx_backend.load_session(path, "auto").active_provider == "CPUExecutionProvider"


class _CancelLater(Monitor):
    def __init__(self, after):
        self.t0 = time.monotonic()
        self.after = after

    def cancelled(self):
        return time.monotonic() - self.t0 > self.after


def test_run_cancellable_terminates_a_long_inference(tmp_path):
    path, out = _slow_model(tmp_path / "slow.onnx")
    session = onnx_backend.load_session(path, "cpu", threads=1)
    x = np.ones((1400, 1400), np.float32)
    t0 = time.monotonic()
    session.run([out], {"x": x})
    full = time.monotonic() - t0
    if full < 1.0:
        pytest.skip(f"inference too fast ({full:.2f} s) to test termination")
    t0 = time.monotonic()
    with pytest.raises(Cancelled):
        session.run_cancellable([out], {"x": x}, _CancelLater(0.2 * full))
    assert time.monotonic() - t0 < 0.8 * full
    # no watchdog thread left behind
    assert not [t for t in threading.enumerate() if t.name == "spectraltf-ort-watchdog"]
    # a run that is not cancelled returns normally
    (y,) = session.run_cancellable([out], {"x": x}, Monitor())
    assert y.shape == (1400, 1400)
