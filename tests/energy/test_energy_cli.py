"""`miro-edge meter` and `miro-edge measure` through click's CliRunner."""
import sys

import pytest
from click.testing import CliRunner
from energy_fakes import make_tx2_tree

from miro_edge.cli import cli


def test_meter_prints_rails_source_and_terminates(tmp_path):
    make_tx2_tree(tmp_path, {"VDD_IN": 5000, "VDD_SYS_CPU": 1200})
    result = CliRunner().invoke(cli, ["meter", "--root", str(tmp_path), "--count", "3", "--interval-ms", "10"])
    assert result.exit_code == 0, result.output
    assert "source: ina3221 (measured)" in result.output
    assert "total rail: VDD_IN" in result.output
    lines = [ln for ln in result.output.splitlines() if "total 5.000 W" in ln]
    assert len(lines) == 3 and "VDD_SYS_CPU 1.200" in lines[0]


def test_meter_seconds_on_bare_machine_is_estimated(empty_root):
    result = CliRunner().invoke(cli, ["meter", "--root", empty_root, "--seconds", "0.3", "--interval-ms", "50"])
    assert result.exit_code == 0, result.output
    assert "(estimated)" in result.output and "idle" in result.output


def test_meter_list(empty_root):
    result = CliRunner().invoke(cli, ["meter", "--root", empty_root, "--list"])
    assert result.exit_code == 0
    assert "model" in result.output and "jtop service not running" in result.output


def test_meter_unavailable_source_is_an_error(empty_root):
    result = CliRunner().invoke(cli, ["meter", "--root", empty_root, "--source", "ina3221"])
    assert result.exit_code != 0
    assert "no INA3221 rails" in str(result.exception) + result.output


def test_measure_propagates_exit_code_and_prints_energy(tmp_path):
    make_tx2_tree(tmp_path, {"VDD_IN": 5000})
    cmd = [sys.executable, "-c", "import time, sys; time.sleep(0.2); sys.exit(3)"]
    result = CliRunner().invoke(cli, ["measure", "--root", str(tmp_path), "--interval-ms", "20", "--"] + cmd)
    assert result.exit_code == 3, result.output
    assert "source ina3221 (measured)" in result.output
    assert "mean 5.000 W" in result.output
    energy = float(result.output.split("energy ")[1].split(" J")[0])
    duration = float(result.output.split("duration ")[1].split(" s")[0])
    assert duration >= 0.2 and energy == pytest.approx(5.0 * duration, rel=0.01)


def test_measure_on_bare_machine_says_estimate(empty_root):
    result = CliRunner().invoke(cli, ["measure", "--root", empty_root, "--", sys.executable, "-c", "pass"])
    assert result.exit_code == 0, result.output
    assert "(estimated)" in result.output and "estimate" in result.output


def test_measure_missing_command(empty_root):
    result = CliRunner().invoke(cli, ["measure", "--root", empty_root, "--", "/no/such/program"])
    assert result.exit_code != 0
    assert "cannot run" in str(result.exception) + result.output
