"""Model registry: atomic publish, canary gate, rollback, retention, sha256 checks, and kill -9 safety."""
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from model_fixtures import real_samples

from miro_edge.errors import IntegrityError, OnnxModelError, ParityError, RegistryError, VersionNotFoundError
from miro_edge.export.pipeline import export_and_publish, export_checkpoint, publish_model
from miro_edge.registry.canary import CanaryConfig, canary_decision
from miro_edge.registry.model_registry import ModelRegistry

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def exported(tmp_path, ckpt_factory):
    def make(seed=0, accuracy=0.9, name="cnn2d"):
        ckpt = ckpt_factory(name, seed=seed, accuracy=accuracy)
        res = export_checkpoint(ckpt, tmp_path / f"exp-{seed}-{accuracy}", run_parity=False)
        return res.onnx.path, ckpt
    return make


def test_publish_manifest_and_current(tmp_path, exported):
    reg = ModelRegistry(tmp_path / "reg")
    assert reg.current_version() is None and reg.current() is None
    onnx_path, ckpt = exported(0, 0.80)
    r1 = publish_model(reg, onnx_path, ckpt, samples=real_samples("cnn2d"))
    assert r1.accepted and r1.version == 1 and reg.current_version() == 1
    m = reg.current()
    assert m.parent is None and m.status == "accepted" and m.task_id == 0
    assert m.metrics == {"val_accuracy": pytest.approx(0.80)}
    assert m.config["model_name"] == "cnn2d" and m.format_version == 1 and m.created_unix > 0
    assert set(m.artifacts) == {"model.onnx", "checkpoint.pt"}
    assert all(len(a["sha256"]) == 64 for a in m.artifacts.values())
    onnx2, ckpt2 = exported(1, 0.85)
    r2 = publish_model(reg, onnx2, ckpt2)
    assert r2.accepted and reg.current().parent == 1 and reg.current_version() == 2
    assert [v.version for v in reg.versions()] == [1, 2]
    assert not list((tmp_path / "reg" / ".staging").iterdir())


def test_canary_gate_rejects_worse_candidate(tmp_path, exported):
    reg = ModelRegistry(tmp_path / "reg", canary=CanaryConfig(max_drop=0.02))
    pair = exported(0, 0.90)
    publish_model(reg, *pair)
    token = reg.pointer_token()
    bad = publish_model(reg, *exported(1, 0.85))
    assert not bad.accepted and "worse than current" in bad.reason
    assert reg.current_version() == 1 and reg.pointer_token() == token  # current untouched
    rejected = [m for m in reg.versions(include_rejected=True) if m.status == "rejected"]
    assert [m.version for m in rejected] == [2] and "0.8500" in rejected[0].reason
    assert (tmp_path / "reg" / "rejected" / "v000002" / "model.onnx").is_file()
    within = publish_model(reg, *pair, metrics={"val_accuracy": 0.89})  # inside the margin
    assert within.accepted and reg.current_version() == 3
    forced = publish_model(reg, *pair, metrics={"val_accuracy": 0.5}, force=True)
    assert forced.accepted and "forced" in forced.reason
    # pure decision function
    cfg = CanaryConfig(max_drop=0.01)
    assert canary_decision({"val_accuracy": 0.5}, None, cfg, has_current=False).accepted
    assert not canary_decision({}, {"val_accuracy": 0.9}, cfg).accepted  # missing metric
    assert not canary_decision({"val_accuracy": 0.88}, {"val_accuracy": 0.9}, cfg).accepted
    assert canary_decision({"val_accuracy": 0.895}, {"val_accuracy": 0.9}, cfg).accepted


def test_rollback_and_retention(tmp_path, exported):
    reg = ModelRegistry(tmp_path / "reg", keep_last=2)
    pair = exported(0, 0.9)
    for _i in range(5):
        publish_model(reg, *pair, run_parity=False)
    assert [m.version for m in reg.versions()] == [4, 5]  # keep_last=2 (current 5 and its parent 4)
    assert reg.rollback().version == 4 and reg.current_version() == 4
    publish_model(reg, *pair, run_parity=False)  # v6, parent 4
    publish_model(reg, *pair, run_parity=False)  # v7, parent 6
    assert reg.rollback(6).version == 6
    publish_model(reg, *pair, run_parity=False)  # v8 parent 6; keep 7, 8 + current 8 + parent 6
    assert [m.version for m in reg.versions()] == [6, 7, 8]
    with pytest.raises(VersionNotFoundError):
        reg.rollback(1)
    assert reg.current_version() == 8 and not list((tmp_path / "reg" / ".trash").iterdir())


