"""TensorRT: API-generation decisions, trtexec command lines and the engine cache on real ONNX files.

The builder itself needs TensorRT and a GPU; those tests skip with a reason here.
"""
import importlib.util
import json

import numpy as np
import pytest
from model_fixtures import real_samples

from miro_edge.errors import ConfigError, UnsupportedFeatureError
from miro_edge.export.pipeline import export_checkpoint
from miro_edge.model.onnx_file import onnx_input
from miro_edge.trt.api import api_for, parse_trtexec_banner, parse_version
from miro_edge.trt.builder import TrtBuildConfig, plan_build, trtexec_command
from miro_edge.trt.engine_cache import EngineCache, EngineKey, engine_key

HAS_TRT = importlib.util.find_spec("tensorrt") is not None


def test_version_parsing():
    assert parse_version("8.2.1.8") == (8, 2, 1)
    assert parse_version("10.0.0b6") == (10, 0, 0)
    assert parse_version("8.5") == (8, 5, 0)
    assert parse_trtexec_banner("&&&& RUNNING TensorRT.trtexec [TensorRT v8201] # trtexec") == (8, 2, 1)
    assert parse_trtexec_banner("[TensorRT v8502]") == (8, 5, 2)
    assert parse_trtexec_banner("&&&& RUNNING TensorRT.trtexec [TensorRT v100300]") == (10, 3, 0)
    assert parse_trtexec_banner("no banner") is None


def test_api_rows_match_the_generations():
    tx2, nx, t10, t11 = api_for("8.2.1.8"), api_for("8.5.2.2"), api_for("10.3.0"), api_for("11.0.0")
    # TX2 / 8.2: binding indices, max_workspace_size, explicit batch flag, build_engine still there
    assert tx2.explicit_batch_flag_needed and not tx2.workspace_via_pool_limit
    assert not tx2.name_based_io and tx2.has_binding_api and tx2.has_build_engine
    assert tx2.execute_method == "execute_async_v2" and tx2.has_int8_calibrator
    # 8.4 brings the memory pool limit, still binding I/O
    t84 = api_for("8.4.3")
    assert t84.workspace_via_pool_limit and not t84.name_based_io
    # Xavier NX / 8.5: names, pool limit, v3
    assert nx.workspace_via_pool_limit and nx.name_based_io and nx.execute_method == "execute_async_v3"
    assert nx.explicit_batch_flag_needed and nx.has_int8_calibrator
    # 10.x: explicit batch default, binding API and build_engine gone
    assert not t10.explicit_batch_flag_needed and not t10.has_binding_api and not t10.has_build_engine
    assert t10.has_int8_calibrator and t10.name_based_io
    # 11.x: calibrators and precision flags gone
    assert not t11.has_int8_calibrator and not t11.has_fp16_flag and t11.strongly_typed
    assert tx2.version == (8, 2, 1) and nx.version_string == "8.5.2"
    with pytest.raises(UnsupportedFeatureError, match=">= 8.0"):
        api_for("7.1.3")


def test_build_plan_per_generation():
    fp32, fp16, int8 = TrtBuildConfig(), TrtBuildConfig(precision="fp16"), TrtBuildConfig(precision="int8")
    p = plan_build(api_for("8.2.1"), fp16)
    assert p.network_flags == ("EXPLICIT_BATCH",) and p.workspace_call == "max_workspace_size"
    assert p.builder_flags == ("FP16",) and not p.use_calibrator
    assert p.build_call == "build_serialized_network"
    p = plan_build(api_for("8.5.2"), int8, calibration_available=True)
    assert p.workspace_call == "set_memory_pool_limit" and p.builder_flags == ("FP16", "INT8") and p.use_calibrator
    p = plan_build(api_for("10.3"), fp32)
    assert p.network_flags == () and p.builder_flags == ()
    with pytest.raises(UnsupportedFeatureError, match="calibration data"):
        plan_build(api_for("8.5.2"), int8, calibration_available=False)
    with pytest.raises(UnsupportedFeatureError, match="removed INT8 calibrators|removed the FP16"):
        plan_build(api_for("11.0"), int8, calibration_available=True)
    with pytest.raises(UnsupportedFeatureError, match="removed the FP16"):
        plan_build(api_for("11.0"), fp16)
    assert plan_build(api_for("11.0"), fp32).builder_flags == ()


