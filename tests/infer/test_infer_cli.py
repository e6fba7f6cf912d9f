"""``miro-edge live`` on a registry with a synthetic source."""
from click.testing import CliRunner

from miro_edge.cli import cli
from miro_edge.export.pipeline import export_checkpoint, publish_model
from miro_edge.registry.model_registry import ModelRegistry


def test_live_command_prints_stats(tmp_path, ckpt_factory):
    ckpt = ckpt_factory("cnn1d")
    reg = ModelRegistry(tmp_path / "reg")
    publish_model(reg, export_checkpoint(ckpt, tmp_path / "e", run_parity=False).onnx.path, ckpt, run_parity=False)
    res = CliRunner().invoke(cli, ["live", "--registry", str(reg.root), "--source", "synthetic", "--uri", "40",
                                   "--fps", "200", "--engine", "onnxruntime"])
    assert res.exit_code == 0, res.output
    assert "frames 40 in" in res.output and "version 1" in res.output
    assert "latency p50" in res.output and "swaps 0" in res.output and "dropped" in res.output
    res = CliRunner().invoke(cli, ["live", "--registry", str(tmp_path / "nope")])
    assert res.exit_code != 0
