"""The on-device loop driven end to end through the real CLI, in subprocesses, as a user would:
init → ingest two labels → update → serve (background, file source, predictions in the user's
labels) → ingest a new label from the CLI and another through the server's live feedback →
daemon runs one cycle → the server hot-swaps with no dropped frame and predicts the new labels →
rollback → status --json shows all of it."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from workspace_fixtures import NAMES, digits, write_npz

CONFIG = """
train: {width: 8, epochs: 6, threads: 1, seed: 0}
memory: {em_size: 120, val_fraction: 0.15}
update: {canary_max_drop: 0.3, min_new_samples: 8}
daemon: {poll_s: 0.3, idle: {max_live_load: 0.9}}
"""


def cli(*args, check=True, timeout=240):
    proc = subprocess.run([sys.executable, "-m", "miro_edge"] + [str(a) for a in args], capture_output=True,
                          text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"miro-edge {args} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def wait_for(predicate, timeout_s, what):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("timed out waiting for " + what)


@pytest.mark.slow
def test_init_ingest_update_serve_feedback_daemon_hotswap_rollback_status(tmp_path):
    x, y = digits()
    ws = tmp_path / "ws"
    (tmp_path / "cfg.yaml").write_text(CONFIG)
    n_first = write_npz(tmp_path / "first.npz", x, y, [0, 1])
    n_two = write_npz(tmp_path / "two.npz", x, y, [2])
    # the live feed: frames of zero, one and three; the app learns their labels (feedback)
    live = np.isin(y, [0, 1, 3])
    np.savez(tmp_path / "live.npz", x=x[live][:240], y=NAMES[y[live]][:240])

    out = cli("init", ws, "--config", tmp_path / "cfg.yaml").stdout
    assert "created workspace" in out and (ws / "workspace.yaml").is_file()
    out = cli("ingest", ws, "--from", tmp_path / "first.npz").stdout
    assert f"queued {n_first} samples" in out and "2 new labels: zero, one" in out
    out = cli("update", ws).stdout
    assert "published v000001" in out and f"drained   {n_first} samples" in out
    assert json.loads((ws / "labels.json").read_text())["labels"] == ["zero", "one"]

    preds = tmp_path / "preds.jsonl"
    server = subprocess.Popen([sys.executable, "-m", "miro_edge", "serve", ws, "--source", "npz", "--uri",
                               tmp_path / "live.npz", "--loop", "--fps", "10", "--predictions-out", preds,
                               "--feedback-every", "1", "--poll-every", "3", "--print-predictions"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: preds.exists() and len(preds.read_text().splitlines()) >= 10, 60, "first predictions")
        first = [json.loads(line) for line in preds.read_text().splitlines()]
        assert {p["label"] for p in first} <= {"zero", "one"} and all(p["version"] == 1 for p in first)
        assert json.loads((ws / "live" / "load.json").read_text())["fps"] > 0  # the load the daemon reads

        out = cli("ingest", ws, "--from", tmp_path / "two.npz").stdout
        assert f"queued {n_two} samples" in out
        # the server's feedback brings label "three" (never ingested from the CLI)
        wait_for(lambda: "three" in json.dumps(json.loads(cli("status", ws, "--json").stdout)["samples_per_label"]),
                 60, "live feedback of label three")
        wait_for(lambda: json.loads(cli("status", ws, "--json").stdout)["samples_per_label"]["three"]["waiting"] >= 12,
                 60, "a dozen feedback samples")
        out = cli("daemon", ws, "--max-cycles", "1", "--timeout", "200").stdout
        assert "cycle 1:" in out and "published v000002" in out, out
        if hasattr(os, "SCHED_IDLE"):  # the default daemon.cpu_policy: training only on spare CPU time
            assert f"nice {max(10, os.nice(0))}, SCHED_IDLE" in out.splitlines()[0], out
        wait_for(lambda: any(json.loads(line)["version"] == 2 for line in preds.read_text().splitlines()), 60,
                 "the server to swap to v2")
        # the looped source shows the feedback label every so often: wait for v2 to meet it (a fixed
        # 2 s saw none once in seven runs under load), then a little more for the frame checks below
        wait_for(lambda: any(p["version"] == 2 and p["label"] == "three"
                             for p in map(json.loads, preds.read_text().splitlines())), 30,
                 "v2 to predict the label learnt from feedback")
        time.sleep(1)
    finally:
        server.send_signal(signal.SIGTERM)
        stdout, stderr = server.communicate(timeout=60)
    assert server.returncode == 0, stderr
    summary = [line for line in stderr.splitlines() if line.startswith("served")][-1]
    assert "swaps 1 (0 failed)" in summary, summary
    served = [json.loads(line) for line in preds.read_text().splitlines()]
    first_v2 = next(i for i, p in enumerate(served) if p["version"] == 2)
    around = served[max(0, first_v2 - 5):first_v2 + 5]  # the swap: loaded off the frame loop, swapped between frames
    assert [p["index"] for p in around] == list(range(around[0]["index"], around[0]["index"] + len(around)))
    assert max(p["latency_ms"] for p in around) < 100.0, around  # none finished after the next frame was due
    dropped = int(summary.split("dropped ")[1].split(",")[0])
    assert dropped <= 0.02 * len(served), summary  # training in the other process shares 2 cores with the loop
    after = [p for p in served if p["version"] == 2]
    assert {"three"} <= {p["label"] for p in after}, "v2 predicts the label learnt from feedback"
    assert "frame" in stdout and ("three" in stdout or "zero" in stdout)  # --print-predictions

    out = cli("rollback", "--registry", ws / "registry").stdout
    assert "v000001" in out
    status = json.loads(cli("status", ws, "--json").stdout)
    assert status["labels"][:2] == ["zero", "one"] and set(status["labels"]) == {"zero", "one", "two", "three"}
    assert status["current_version"] == 1 and [v["version"] for v in status["versions"]] == [1, 2]
    assert status["cycles_done"] == 2 and [c["cycle"] for c in status["cycles"]] == [0, 1]
    assert status["samples_per_label"]["two"]["train"] + status["samples_per_label"]["two"]["val"] == n_two
    assert status["last_cycle"]["energy_label"] in ("measured", "estimated")
    assert status["versions"][1]["labels"] == status["labels"]