def test_build_config_validation():
    with pytest.raises(ConfigError, match="opt_batch"):
        TrtBuildConfig(min_batch=4, opt_batch=2, max_batch=8)
    with pytest.raises(ConfigError, match="precision"):
        TrtBuildConfig(precision="int4")
    assert TrtBuildConfig(max_batch=8).shapes((1, 8, 8)) == ((1, 1, 8, 8), (1, 1, 8, 8), (8, 1, 8, 8))


def test_trtexec_command_lines(tmp_path, ckpt_factory):
    onnx_path = export_checkpoint(ckpt_factory("cnn1d"), tmp_path, "tx2", run_parity=False).onnx.path
    name, sample = onnx_input(onnx_path)
    assert (name, sample) == ("input", (6, 100))
    cfg = TrtBuildConfig(precision="fp16", workspace_mb=128, max_batch=16)
    cmd = trtexec_command("/usr/src/tensorrt/bin/trtexec", onnx_path, "/tmp/e.engine", cfg, name, sample,
                          api_for("8.2.1"))
    assert cmd[0] == "/usr/src/tensorrt/bin/trtexec"
    assert f"--onnx={onnx_path}" in cmd and "--saveEngine=/tmp/e.engine" in cmd
    assert "--minShapes=input:1x6x100" in cmd and "--optShapes=input:1x6x100" in cmd
    assert "--maxShapes=input:16x6x100" in cmd
    assert "--workspace=128" in cmd and "--fp16" in cmd and not any(c.startswith("--memPoolSize") for c in cmd)
    cmd10 = trtexec_command("trtexec", onnx_path, "e", TrtBuildConfig(workspace_mb=64), name, sample, api_for("10.3"))
    assert "--memPoolSize=workspace:64" in cmd10 and "--fp16" not in cmd10
    assert not any(c.startswith("--workspace") for c in cmd10)
    cmd8 = trtexec_command("trtexec", onnx_path, "e", TrtBuildConfig(precision="int8", calibration_cache="c.cache"),
                           name, sample, api_for("8.5.2"))
    assert "--int8" in cmd8 and "--calib=c.cache" in cmd8


def _key(onnx_path, **over):
    args = dict(trt_version="8.5.2", compute_capability="7.2", precision="fp16", input_name="input",
                sample_shape=(1, 8, 8), min_batch=1, opt_batch=1, max_batch=32)
    args.update(over)
    return engine_key(onnx_path, **args)


def test_engine_cache_keys_on_real_onnx(tmp_path, ckpt_factory):
    a = export_checkpoint(ckpt_factory("cnn2d", seed=0), tmp_path / "a", run_parity=False).onnx.path
    b = export_checkpoint(ckpt_factory("cnn2d", seed=1), tmp_path / "b", run_parity=False).onnx.path
    cache = EngineCache(tmp_path / "engines")
    builds = []

    def builder(tag):
        def build():
            builds.append(tag)
            return ("engine-" + tag).encode() * 100
        return build

    key = _key(a)
    path = cache.get_or_build(key, builder("a"))
    assert builds == ["a"] and path.read_bytes().startswith(b"engine-a")
    assert cache.get_or_build(key, builder("again")) == path and builds == ["a"]  # hit
    # anything that makes an engine non-portable gives another key -> build, never the old engine
    for changed in (_key(b), _key(a, trt_version="8.2.1"), _key(a, compute_capability="8.7"),
                    _key(a, precision="fp32"), _key(a, max_batch=64), _key(a, opt_batch=8)):
        assert changed != key and changed.digest() != key.digest()
        assert cache.lookup(changed) is None
    n = len(builds)
    cache.get_or_build(_key(a, trt_version="10.3.0"), builder("trt10"))
    assert builds[n:] == ["trt10"]
    # re-exporting the same checkpoint gives the same bytes -> same key
    a2 = export_checkpoint(ckpt_factory("cnn2d", seed=0, tag="copy"), tmp_path / "a2", run_parity=False).onnx.path
    assert _key(a2).onnx_sha256 == key.onnx_sha256


