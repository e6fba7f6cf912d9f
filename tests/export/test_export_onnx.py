"""ONNX export of the built-in models: checker, opset, dynamic batch, ORT parity, and clear errors."""
import numpy as np
import pytest
import torch
from model_fixtures import SHAPES, real_samples

from miro_edge.errors import CheckpointError, ConfigError, ExportError, OnnxModelError, ParityError
from miro_edge.export.onnx_export import (
    OnnxExportConfig,
    choose_exporter,
    default_opset,
    export_onnx,
    export_parameters,
)
from miro_edge.export.parity import ParityConfig, check_parity
from miro_edge.export.pipeline import export_checkpoint
from miro_edge.export.targets import TARGETS, get_target
from miro_edge.model.checkpoint import model_from_checkpoint, read_checkpoint
from miro_edge.model.onnx_file import check_onnx

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


@pytest.mark.parametrize("name", ["cnn2d", "cnn1d"])
@pytest.mark.parametrize("opset", [13, 17])
def test_export_checker_and_ort_parity(tmp_path, ckpt_factory, name, opset):
    ckpt = ckpt_factory(name)
    samples = real_samples(name, n=40)
    result = export_checkpoint(ckpt, tmp_path / "out", "desktop", opset=opset, samples=samples)
    assert result.onnx.exporter == "torchscript"
    model = check_onnx(result.onnx.path)
    assert default_opset(model) == opset
    assert [i.name for i in model.graph.input] == ["input"]
    assert [o.name for o in model.graph.output] == ["logits"]
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # dynamic batch
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["model.onnx"]  # one file, no temp left
    assert result.parity.passed and result.parity.n_samples == 40 and result.parity.sample_source == "given"
    # independent check: several batch sizes through ORT equal torch
    torch_model = model_from_checkpoint(ckpt)
    sess = ort.InferenceSession(str(result.onnx.path), providers=["CPUExecutionProvider"])
    for bs in (1, 7, 40):
        x = samples[:bs]
        np.testing.assert_allclose(sess.run(None, {"input": x})[0],
                                   torch_model(torch.from_numpy(x)).detach().numpy(), atol=1e-4, rtol=1e-3)


def test_target_profiles_fix_the_opset(tmp_path, ckpt_factory):
    assert get_target("tx2").opset == 13 and get_target("xavier-nx").opset == 17
    assert set(TARGETS.names()) >= {"tx2", "xavier-nx", "desktop"}
    with pytest.raises(ConfigError, match="exceeds"):
        get_target("tx2").with_opset(17)
    result = export_checkpoint(ckpt_factory("cnn2d"), tmp_path, "tx2", run_parity=False)
    assert default_opset(check_onnx(result.onnx.path)) == 13


def test_exporter_choice_from_signature():
    old_torch = ("model", "args", "f", "opset_version", "dynamic_axes")  # torch 2.0-2.4: no dynamo argument
    new_torch = old_torch + ("dynamo", "external_data", "dynamic_shapes")
    assert choose_exporter(old_torch, 13) == "torchscript"
    assert choose_exporter(old_torch, 18) == "torchscript"
    assert choose_exporter(new_torch, 13) == "torchscript"
    assert choose_exporter(new_torch, 17) == "torchscript"
    assert choose_exporter(new_torch, 18) == "dynamo"
    assert choose_exporter(new_torch, 13, "dynamo") == "dynamo"
    with pytest.raises(ExportError, match="no `dynamo`"):
        choose_exporter(old_torch, 17, "dynamo")


@pytest.mark.slow
@pytest.mark.skipif("dynamo" not in export_parameters(),
                    reason="this torch.onnx.export has no dynamo exporter (torch < 2.5, as on the Jetson boards)")
def test_dynamo_exporter_path_gives_requested_opset(tmp_path, ckpt_factory):
    ckpt = ckpt_factory("cnn1d")
    model = model_from_checkpoint(ckpt)
    out = tmp_path / "out"
    res = export_onnx(model, out / "m.onnx", SHAPES["cnn1d"], OnnxExportConfig(opset=18, exporter="dynamo"))
    assert res.exporter == "dynamo" and default_opset(check_onnx(res.path)) == 18
    assert [p.name for p in out.iterdir()] == ["m.onnx"]  # no external-data side file
    check_parity(model, res.path, SHAPES["cnn1d"], real_samples("cnn1d"))


@pytest.mark.parametrize("cut", ["empty", 0.1, 0.5, 0.9, 0.999, "garbage", "flip"])
def test_corrupt_or_truncated_onnx_gives_clear_error(tmp_path, ckpt_factory, cut):
    res = export_checkpoint(ckpt_factory("cnn2d"), tmp_path / "ok", run_parity=False)
    data = res.onnx.path.read_bytes()
    bad = tmp_path / "bad.onnx"
    if cut == "empty":
        bad.write_bytes(b"")
    elif cut == "garbage":
        bad.write_bytes(b"\x00\xff this is not a protobuf" * 10)
    elif cut == "flip":  # damage the graph structure near the start
        b = bytearray(data)
        for i in range(20, 60):
            b[i] ^= 0xFF
        bad.write_bytes(bytes(b))
    else:
        bad.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(OnnxModelError, match="bad.onnx"):
        check_onnx(bad)
    with pytest.raises(OnnxModelError, match="does not exist"):
        check_onnx(tmp_path / "missing.onnx")


def test_parity_failure_raises(tmp_path, ckpt_factory):
    ckpt = ckpt_factory("cnn2d")
    res = export_checkpoint(ckpt, tmp_path, run_parity=False)
    model = model_from_checkpoint(ckpt)
    with torch.no_grad():
        model.head.bias.add_(0.5)  # the exported graph no longer matches this model
    with pytest.raises(ParityError, match="differs from PyTorch"):
        check_parity(model, res.onnx.path, SHAPES["cnn2d"], real_samples("cnn2d"), ParityConfig())
    report = check_parity(model, res.onnx.path, SHAPES["cnn2d"], None,
                          ParityConfig(atol=1.0, rtol=0.0, require_argmax_match=False))
    assert report.sample_source == "random" and report.max_abs_diff == pytest.approx(0.5, abs=1e-4)


def test_checkpoint_loads_weights_only(tmp_path, ckpt_factory):
    ckpt = read_checkpoint(ckpt_factory("cnn1d"))
    assert ckpt["model_name"] == "cnn1d" and ckpt["metrics"]["val_accuracy"] == pytest.approx(0.9)

    class Evil:
        def __reduce__(self):
            return (print, ("code ran",))

    evil = tmp_path / "evil.pt"
    torch.save({"format_version": 1, "payload": Evil()}, str(evil))
    with pytest.raises(CheckpointError, match="cannot load"):
        read_checkpoint(evil)
    partial = tmp_path / "partial.pt"
    torch.save({"format_version": 1, "model_name": "cnn2d"}, str(partial))
    with pytest.raises(CheckpointError, match="lacks key"):
        model_from_checkpoint(partial)
