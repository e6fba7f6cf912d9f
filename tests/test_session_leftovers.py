"""Temporary files a kill leaves inside atomic writes are removed by the next run (issue 9, item 9)."""
import subprocess
import sys


def test_rerun_removes_leftover_temp_files(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("data: {dataset: digits, classes_per_task: 5, seed: 0}\n"
                      "memory: {em_size: 20}\ntrain: {model: cnn2d, width: 8, epochs: 1}\n")
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    left = [run / ".state.json.a1b2c3.tmp", run / "checkpoints" / ".task-000.pt.x9y8z7.tmp"]
    for path in left:
        path.write_bytes(b"half a write")
    keep = run / "checkpoints" / "notes.txt"  # not ours: never touched
    keep.write_text("mine")
    out = subprocess.run([sys.executable, "-m", "miro_edge", "run", "--config", str(config), "--out", str(run)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert not any(p.exists() for p in left) and keep.read_text() == "mine"
    assert not list(run.rglob("*.tmp")) and (run / "checkpoints" / "task-001.pt").is_file()
