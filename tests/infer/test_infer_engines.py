"""Inference engines: ORT vs torch on real models, provider selection, lifecycle, missing dependencies."""
import importlib.util
import sys

import numpy as np
import pytest
from model_fixtures import real_samples

from miro_edge.errors import ConfigError, InputError, MissingDependencyError
from miro_edge.export.pipeline import export_checkpoint
from miro_edge.infer.base import EngineClosedError, EngineOptions, create_engine, engine_names
from miro_edge.infer.ort_engine import OrtEngine, select_providers

pytest.importorskip("onnxruntime")


@pytest.fixture
def artifacts(tmp_path, ckpt_factory):
    def make(name="cnn2d"):
        ckpt = ckpt_factory(name)
        onnx_path = export_checkpoint(ckpt, tmp_path / name, run_parity=False).onnx.path
        return {"model.onnx": onnx_path, "checkpoint.pt": ckpt}
    return make


@pytest.mark.parametrize("name", ["cnn2d", "cnn1d"])
def test_ort_and_torch_engines_agree(artifacts, name):
    arts = artifacts(name)
    x = real_samples(name, n=9)
    with create_engine("onnxruntime", arts) as ort_eng, create_engine("torch", arts) as torch_eng:
        assert ort_eng.input_shape == torch_eng.input_shape == x.shape[1:]
        a, b = ort_eng.infer(x), torch_eng.infer(x)
        assert a.shape == (9, 5)
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-3)
        np.testing.assert_allclose(ort_eng.infer(x[:1]), a[:1], atol=1e-5)
        ort_eng.warmup()
        assert ort_eng.describe()["providers"] == ["CPUExecutionProvider"]
        with pytest.raises(InputError, match="expects batches shaped"):
            ort_eng.infer(np.zeros((1, 3, 3), dtype=np.float32))
        np.testing.assert_allclose(ort_eng.infer(x.astype(np.float64)), a, atol=1e-5)  # cast to float32
    with pytest.raises(EngineClosedError):
        ort_eng.infer(x)


def test_auto_engine_here_is_onnxruntime(artifacts):
    arts = artifacts()
    assert set(engine_names()) == {"tensorrt", "onnxruntime", "torch"}
    engine = create_engine("auto", arts)
    assert engine.name == ("tensorrt" if importlib.util.find_spec("tensorrt") else "onnxruntime")
    assert create_engine("auto", {"checkpoint.pt": arts["checkpoint.pt"]}).name == "torch"
    with pytest.raises(ConfigError, match="choose one of"):
        create_engine("tflite", arts)


def test_provider_order_and_trt_options(tmp_path):
    opts = EngineOptions(fp16=True, engine_cache_dir=str(tmp_path))
    every = ["CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider", "AzureExecutionProvider"]
    chosen = select_providers(every, opts)
    assert [c if isinstance(c, str) else c[0] for c in chosen] == [
        "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    trt_opts = chosen[0][1]
    assert trt_opts["trt_fp16_enable"] is True and trt_opts["trt_engine_cache_enable"] is True
    assert trt_opts["trt_engine_cache_path"].startswith(str(tmp_path))
    assert select_providers(["CPUExecutionProvider", "AzureExecutionProvider"], opts) == ["CPUExecutionProvider"]
    assert select_providers(["CUDAExecutionProvider", "CPUExecutionProvider"], EngineOptions()) == [
        "CUDAExecutionProvider", "CPUExecutionProvider"]
    only_cpu = EngineOptions(providers=("CPUExecutionProvider",))
    assert select_providers(every, only_cpu) == ["CPUExecutionProvider"]


def test_missing_dependency_names_the_extra(artifacts, monkeypatch):
    arts = artifacts()
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    engine = OrtEngine(arts)
    with pytest.raises(MissingDependencyError, match=r"miro-edge\[onnx\]"):
        engine.open()
    if importlib.util.find_spec("tensorrt") is None:
        trt_engine = create_engine("tensorrt", arts)
        with pytest.raises(MissingDependencyError, match=r"miro-edge\[trt\]"):
            trt_engine.open()


@pytest.mark.hardware
@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is None,
                    reason="tensorrt is not installed (needs a Jetson or an NVIDIA GPU with TensorRT)")
def test_tensorrt_engine_matches_ort(artifacts, tmp_path):
    from miro_edge.errors import HardwareUnavailableError

    arts = artifacts()
    x = real_samples("cnn2d", n=5)
    try:
        with create_engine("tensorrt", arts, EngineOptions(engine_cache_dir=str(tmp_path / "c"), max_batch=8)) as eng:
            got = eng.infer(x)
    except HardwareUnavailableError as exc:
        pytest.skip(str(exc))
    with create_engine("onnxruntime", arts) as ref:
        np.testing.assert_allclose(got, ref.infer(x), atol=1e-3, rtol=1e-3)
