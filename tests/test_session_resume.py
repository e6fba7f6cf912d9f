"""A run killed with SIGKILL mid-session resumes where it was: nothing ingested twice, the same
results as an uninterrupted run."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from miro_edge.config import load_yaml
from miro_edge.errors import ConfigError
from miro_edge.memory.store import SampleStore
from miro_edge.session import SessionConfig, run_session

CONFIG = """
data: {dataset: digits, classes_per_task: 2, num_tasks: 4, seed: 0}
memory: {em_size: 40, swap: {swap_ratio: 0.0}}
train: {model: cnn2d, width: 8, epochs: 3, threads: 1}
"""


def tasks_done(results: Path) -> int:
    if not results.is_file():
        return 0
    return sum(1 for line in results.read_text().splitlines() if '"kind": "task"' in line)


@pytest.mark.slow
def test_kill_9_mid_run_then_resume_matches_uninterrupted_run(tmp_path):
    config_path = tmp_path / "c.yaml"
    config_path.write_text(CONFIG)
    config = load_yaml(config_path, SessionConfig)
    reference = run_session(config, out_dir=str(tmp_path / "reference"))

    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "miro_edge", "run", "--config", str(config_path), "--out", str(run_dir)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while tasks_done(run_dir / "results.jsonl") < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    state = json.loads((run_dir / "state.json").read_text())
    assert 2 <= state["cycles_done"] < 4

    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "resumed" in out.stdout
    resumed = run_session(config, out_dir=str(run_dir))  # already complete: returns the stored metrics
    assert resumed.accuracy_matrix == reference.accuracy_matrix
    with SampleStore(run_dir / "store", create=False) as store, \
            SampleStore(tmp_path / "reference" / "store", create=False) as ref_store:
        assert len(store) == len(ref_store)  # nothing ingested twice
        assert store.class_counts() == ref_store.class_counts()


def test_resume_refuses_a_different_config(tmp_path):
    config_path = tmp_path / "c.yaml"
    config_path.write_text(CONFIG.replace("num_tasks: 4", "num_tasks: 1"))
    run_session(load_yaml(config_path, SessionConfig), out_dir=str(tmp_path / "run"))
    config_path.write_text(CONFIG.replace("num_tasks: 4", "num_tasks: 1").replace("em_size: 40", "em_size: 20"))
    with pytest.raises(ConfigError, match="different config"):
        run_session(load_yaml(config_path, SessionConfig), out_dir=str(tmp_path / "run"))
