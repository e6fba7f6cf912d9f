"""End to end through the CLI: run a short session, then status and report on its directory."""
from pathlib import Path

from click.testing import CliRunner

from miro_edge.cli import cli

ROOT = Path(__file__).resolve().parents[1]


def test_run_then_status(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("""
data: {dataset: digits, classes_per_task: 5, seed: 0}
memory: {em_size: 20, swap: {swap_ratio: 1.0}}
train: {model: cnn2d, width: 8, epochs: 2}
""")
    runner = CliRunner()
    out = runner.invoke(cli, ["run", "--config", str(config), "--out", str(tmp_path / "run")])
    assert out.exit_code == 0, out.output
    assert "task  1" in out.output and "final average accuracy" in out.output
    assert (tmp_path / "run" / "checkpoints" / "cycle-000001.pt").is_file()
    status = runner.invoke(cli, ["status", str(tmp_path / "run")])
    assert status.exit_code == 0, status.output
    assert "tasks done     0, 1" in status.output and "cycles done    2" in status.output
    assert "estimated" in status.output and "held out" in status.output


def test_bad_config_is_one_clean_error(tmp_path):
    import subprocess
    import sys
    config = tmp_path / "c.yaml"
    config.write_text("train: {epoch: 3}\n")
    out = subprocess.run([sys.executable, "-m", "miro_edge", "run", "--config", str(config)],
                         capture_output=True, text=True)
    assert out.returncode == 1
    assert out.stderr.strip().startswith("Error:") and "train.epoch" in out.stderr
    assert "Traceback" not in out.stderr


def test_status_of_non_run_dir(tmp_path):
    out = CliRunner().invoke(cli, ["status", str(tmp_path)])
    assert out.exit_code != 0 and "not a miro_edge workspace" in str(out.exception or out.output)
