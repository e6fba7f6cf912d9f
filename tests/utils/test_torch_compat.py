"""Weights-only checkpoint loading on every torch the boards run (1.13 lacks float support)."""
import pickle

import pytest
import torch

from miro_edge.utils import torch_compat
from miro_edge.utils.torch_compat import load_weights_only, weights_only_reads_floats

TORCH_2 = tuple(int(p) for p in torch.__version__.split(".")[:2]) >= (2, 0)


class Evil:
    def __reduce__(self):
        return (print, ("code ran",))


def test_probe_matches_what_this_torch_can_read():
    # torch 1.13's weights-only unpickler has no BINFLOAT; 2.0 added it.
    assert weights_only_reads_floats() is TORCH_2


@pytest.mark.parametrize("torch_reads_floats", [True, False], ids=["weights_only", "allowlist_unpickler"])
def test_both_paths_load_tensors_and_floats_and_refuse_code(tmp_path, monkeypatch, capsys, torch_reads_floats):
    if torch_reads_floats and not TORCH_2:
        pytest.skip(f"torch {torch.__version__} cannot read floats with weights_only=True")
    monkeypatch.setattr(torch_compat, "weights_only_reads_floats", lambda: torch_reads_floats)
    good = tmp_path / "good.pt"
    payload = {"metrics": {"val_accuracy": 0.875}, "state_dict": {"w": torch.arange(6.0).reshape(2, 3)},
               "shape": [1, 8, 8], "name": "cnn2d", "flag": True}
    torch.save(payload, str(good))
    loaded = load_weights_only(str(good))
    assert loaded["metrics"] == {"val_accuracy": 0.875} and loaded["shape"] == [1, 8, 8]
    assert torch.equal(loaded["state_dict"]["w"], payload["state_dict"]["w"])

    evil = tmp_path / "evil.pt"
    torch.save({"payload": Evil()}, str(evil))
    with pytest.raises(pickle.UnpicklingError):
        load_weights_only(str(evil))
    assert "code ran" not in capsys.readouterr().out


def test_allowlist_unpickler_names_the_refused_global(tmp_path, capsys):
    evil = tmp_path / "evil.pt"
    torch.save({"payload": Evil()}, str(evil))
    with pytest.raises(pickle.UnpicklingError, match=r"refused global \S*print"):
        torch_compat.load_with_allowlist(str(evil))
    assert "code ran" not in capsys.readouterr().out
    not_zip = tmp_path / "legacy.pt"
    not_zip.write_bytes(pickle.dumps({"a": 1.0}))
    with pytest.raises(pickle.UnpicklingError, match="not a torch.save zip"):
        torch_compat.load_with_allowlist(str(not_zip))
