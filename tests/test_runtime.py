"""The deployables under runtime/ stay in step with the CLI and the config schema."""
import configparser
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from miro_edge.config import load_yaml
from miro_edge.workspace.config import WorkspaceConfig

ROOT = Path(__file__).resolve().parents[1]


def test_the_on_device_config_is_a_valid_workspace_config():
    config = load_yaml(ROOT / "runtime" / "config" / "workspace.yaml", WorkspaceConfig)
    assert config.input_shape == (3, 64, 64) and config.daemon.idle.require_external_power


@pytest.mark.parametrize("unit", ["miro-edge-serve.service", "miro-edge-daemon.service"])
def test_systemd_units_run_real_commands_with_real_options(unit):
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.read(str(ROOT / "runtime" / "systemd" / unit))
    argv = shlex.split(parser["Service"]["ExecStart"])
    assert argv[0].endswith("miro-edge") and parser["Service"]["KillSignal"] == "SIGTERM"
    command = argv[1]
    helptext = subprocess.run([sys.executable, "-m", "miro_edge", command, "--help"], capture_output=True,
                              text=True, check=True).stdout
    for opt in [a for a in argv[2:] if a.startswith("--")]:
        assert opt in helptext, f"{command} has no option {opt}"


def test_the_example_app_is_a_thin_client_that_starts():
    out = subprocess.run([sys.executable, str(ROOT / "runtime" / "apps" / "live_app.py"), "--help"],
                         capture_output=True, text=True, check=True).stdout
    assert "workspace" in out and "--source" in out