def test_engine_cache_rejects_mismatched_or_damaged_engines(tmp_path, ckpt_factory):
    onnx_path = export_checkpoint(ckpt_factory("cnn1d"), tmp_path, run_parity=False).onnx.path
    cache = EngineCache(tmp_path / "engines")
    key = _key(onnx_path, sample_shape=(6, 100))
    engine, sidecar = cache.paths(key)
    cache.store(key, b"x" * 1000)
    assert cache.lookup(key) == engine
    # an engine copied in from another device under this name: its sidecar says another key
    meta = json.loads(sidecar.read_text())
    meta["key"]["compute_capability"] = "6.2"
    sidecar.write_text(json.dumps(meta))
    assert cache.lookup(key) is None
    rebuilt = []
    cache.get_or_build(key, lambda: rebuilt.append(1) or b"y" * 1000)
    assert rebuilt == [1] and engine.read_bytes() == b"y" * 1000 and cache.lookup(key) == engine
    # damaged engine bytes
    engine.write_bytes(b"y" * 999)
    assert cache.lookup(key) is None
    # engine without sidecar (crash between the two writes)
    cache.store(key, b"z" * 10)
    sidecar.unlink()
    assert cache.lookup(key) is None
    # unreadable sidecar
    cache.store(key, b"z" * 10)
    sidecar.write_text("{not json")
    assert cache.lookup(key) is None
    assert EngineKey.from_dict(key.as_dict()) == key


@pytest.mark.hardware
@pytest.mark.skipif(not HAS_TRT, reason="tensorrt is not installed (needs a Jetson or an NVIDIA GPU with TensorRT)")
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_build_engine_with_tensorrt(tmp_path, ckpt_factory, precision):
    import tensorrt

    from miro_edge.errors import HardwareUnavailableError
    from miro_edge.infer.base import EngineOptions
    from miro_edge.infer.trt_engine import TrtEngine
    from miro_edge.trt.builder import cached_engine

    res = export_checkpoint(ckpt_factory("cnn2d"), tmp_path, "xavier-nx", samples=real_samples("cnn2d"))
    api = api_for(tensorrt.__version__)
    if precision != "fp32" and not api.has_fp16_flag:
        pytest.skip(f"TensorRT {tensorrt.__version__} has no FP16/INT8 builder flags")
    cfg = TrtBuildConfig(precision=precision, max_batch=8)
    try:
        path = cached_engine(res.onnx.path, tmp_path / "eng", cfg, calibration=real_samples("cnn2d", n=64))
    except HardwareUnavailableError as exc:
        pytest.skip(str(exc))
    mtime = path.stat().st_mtime_ns
    assert cached_engine(res.onnx.path, tmp_path / "eng", cfg, calibration=real_samples("cnn2d", n=64)) == path
    assert path.stat().st_mtime_ns == mtime  # cache hit, not rebuilt
    x = real_samples("cnn2d", n=8)
    with TrtEngine({"model.onnx": res.onnx.path}, EngineOptions(max_batch=8), engine_path=path) as eng:
        out = eng.infer(x)
    import onnxruntime as ort
    ref = ort.InferenceSession(str(res.onnx.path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    tol = {"fp32": 1e-3, "fp16": 5e-2, "int8": 0.5}[precision]
    np.testing.assert_allclose(out, ref, atol=tol, rtol=tol)
