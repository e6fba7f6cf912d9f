"""The INT8 build on a stand-in TensorRT (unittest.mock) and a counting device memory: the
calibrator's device buffer goes back whether the build succeeds or raises."""
import sys
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from miro_fakes import CountingMemory

from miro_edge.trt.builder import BuildRequest, TrtBuildConfig, build_with_python_api


def stand_in_tensorrt(build):
    trt = mock.MagicMock(name="tensorrt")
    trt.__version__ = "8.5.2.2"
    trt.IInt8EntropyCalibrator2 = object  # the calibrator subclasses it
    trt.Builder.return_value.create_network.return_value = mock.MagicMock(name="network")
    trt.OnnxParser.return_value.parse.return_value = True
    trt.Builder.return_value.build_serialized_network.side_effect = build
    return trt


@pytest.mark.parametrize("build, raises", [(lambda network, config: b"engine", None),
                                           (RuntimeError("the builder ran out of device memory"), RuntimeError)])
def test_the_calibrators_buffer_is_released_after_the_build(tmp_path, monkeypatch, build, raises):
    memory = CountingMemory()
    monkeypatch.setitem(sys.modules, "tensorrt", stand_in_tensorrt(build))
    monkeypatch.setattr("miro_edge.trt.cuda_mem.open_device_memory", lambda prefer=None: memory)
    onnx = Path(tmp_path / "model.onnx")
    onnx.write_bytes(b"parsed by the stand-in parser")
    request = BuildRequest(onnx, TrtBuildConfig(precision="int8", calibration_batch_size=4), "input", (1, 8, 8),
                           np.zeros((8, 1, 8, 8), np.float32))
    if raises is None:
        assert build_with_python_api(request) == b"engine"
    else:
        with pytest.raises(raises):
            build_with_python_api(request)
    assert memory.allocs == 1, "the calibrator allocated its batch buffer"
    assert memory.live == set() and memory.closed
