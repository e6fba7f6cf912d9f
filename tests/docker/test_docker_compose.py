"""Each board's docker-compose.yml: the two services over one workspace, the device mounts the
SDK's power meters and camera need, the NVIDIA runtime (parsed with PyYAML; no Docker engine here)."""
import re
import subprocess
import sys

import pytest
import yaml
from jetson_files import BOARDS, JETSON

from miro_edge.energy.ina3221 import HWMON_GLOB, IIO_GLOB
from miro_edge.energy.jtop_meter import JTOP_SOCKET

INA3221_GLOB = {"tx2": IIO_GLOB, "xavier-nx": HWMON_GLOB}
VAR = re.compile(r"\$\{([A-Z0-9_]+)(?::-([^}]*))?\}")


def resolve(value):
    """Compose's ${VAR:-default} interpolation with no variable set (what `compose up` gets by default)."""
    if isinstance(value, str):
        return VAR.sub(lambda m: m.group(2) or "", value)
    if isinstance(value, list):
        return [resolve(v) for v in value]
    if isinstance(value, dict):
        return {k: resolve(v) for k, v in value.items()}
    return value


def load(board):
    return yaml.safe_load((JETSON / board / "docker-compose.yml").read_text())


def mounts(service):
    """(source, target, read_only, extra) for each volume, short or long syntax."""
    out = []
    for vol in service["volumes"]:
        if isinstance(vol, str):
            parts = vol.split(":")
            out.append((parts[0], parts[1], len(parts) > 2 and "ro" in parts[2].split(","), {}))
        else:
            out.append((vol["source"], vol["target"], bool(vol.get("read_only")), vol))
    return out


@pytest.mark.parametrize("board", sorted(BOARDS))
def test_two_services_share_one_workspace_on_the_nvidia_runtime(board):
    doc = resolve(load(board))
    services = doc["services"]
    assert set(services) == {"serve", "daemon"}
    workspaces = set()
    for name, svc in services.items():
        assert svc["image"] == f"miro-edge:{board}", name
        assert svc["runtime"] == "nvidia", name
        ws = [m for m in mounts(svc) if m[1] == "/workspace"]
        assert len(ws) == 1 and not ws[0][2], f"{name}: one writable /workspace mount"
        workspaces.add(ws[0][0])
        assert "video" in svc["group_add"]
        engines = [m for m in mounts(svc) if m[1] == "/home/miro/.cache/miro_edge"]
        assert engines and engines[0][0] == "miro-edge-engines", f"{name}: TensorRT engines must outlive it"
    assert workspaces == {"miro-edge-workspace"} and set(doc["volumes"]) == {"miro-edge-workspace", "miro-edge-engines"}
    assert services["serve"]["command"][:2] == ["serve", "/workspace"] and "--source" in services["serve"]["command"]
    assert services["daemon"]["command"] == ["daemon", "/workspace"]


@pytest.mark.parametrize("board", sorted(BOARDS))
def test_power_sensors_jtop_and_camera_are_mounted(board):
    services = resolve(load(board))["services"]
    for name, svc in services.items():
        by_target = {m[1]: m for m in mounts(svc)}
        sensor_dir = INA3221_GLOB[board].split("*")[0].rstrip("/")
        ina = [m for t, m in by_target.items() if sensor_dir == t or sensor_dir.startswith(t + "/")]
        assert len(ina) == 1, f"{board} {name}: no mount covers {INA3221_GLOB[board]}"
        source, target, read_only, _ = ina[0]
        assert read_only and source == target, f"{name}: the INA3221 tree is bound read-only at its own path"
        jtop = by_target.get(JTOP_SOCKET)
        assert jtop is not None and jtop[0] == JTOP_SOCKET, f"{name}: {JTOP_SOCKET} not mounted"
        assert jtop[3].get("bind", {}).get("create_host_path") is False, \
            "a missing jtop socket must not become a directory on the host"
    cameras = [d.split(":") for d in services["serve"]["devices"]]
    assert cameras and all(re.fullmatch(r"/dev/video\d+", src) and src == dst for src, dst in cameras)
    assert "devices" not in services["daemon"], "the daemon trains; only serve reads the camera"


def test_serve_options_in_compose_exist_in_the_cli():
    help_out = subprocess.run([sys.executable, "-m", "miro_edge", "--help"], capture_output=True, text=True)
    if "\n  serve " not in help_out.stdout:
        pytest.skip("this miro-edge has no `serve` command yet (the device-loop issue adds it)")
    for board in sorted(BOARDS):
        for name in ("serve", "daemon"):
            command = resolve(load(board))["services"][name]["command"]
            out = subprocess.run([sys.executable, "-m", "miro_edge", name, "--help"], capture_output=True, text=True)
            assert out.returncode == 0, out.stderr
            for option in (a for a in command if a.startswith("--")):
                assert option in out.stdout, f"{board}: `miro-edge {name}` has no {option}"
