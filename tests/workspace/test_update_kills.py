"""``miro-edge update`` really killed (SIGKILL, like a power cut) at named points across every
step of the cycle, then rerun: the cycle completes, and per-label counts in the store, the label
map and the registry's versions are exactly those of an uninterrupted cycle."""
import json
import os
import shutil
import signal
import subprocess
import sys

import pytest
from workspace_fixtures import digits, write_npz

CONFIG = """
train: {width: 8, epochs: 2, threads: 1, seed: 0}
memory: {em_size: 60, val_fraction: 0.15}
update: {canary_max_drop: 1.0}
controller:
  enabled: true
  memory_budget_mb: 1.4
  grid: {em_steps: 2, sb_steps: 2, min_em_per_class: 10, min_sb_size: 64}
"""

# one point per step runs in `make test`; every point with `make test-faults` (-m faults)
CORE = ["drain:after-commit", "profile:after", "train:batch@5", "train:before-checkpoint", "export:after-onnx",
        "publish:after-registry"]
MORE = ["drain:before-commit", "drain:before-inbox-cleanup", "step:drained:before-state", "profile:before",
        "step:trained:before-state", "step:exported:before-state", "publish:before", "step:published:before-state",
        "finish:after-journal"]
POINTS = CORE + [pytest.param(p, marks=pytest.mark.faults) for p in MORE]


def update(ws, kill_at=None):
    env = dict(os.environ)
    env.pop("MIRO_EDGE_KILL_AT", None)
    if kill_at:
        env["MIRO_EDGE_KILL_AT"] = kill_at
    return subprocess.run([sys.executable, "-m", "miro_edge", "update", str(ws)], capture_output=True, text=True,
                          env=env, timeout=300)


def status(ws):
    out = subprocess.run([sys.executable, "-m", "miro_edge", "status", str(ws), "--json"], capture_output=True,
                         text=True, check=True).stdout
    return json.loads(out)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A workspace after one cycle, with two new labels waiting; and the state an uninterrupted
    second cycle leaves."""
    tmp = tmp_path_factory.mktemp("kills")
    x, y = digits()
    (tmp / "cfg.yaml").write_text(CONFIG)
    write_npz(tmp / "a.npz", x, y, [0, 1], limit=200)
    write_npz(tmp / "b.npz", x, y, [2, 3], limit=200)
    base = tmp / "base"
    for args in (["init", base, "--config", tmp / "cfg.yaml"], ["ingest", base, "--from", tmp / "a.npz"],
                 ["update", base], ["ingest", base, "--from", tmp / "b.npz"]):
        subprocess.run([sys.executable, "-m", "miro_edge"] + [str(a) for a in args], check=True,
                       capture_output=True)
    reference = tmp / "reference"
    shutil.copytree(str(base), str(reference))
    assert update(reference).returncode == 0
    return tmp, base, status(reference)


def _comparable(st):
    return {"labels": st["labels"], "per_label": st["samples_per_label"], "store_records": st["store_records"],
            "versions": [(v["version"], v["status"]) for v in st["versions"]], "current": st["current_version"],
            "cycles": [c["cycle"] for c in st["cycles"]], "cycles_done": st["cycles_done"],
            "waiting": st["samples_waiting"]}


@pytest.mark.slow
@pytest.mark.parametrize("point", POINTS)
def test_a_cycle_killed_at_any_step_resumes_exactly(prepared, point):
    tmp, base, reference = prepared
    ws = tmp / point.replace(":", "_").replace("@", "_")
    shutil.copytree(str(base), str(ws))
    killed = update(ws, kill_at=point)
    assert killed.returncode == -signal.SIGKILL, (point, killed.returncode, killed.stdout, killed.stderr)
    mid = status(ws)  # readable at once after the kill, without a lock
    assert mid["cycles_done"] == 1
    resumed = update(ws)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resuming cycle 1" in resumed.stdout, resumed.stdout
    got = status(ws)
    assert _comparable(got) == _comparable(reference), point
    assert not [p for p in (ws / "inbox").iterdir()], "inbox drained and cleaned"
    assert not list(ws.glob(".*.tmp")) and not list((ws / "checkpoints").glob(".*.tmp"))
    nothing = update(ws)
    assert nothing.returncode == 0 and "nothing to learn" in nothing.stdout
