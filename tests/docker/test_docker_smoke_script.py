"""The images' build-time smoke test, run here against this venv so it cannot rot."""
import importlib.util
import subprocess
import sys

import onnx
from jetson_files import JETSON

SCRIPT = str(JETSON / "smoke_test.py")
HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None


def run_smoke(*args, workdir):
    return subprocess.run([sys.executable, SCRIPT, "--workdir", str(workdir)] + list(args),
                          capture_output=True, text=True, timeout=600)


def test_smoke_test_passes_here_and_exports_at_the_targets_opset(tmp_path):
    proc = run_smoke("--target", "tx2", workdir=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = {ln.split(":", 1)[0]: ln for ln in proc.stdout.splitlines() if ":" in ln}
    assert lines["PASS import"].startswith("PASS import: python {}.{}".format(*sys.version_info[:2]))
    assert "lists export" in lines["PASS cli"]
    assert "(opset 13)" in lines["PASS onnx"] and "parity: passed" in lines["PASS onnx"]
    exported = onnx.load(str(tmp_path / "onnx" / "model.onnx"))
    assert {e.domain: e.version for e in exported.opset_import}[""] == 13
    if HAS_TENSORRT:
        assert "PASS tensorrt" in lines or "SKIP tensorrt" in lines
    else:
        assert "not import" in lines["SKIP tensorrt"]
    assert proc.stdout.splitlines()[-1] == "smoke test (tx2): 3 passed, 0 failed, 1 skipped" or HAS_TENSORRT


def test_requiring_tensorrt_fails_where_there_is_none(tmp_path):
    if HAS_TENSORRT:
        import pytest
        pytest.skip("TensorRT is installed here; the failure path needs a machine without it")
    proc = run_smoke("--target", "xavier-nx", "--require-tensorrt-bindings", workdir=tmp_path)
    assert proc.returncode == 1
    assert "FAIL tensorrt: the tensorrt Python bindings do not import" in proc.stdout
    assert "PASS onnx: model.onnx (opset 17)" in proc.stdout
    assert proc.stdout.splitlines()[-1] == "smoke test (xavier-nx): 3 passed, 1 failed, 0 skipped"
