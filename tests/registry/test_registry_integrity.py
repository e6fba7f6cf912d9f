"""Registry integrity (issue 9): a version moved into versions/ but never made current is
"staged", not "accepted"; temporary pointer files are cleaned by the next writer; ``versions
--verify`` exits non-zero when it prints CORRUPT."""
import os

import pytest
from click.testing import CliRunner

from miro_edge.cli import cli
from miro_edge.export.pipeline import export_checkpoint
from miro_edge.registry.model_registry import HISTORY, ModelRegistry


@pytest.fixture
def onnx_and_ckpt(tmp_path, ckpt_factory):
    ckpt = ckpt_factory("cnn2d", accuracy=0.9)
    return export_checkpoint(ckpt, tmp_path / "exp", run_parity=False).onnx.path, ckpt


def _publish(reg, onnx_and_ckpt, accuracy):
    onnx, ckpt = onnx_and_ckpt
    return reg.publish({"model.onnx": onnx, "checkpoint.pt": ckpt}, metrics={"val_accuracy": accuracy})


def test_a_publish_cut_before_the_pointer_moves_is_staged(tmp_path, onnx_and_ckpt, monkeypatch):
    reg = ModelRegistry(tmp_path / "reg")
    _publish(reg, onnx_and_ckpt, 0.80)

    def killed(self, version):
        raise KeyboardInterrupt("killed between the rename into versions/ and the CURRENT move")

    monkeypatch.setattr(ModelRegistry, "_set_pointer", killed)
    with pytest.raises(KeyboardInterrupt):
        _publish(reg, onnx_and_ckpt, 0.85)
    monkeypatch.undo()
    reg = ModelRegistry(tmp_path / "reg")
    assert reg.current_version() == 1
    assert [(m.version, m.status) for m in reg.versions()] == [(1, "accepted"), (2, "staged")]
    out = CliRunner().invoke(cli, ["versions", "--registry", str(tmp_path / "reg")])
    assert "v000002 staged" in out.output and "* v000001 accepted" in out.output
    r3 = _publish(reg, onnx_and_ckpt, 0.90)
    assert r3.version == 3 and reg.current_version() == 3
    assert [(m.version, m.status) for m in reg.versions()] == [(1, "accepted"), (2, "staged"), (3, "accepted")]
    reg.rollback(1)
    assert [m.status for m in reg.versions()] == ["accepted", "staged", "accepted"]
    assert (tmp_path / "reg" / HISTORY).read_text().split() == ["v000001", "v000003", "v000001"]


def test_leftover_pointer_temp_files_are_removed_by_the_next_writer(tmp_path, onnx_and_ckpt):
    reg = ModelRegistry(tmp_path / "reg")
    _publish(reg, onnx_and_ckpt, 0.80)
    leftover = tmp_path / "reg" / ".CURRENT.k9x2.tmp"  # what a kill inside atomic_write leaves
    leftover.write_text("v000009\n")
    _publish(reg, onnx_and_ckpt, 0.85)
    assert not leftover.exists() and reg.current_version() == 2
    leftover.write_text("v000009\n")
    reg.rollback(1)
    assert not leftover.exists()


def test_versions_verify_exits_non_zero_on_corrupt(tmp_path, onnx_and_ckpt):
    reg = ModelRegistry(tmp_path / "reg")
    r = _publish(reg, onnx_and_ckpt, 0.80)
    runner = CliRunner()
    ok = runner.invoke(cli, ["versions", "--registry", str(tmp_path / "reg"), "--verify"])
    assert ok.exit_code == 0 and ok.output.rstrip().endswith("ok")
    onnx = r.path / "model.onnx"
    data = bytearray(onnx.read_bytes())
    data[len(data) // 2] ^= 0xFF
    os.chmod(str(onnx), 0o644)
    onnx.write_bytes(bytes(data))
    bad = runner.invoke(cli, ["versions", "--registry", str(tmp_path / "reg"), "--verify"])
    assert bad.exit_code == 1 and "CORRUPT" in bad.output
    assert "1 version(s) failed verification: v000001" in bad.output
