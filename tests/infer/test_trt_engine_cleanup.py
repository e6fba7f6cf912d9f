"""TrtEngine's open on a stand-in TensorRT module and a counting device memory: an open that fails
at any step after the device memory is opened hands back every buffer and closes the memory.
(The real engine runs only where TensorRT and a GPU are: tests/infer/test_infer_engines.py.)"""
import sys
import types
from pathlib import Path

import pytest
from miro_fakes import CountingMemory

from miro_edge.errors import EngineBuildError, HardwareUnavailableError
from miro_edge.export.pipeline import export_checkpoint
from miro_edge.infer.base import EngineOptions
from miro_edge.infer.trt_engine import TrtEngine
from miro_edge.model.artifacts import ONNX_ARTIFACT


def fake_tensorrt(deserialize_ok=True, outputs=1):
    """The TensorRT 8.5 calls TrtEngine._open makes (name-based I/O), with a 1x8x8 -> 5 network."""
    trt = types.ModuleType("tensorrt")
    trt.__version__ = "8.5.2.2"
    trt.TensorIOMode = types.SimpleNamespace(INPUT="in", OUTPUT="out")

    class Logger:
        WARNING = 2

        def __init__(self, level):
            self.level = level

    class Context:
        def set_input_shape(self, name, shape):
            self.batch = shape[0]

        def get_tensor_shape(self, name):
            return (self.batch, 5)

    class Engine:
        names = ["input"] + [f"logits{i}" for i in range(outputs)]
        num_io_tensors = len(names)

        def get_tensor_name(self, i):
            return self.names[i]

        def get_tensor_mode(self, name):
            return trt.TensorIOMode.INPUT if name == "input" else trt.TensorIOMode.OUTPUT

        def create_execution_context(self):
            return Context()

    class Runtime:
        def __init__(self, logger):
            pass

        def deserialize_cuda_engine(self, blob):
            return Engine() if deserialize_ok else None

    trt.Logger, trt.Runtime = Logger, Runtime
    return trt


@pytest.fixture
def model(tmp_path, ckpt_factory):
    """A real exported cnn2d ONNX model (its input shape is read from it) and an engine file."""
    onnx = export_checkpoint(ckpt_factory("cnn2d"), tmp_path / "export", run_parity=False).onnx.path
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"not parsed by the stand-in runtime")
    return {ONNX_ARTIFACT: Path(onnx)}, engine


def open_with(monkeypatch, model, memory, trt):
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setattr("miro_edge.trt.cuda_mem.open_device_memory", lambda prefer=None: memory)
    artifacts, engine_file = model
    engine = TrtEngine(artifacts, EngineOptions(max_batch=4), engine_path=engine_file)
    assert engine.input_shape == (1, 8, 8)
    engine._open()
    return engine


def test_a_good_open_holds_two_buffers_and_close_frees_them(monkeypatch, model):
    memory = CountingMemory()
    engine = open_with(monkeypatch, model, memory, fake_tensorrt())
    assert len(memory.live) == 2 and not memory.closed
    engine._close()
    assert memory.live == set() and memory.closed


@pytest.mark.parametrize("trt_kw, fail_at, error", [
    ({}, 2, HardwareUnavailableError),                      # the output buffer does not fit
    ({}, 1, HardwareUnavailableError),                      # the input buffer does not fit
    ({"deserialize_ok": False}, None, EngineBuildError),    # an engine from another TensorRT
    ({"outputs": 2}, None, EngineBuildError),               # not one input and one output
])
def test_a_failed_open_leaks_no_device_memory(monkeypatch, model, trt_kw, fail_at, error):
    memory = CountingMemory(fail_at=fail_at)
    with pytest.raises(error):
        open_with(monkeypatch, model, memory, fake_tensorrt(**trt_kw))
    assert memory.live == set(), "device buffers left allocated"
    assert memory.closed, "the device memory (CUDA context, stream) was not closed"
