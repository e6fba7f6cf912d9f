"""The on-device loop under load: an update cycle's time and energy per step, and the live loop's
latency at 30 fps while a cycle runs in ANOTHER process (the daemon) against the same loop idle.

Both phases serve the same workspace from a `miro-edge serve` subprocess on a paced file source;
in the second, `miro-edge daemon --max-cycles 1` runs one cycle (idle policy on: training pauses
at a batch boundary while the live load is over daemon.idle.max_live_load). Frames whose due time
falls inside the daemon's run are the "during" sample. Baseline: the idle phase, same run.
"""
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml
from _common import parser, result

from miro_edge.events import CycleEvent, CycleStepEvent
from miro_edge.recorder import read_timed

CONFIG = """
train: {{width: 16, epochs: {epochs}, threads: 1, seed: 0}}
memory: {{em_size: 100, val_fraction: 0.1}}
update: {{canary_max_drop: 1.0}}
daemon: {{poll_s: 0.2, idle: {{max_live_load: {load}}}}}
"""
FPS = 30.0
# The daemon's settings compared in one run (the default first): SCHED_IDLE plus the frame-gap
# gate (the defaults), SCHED_IDLE alone, and niceness alone (the daemon before either).
VARIANTS = {"default": {}, "no_gap": {"frame_gap": False}, "nice_only": {"cpu_policy": "nice", "frame_gap": False}}


def cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "miro_edge"] + [str(a) for a in args], check=True,
                          capture_output=True, text=True, **kw)


