"""Deterministic swap mode end to end, through the real CLI: with every replayed EM sample
swapped from the store (swap ratio 1), two runs of one config give the same accuracy matrix,
and a run killed with SIGKILL and resumed gives it too."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

CONFIG = """
data: {dataset: digits, classes_per_task: 2, num_tasks: 4, seed: 0}
memory: {em_size: 40, swap: {swap_ratio: 1.0, mode: deterministic}}
train: {model: cnn2d, width: 8, epochs: 3, threads: 1}
"""


def task_rows(results: Path):
    """Per task (the last record of each, a resumed run repeats the task it was cut in): its
    accuracy row and the swaps its training applied."""
    rows = {}
    for line in results.read_text().splitlines():
        event = json.loads(line)
        if event.get("kind") == "task":
            rows[event["task_id"]] = (event["accuracies"], event["swaps_done"])
    return [rows[t] for t in sorted(rows)]


def run_cli(config_path: Path, out: Path) -> str:
    cmd = [sys.executable, "-m", "miro_edge", "run", "--config", str(config_path), "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.slow
def test_two_runs_and_a_killed_and_resumed_run_give_one_matrix(tmp_path):
    config_path = tmp_path / "c.yaml"
    config_path.write_text(CONFIG)
    first_out = run_cli(config_path, tmp_path / "a")
    second_out = run_cli(config_path, tmp_path / "b")
    first, second = task_rows(tmp_path / "a" / "results.jsonl"), task_rows(tmp_path / "b" / "results.jsonl")
    assert len(first) == 4 and all(swaps > 0 for _, swaps in first[1:])  # the store really fed the EM
    assert first == second
    def table(out: str) -> str:  # the printed matrix and summary, up to the (timing) line
        return out[out.index("accuracy after each task"):out.index("training time")]
    assert "final average accuracy" in table(first_out) and table(first_out) == table(second_out)

    run_dir = tmp_path / "killed"
    cmd = [sys.executable, "-m", "miro_edge", "run", "--config", str(config_path), "--out", str(run_dir)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    results = run_dir / "results.jsonl"
    while proc.poll() is None and time.monotonic() < deadline and \
            (not results.is_file() or len(task_rows(results)) < 2):
        time.sleep(0.01)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 2 <= json.loads((run_dir / "state.json").read_text())["cycles_done"] < 4
    resumed_out = run_cli(config_path, run_dir)
    assert "resumed" in resumed_out
    assert task_rows(results) == first