def test_sha256_mismatch_refuses_to_load(tmp_path, exported):
    reg = ModelRegistry(tmp_path / "reg")
    publish_model(reg, *exported(0, 0.9))
    publish_model(reg, *exported(1, 0.9))
    onnx_file = tmp_path / "reg" / "versions" / "v000002" / "model.onnx"
    data = bytearray(onnx_file.read_bytes())
    data[len(data) // 2] ^= 0x01
    onnx_file.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="sha256"):
        reg.artifacts(2)
    with pytest.raises(IntegrityError, match="refusing"):
        reg.current()
    with pytest.raises(IntegrityError):
        reg.rollback(2)
    assert reg.rollback(1).version == 1  # a good version still loads
    (tmp_path / "reg" / "versions" / "v000001" / "checkpoint.pt").unlink()
    with pytest.raises(IntegrityError, match="missing"):
        reg.verify(1)


def test_corrupt_onnx_or_parity_failure_leaves_current(tmp_path, exported, ckpt_factory):
    reg = ModelRegistry(tmp_path / "reg")
    publish_model(reg, *exported(0, 0.9))
    token = reg.pointer_token()
    onnx_path, ckpt = exported(1, 0.95)
    data = onnx_path.read_bytes()
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(OnnxModelError, match="truncated"):
        publish_model(reg, truncated, ckpt)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(os.urandom(4096))
    with pytest.raises(OnnxModelError):
        publish_model(reg, garbage, ckpt)
    other_ckpt = ckpt_factory("cnn2d", seed=7)  # same architecture, other weights: parity must fail
    with pytest.raises(ParityError):
        publish_model(reg, onnx_path, other_ckpt)
    assert reg.current_version() == 1 and reg.pointer_token() == token
    assert [m.version for m in reg.versions(include_rejected=True)] == [1]
    with pytest.raises(RegistryError, match="artifact name"):
        reg.publish({"../evil": onnx_path})


def test_export_and_publish_records_parity(tmp_path, ckpt_factory):
    reg = ModelRegistry(tmp_path / "reg")
    res = export_and_publish(reg, ckpt_factory("cnn1d"), tmp_path / "out", "tx2", samples=real_samples("cnn1d"))
    assert res.accepted and res.manifest.config["opset"] == 13 and res.manifest.config["parity"]["passed"]


PUBLISHER = textwrap.dedent("""
    import os, sys
    from miro_edge.registry.model_registry import ModelRegistry
    root, onnx_path, ckpt = sys.argv[1:4]
    reg = ModelRegistry(root, keep_last=3)
    i = 0
    while True:
        blob = os.path.join(os.path.dirname(root), "blob-{}.bin".format(os.getpid()))
        with open(blob, "wb") as f:
            f.write(os.urandom(2 << 20))  # a 2 MiB artifact widens the window for torn writes
        reg.publish({"model.onnx": onnx_path, "checkpoint.pt": ckpt, "blob.bin": blob},
                    metrics={"val_accuracy": 0.9}, task_id=i)
        if i % 4 == 3:
            reg.rollback()
        i += 1
        print(i, flush=True)
""")


@pytest.mark.slow
def test_registry_survives_kill_9_while_publishing(tmp_path, exported):
    onnx_path, ckpt = exported(0, 0.9)
    root = tmp_path / "reg"
    reg = ModelRegistry(root, keep_last=3)
    reg.publish({"model.onnx": onnx_path, "checkpoint.pt": ckpt}, metrics={"val_accuracy": 0.9})
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    rng = random.Random(1234)
    seen_versions = set()
    for _ in range(8):
        proc = subprocess.Popen([sys.executable, "-c", PUBLISHER, str(root), str(onnx_path), str(ckpt)],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        first = proc.stdout.readline()  # wait until it is publishing (imports done)
        assert first, proc.stderr.read().decode()
        time.sleep(rng.uniform(0.0, 0.4))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL
        reopened = ModelRegistry(root, keep_last=3)
        current = reopened.current()  # verifies every artifact's sha256
        assert current is not None and current.status == "accepted"
        assert set(current.artifacts) <= {"model.onnx", "checkpoint.pt", "blob.bin"}
        for manifest in reopened.versions(include_rejected=True):  # nothing torn is ever listed
            reopened.verify(manifest.version)
        seen_versions.add(current.version)
    assert max(seen_versions) > 1
    # the next publish cleans up what the killed process left in .staging
    reg.publish({"model.onnx": onnx_path}, metrics={"val_accuracy": 0.9})
    assert not list((root / ".staging").iterdir()) and not list((root / ".trash").iterdir())
