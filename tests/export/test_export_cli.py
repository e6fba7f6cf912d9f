"""CLI: export, publish, versions, rollback through CliRunner (exit codes and output)."""
import numpy as np
from click.testing import CliRunner
from model_fixtures import real_samples

from miro_edge.cli import cli
from miro_edge.registry.model_registry import ModelRegistry


def test_export_publish_versions_rollback(tmp_path, ckpt_factory):
    runner = CliRunner()
    samples = tmp_path / "em.npy"
    np.save(str(samples), real_samples("cnn2d"))
    ckpt = ckpt_factory("cnn2d", accuracy=0.9)
    out = tmp_path / "out"
    res = runner.invoke(cli, ["export", str(ckpt), "--out", str(out), "--target", "tx2", "--samples", str(samples)])
    assert res.exit_code == 0, res.output
    assert "opset 13" in res.output and "parity: passed on 24 given samples" in res.output
    assert "engine: not built" in res.output
    reg = tmp_path / "reg"
    res = runner.invoke(cli, ["publish", str(out / "model.onnx"), "--registry", str(reg), "--checkpoint", str(ckpt)])
    assert res.exit_code == 0, res.output
    assert "published v000001" in res.output
    res = runner.invoke(cli, ["publish", str(out / "model.onnx"), "--registry", str(reg), "--checkpoint", str(ckpt),
                              "--metric", "val_accuracy=0.5"])
    assert res.exit_code == 2 and "rejected v000002" in res.output and "current: 1" in res.output
    res = runner.invoke(cli, ["publish", str(out / "model.onnx"), "--registry", str(reg), "--checkpoint", str(ckpt),
                              "--metric", "val_accuracy=0.91"])
    assert res.exit_code == 0 and "published v000003 (parent 1)" in res.output
    res = runner.invoke(cli, ["versions", "--registry", str(reg), "--all", "--verify"])
    assert res.exit_code == 0
    lines = res.output.rstrip().splitlines()
    assert lines[0].startswith("  v000001 accepted") and lines[0].endswith("ok")
    assert "rejected" in lines[1] and lines[2].startswith("* v000003")
    res = runner.invoke(cli, ["rollback", "--registry", str(reg)])
    assert res.exit_code == 0 and "current: v000001" in res.output
    assert ModelRegistry(reg).current_version() == 1


def test_cli_errors_are_one_line(tmp_path):
    from miro_edge.cli import main

    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x01\x02garbage")
    import subprocess
    import sys
    proc = subprocess.run([sys.executable, "-m", "miro_edge", "publish", str(bad), "--registry", str(tmp_path / "r")],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.startswith("Error: ONNX file") and "truncated or corrupt" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert callable(main)
