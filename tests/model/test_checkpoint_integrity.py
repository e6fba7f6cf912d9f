"""Checkpoints carry a checksum checked on load (issue 9): a checkpoint with a few zeroed bytes
inside a tensor is refused, by the library and by ``miro-edge export``, instead of exported."""
import subprocess
import sys

import pytest
import torch

from miro_edge.errors import CheckpointError
from miro_edge.model.checkpoint import CHECKSUM_KEY, model_from_checkpoint, read_checkpoint
from miro_edge.utils.torch_compat import load_weights_only


def _zero_tensor_bytes(path, out):
    """Zero 8 bytes in the middle of the file: inside the tensor data, which torch.load does not check."""
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid:mid + 8] = bytes(8)
    out.write_bytes(bytes(data))
    return out


def test_zeroed_bytes_fail_the_checksum(tmp_path, ckpt_factory):
    ckpt = ckpt_factory("cnn2d")
    assert CHECKSUM_KEY in read_checkpoint(ckpt)
    bad = _zero_tensor_bytes(ckpt, tmp_path / "bad.pt")
    raw = load_weights_only(str(bad))  # the damage is invisible to torch (weights-only, as on every torch)
    assert raw["state_dict"]
    with pytest.raises(CheckpointError, match="fails its checksum"):
        read_checkpoint(bad)
    with pytest.raises(CheckpointError, match="fails its checksum"):
        model_from_checkpoint(bad)


def test_version_1_checkpoints_without_a_checksum_still_load(tmp_path, ckpt_factory):
    ckpt = read_checkpoint(ckpt_factory("cnn2d"))
    del ckpt[CHECKSUM_KEY]
    ckpt["format_version"] = 1
    torch.save(ckpt, str(tmp_path / "v1.pt"))
    assert read_checkpoint(tmp_path / "v1.pt")["format_version"] == 1
    ckpt["format_version"] = 2  # but a current-format file without its checksum is refused
    torch.save(ckpt, str(tmp_path / "v2.pt"))
    with pytest.raises(CheckpointError, match="fails its checksum"):
        read_checkpoint(tmp_path / "v2.pt")


def test_export_refuses_a_damaged_checkpoint_in_one_line(tmp_path, ckpt_factory):
    bad = _zero_tensor_bytes(ckpt_factory("cnn2d"), tmp_path / "bad.pt")
    out = subprocess.run([sys.executable, "-m", "miro_edge", "export", str(bad), "--out", str(tmp_path / "o")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 1 and "parity: passed" not in out.stdout
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and "fails its checksum" in lines[0], out.stderr
    assert not (tmp_path / "o" / "model.onnx").exists()