def serve(ws, frames, preds, seconds):
    argv = ["serve", ws, "--source", "npz", "--uri", frames, "--loop", "--fps", FPS, "--duration", seconds,
            "--predictions-out", preds, "--engine", "onnxruntime"]
    return subprocess.Popen([sys.executable, "-m", "miro_edge"] + [str(a) for a in argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def dropped_of(stderr):
    line = [ln for ln in stderr.splitlines() if ln.startswith("served")][-1]
    return int(line.split("dropped ")[1].split(",")[0])


def late(preds, lo, hi):
    """Frames due in [lo, hi] (wall time) and how many of them finished after the next was due."""
    rows = [p for p in preds if lo <= p["time"] - p["latency_ms"] / 1e3 <= hi]
    lat = np.array([p["latency_ms"] for p in rows])
    return lat, int((lat > 1e3 / FPS).sum())


def during_phase(tmp, ws, variant):
    """Serve ``ws`` while ``miro-edge daemon`` runs one cycle on it (its config: variant ``variant``)."""
    preds = tmp / f"during-{variant}.jsonl"
    p = serve(ws, tmp / "live.npz", preds, 600)
    time.sleep(2.0)
    t0 = time.time()
    daemon = cli("daemon", ws, "--max-cycles", "1", "--timeout", "500", timeout=600)
    t1 = time.time()
    time.sleep(1.0)
    p.terminate()
    p.communicate(timeout=60)
    during = [json.loads(line) for line in preds.read_text().splitlines()]
    lat, dropped_late = late(during, t0, t1)
    slow = sorted((q for q in during if t0 <= q["time"] <= t1), key=lambda q: -q["latency_ms"])[:8]
    print(f"[{variant}] slowest frames during the cycle (s after daemon start, ms, version):",
          [(round(q["time"] - t0, 2), q["latency_ms"], q["version"]) for q in slow])
    steps, steps_at, cycle = {}, [], None
    for stamp, ev in read_timed(ws / "results.jsonl", CycleStepEvent, CycleEvent):
        if isinstance(ev, CycleStepEvent) and ev.cycle == 1:
            steps[ev.step] = ev.seconds
            steps_at.append((ev.step, round(stamp - t0, 2)))
        if isinstance(ev, CycleEvent) and ev.cycle == 1:
            cycle = ev
    print(f"[{variant}] steps finished at (s after daemon start):", steps_at)
    return {"steps": steps, "cycle": cycle, "daemon": daemon, "lat": lat, "late": dropped_late, "wall_s": t1 - t0}


def main():
    args = parser(__doc__).parse_args()
    epochs, idle_s = (4, 8.0) if args.quick else (12, 20.0)
    from sklearn.datasets import load_digits

    d = load_digits()
    x, y = (d.images / 16.0).astype(np.float32)[:, None], d.target
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        np.savez(tmp / "a.npz", x=x[np.isin(y, [0, 1, 2])], y=y[np.isin(y, [0, 1, 2])])
        np.savez(tmp / "b.npz", x=x[np.isin(y, [3, 4, 5])], y=y[np.isin(y, [3, 4, 5])])
        np.savez(tmp / "live.npz", x=x[:300], y=y[:300])
        (tmp / "cfg.yaml").write_text(CONFIG.format(epochs=epochs, load=0.25))
        ws = tmp / "ws"
        cli("init", ws, "--config", tmp / "cfg.yaml")
        cli("ingest", ws, "--from", tmp / "a.npz")
        cli("update", ws)
        cli("ingest", ws, "--from", tmp / "b.npz")

        # phase 1: the live loop alone
        p = serve(ws, tmp / "live.npz", tmp / "idle.jsonl", idle_s)
        _, err = p.communicate(timeout=idle_s + 60)
        idle = [json.loads(line) for line in (tmp / "idle.jsonl").read_text().splitlines()]
        idle_lat = np.array([q["latency_ms"] for q in idle[int(FPS):]])  # skip the first second (warm-up)
        idle_dropped = dropped_of(err)

        # phase 2: the same loop while the daemon runs one cycle in another process, once per
        # daemon setting, each on its own copy of the workspace (the same samples waiting)
        for name, overrides in VARIANTS.items():  # the user's way: edit the workspace's config
            shutil.copytree(ws, tmp / f"ws-{name}")
            config = yaml.safe_load((tmp / f"ws-{name}" / "workspace.yaml").read_text())
            config.setdefault("daemon", {}).update(overrides)
            (tmp / f"ws-{name}" / "workspace.yaml").write_text(yaml.safe_dump(config))
        runs = {name: during_phase(tmp, tmp / f"ws-{name}", name) for name in VARIANTS}
    main_run = runs["default"]
    steps, cycle, daemon, lat, dropped_late = (main_run[k] for k in ("steps", "cycle", "daemon", "lat", "late"))
    print(f"update cycle (daemon, another process): {main_run['wall_s']:.1f} s wall; steps {({k: round(v, 2) for k, v in steps.items()})}")
    print(f"  training energy {cycle.energy_j:.1f} J ({cycle.energy_label}), profile {cycle.profile_energy_j:.1f} J; published: {cycle.published}")
    print("  daemon: " + daemon.stdout.strip().splitlines()[-2])
    print(f"live loop at {FPS:.0f} fps: idle p50 {np.percentile(idle_lat, 50):.2f} ms p99 {np.percentile(idle_lat, 99):.2f} ms ({len(idle_lat)} frames, dropped {idle_dropped}); during the cycle "
          f"p50 {np.percentile(lat, 50):.2f} ms p99 {np.percentile(lat, 99):.2f} ms ({len(lat)} frames, late {dropped_late})")
    for name in ("drained", "trained", "exported", "published"):
        result(f"update_step_{name}_s", round(steps.get(name, float("nan")), 3))
    result("update_energy_j", round(cycle.energy_j + cycle.profile_energy_j, 2))
    result("live_p50_idle_ms", round(float(np.percentile(idle_lat, 50)), 3))
    result("live_p99_idle_ms", round(float(np.percentile(idle_lat, 99)), 3))
    result("live_p99_during_update_ms", round(float(np.percentile(lat, 99)), 3))
    result("live_p99_during_update_ratio", round(float(np.percentile(lat, 99) / np.percentile(idle_lat, 99)), 3))
    result("dropped_frames_during_update", dropped_late)
    for name in list(VARIANTS)[1:]:  # the other settings, same run, same baseline
        other = runs[name]["lat"]
        print(f"  daemon {name} {VARIANTS[name]}: during p50 {np.percentile(other, 50):.2f} ms p99 "
              f"{np.percentile(other, 99):.2f} ms ({len(other)} frames, late {runs[name]['late']}), "
              f"cycle {runs[name]['wall_s']:.1f} s")
        result(f"live_p99_during_update_ratio_{name}", round(float(np.percentile(other, 99) /
                                                                   np.percentile(idle_lat, 99)), 3))
        result(f"dropped_frames_during_update_{name}", runs[name]["late"])


if __name__ == "__main__":
    main()
