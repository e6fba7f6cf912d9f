"""The on-device loop under load: an update cycle's time and energy per step, and the live loop's
latency at 30 fps while a cycle runs in ANOTHER process (the daemon) against the same loop idle.

Both phases serve the same workspace from a `miro-edge serve` subprocess on a paced file source;
in the second, a resident `miro-edge daemon --max-cycles 1` (started before, as under systemd)
runs the cycle that three new labels, queued through the Python API, trigger (idle policy on:
training pauses at a batch boundary while the live load is over daemon.idle.max_live_load).
Frames due from the samples' arrival to the cycle's publish are the "during" sample; the 3 s
after the publish (the server loading and swapping in the new version) are reported apart.
Baseline: the idle phase, same run.
The daemon runs under each setting of VARIANTS; rounds interleave idle and during phases (3 in a
full run, 1 with --quick); the ratio is the median over rounds of the during-cycle p99 against
the same round's idle p99 (machines here are shared: single p99s of a few hundred frames swing).
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
from miro_edge.workspace.workspace import Workspace

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


def during_phase(tmp, ws, variant, new_samples):
    """Serve ``ws`` with a resident daemon on it (its config: variant ``variant``), started before
    the samples arrive, as under systemd; then queue ``new_samples`` through the Python API (the
    app's way) and take the frames due from their arrival to the cycle's publish."""
    preds = tmp / f"during-{variant}.jsonl"
    p = serve(ws, tmp / "live.npz", preds, 600)
    daemon = subprocess.Popen([sys.executable, "-m", "miro_edge", "daemon", str(ws), "--max-cycles", "1",
                               "--timeout", "500"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = daemon.stdout.readline()  # written once the daemon is up (training stack imported)
    time.sleep(2.0)
    t0 = time.time()
    Workspace.open(ws, writer=False).ingest(*new_samples)
    out, _ = daemon.communicate(timeout=600)
    time.sleep(3.0)  # the server picks the new version up (its hot-swap window, reported apart)
    p.terminate()
    p.communicate(timeout=60)
    steps, steps_at, cycle, t1 = {}, [], None, None
    for stamp, ev in read_timed(ws / "results.jsonl", CycleStepEvent, CycleEvent):
        if isinstance(ev, CycleStepEvent) and ev.cycle == 1:
            steps[ev.step] = ev.seconds
            steps_at.append((ev.step, round(stamp - t0, 2)))
            if ev.step == "published":
                t1 = stamp
        if isinstance(ev, CycleEvent) and ev.cycle == 1:
            cycle = ev
    during = [json.loads(line) for line in preds.read_text().splitlines()]
    lat, dropped_late = late(during, t0, t1)
    swap_lat, _ = late(during, t1, t1 + 3.0)
    slow = sorted((q for q in during if t0 <= q["time"] <= t1), key=lambda q: -q["latency_ms"])[:8]
    print(f"[{variant}] slowest frames during the cycle (s after the samples arrived, ms, version):",
          [(round(q["time"] - t0, 2), q["latency_ms"], q["version"]) for q in slow])
    print(f"[{variant}] steps finished at (s after the samples arrived):", steps_at)
    return {"steps": steps, "cycle": cycle, "daemon": first + out, "lat": lat, "late": dropped_late,
            "wall_s": t1 - t0, "swap_lat": swap_lat}


def main():
    args = parser(__doc__).parse_args()
    epochs, idle_s, rounds = (4, 8.0, 1) if args.quick else (24, 12.0, 5)
    from sklearn.datasets import load_digits

    d = load_digits()
    x, y = (d.images / 16.0).astype(np.float32)[:, None], d.target
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        np.savez(tmp / "a.npz", x=x[np.isin(y, [0, 1, 2])], y=y[np.isin(y, [0, 1, 2])])
        np.savez(tmp / "live.npz", x=x[:300], y=y[:300])
        (tmp / "cfg.yaml").write_text(CONFIG.format(epochs=epochs, load=0.25))
        ws = tmp / "ws"
        cli("init", ws, "--config", tmp / "cfg.yaml")
        cli("ingest", ws, "--from", tmp / "a.npz")
        cli("update", ws)
        new_samples = (x[np.isin(y, [3, 4, 5])], [int(v) for v in y[np.isin(y, [3, 4, 5])]])

        # Interleaved rounds: the live loop alone, then the same loop while the daemon runs one
        # cycle in another process, once per daemon setting, each on a fresh copy of the workspace
        # (the same samples waiting). Frames are pooled over the rounds: one p99 of many frames.
        idle_rounds, idle_dropped, runs = [], 0, {name: [] for name in VARIANTS}
        for r in range(rounds):
            p = serve(ws, tmp / "live.npz", tmp / f"idle-{r}.jsonl", idle_s)
            _, err = p.communicate(timeout=idle_s + 60)
            idle = [json.loads(line) for line in (tmp / f"idle-{r}.jsonl").read_text().splitlines()]
            idle_rounds.append(np.array([q["latency_ms"] for q in idle[int(FPS):]]))  # skip the warm-up second
            idle_dropped += dropped_of(err)
            for name, overrides in VARIANTS.items():  # the user's way: edit the workspace's config
                copy = tmp / f"ws-{name}-{r}"
                shutil.copytree(ws, copy)
                config = yaml.safe_load((copy / "workspace.yaml").read_text())
                config.setdefault("daemon", {}).update(overrides)
                (copy / "workspace.yaml").write_text(yaml.safe_dump(config))
                runs[name].append(during_phase(tmp, copy, f"{name}-{r}", new_samples))
    idle_lat = np.concatenate(idle_rounds)
    idle_p99 = float(np.percentile(idle_lat, 99))
    main_run = runs["default"][0]
    steps, cycle, daemon = (main_run[k] for k in ("steps", "cycle", "daemon"))
    print(f"update cycle (daemon, another process): {main_run['wall_s']:.1f} s wall; steps {({k: round(v, 2) for k, v in steps.items()})}")
    print(f"  training energy {cycle.energy_j:.1f} J ({cycle.energy_label}), profile {cycle.profile_energy_j:.1f} J; published: {cycle.published}")
    print("  daemon: " + daemon.strip().splitlines()[-2])
    print(f"live loop at {FPS:.0f} fps, {rounds} round(s): idle p50 {np.percentile(idle_lat, 50):.2f} ms "
          f"p99 {idle_p99:.2f} ms ({len(idle_lat)} frames, dropped {idle_dropped})")
    for name in ("drained", "trained", "exported", "published"):
        result(f"update_step_{name}_s", round(steps.get(name, float("nan")), 3))
    result("update_energy_j", round(cycle.energy_j + cycle.profile_energy_j, 2))
    result("live_p50_idle_ms", round(float(np.percentile(idle_lat, 50)), 3))
    result("live_p99_idle_ms", round(idle_p99, 3))
    for name, overrides in VARIANTS.items():  # the default first, then each layer turned off
        lat = np.concatenate([run["lat"] for run in runs[name]])
        late_frames = sum(run["late"] for run in runs[name])
        walls = [run["wall_s"] for run in runs[name]]
        # each round's during-p99 against the same round's idle p99; the metric is their median
        per_round = [float(np.percentile(run["lat"], 99) / np.percentile(idle, 99))
                     for run, idle in zip(runs[name], idle_rounds)]
        print(f"  daemon {name} {overrides}: during p50 {np.percentile(lat, 50):.2f} ms p99 {np.percentile(lat, 99):.2f} ms "
              f"({len(lat)} frames, late {late_frames}); cycle wall median {np.median(walls):.1f} s; "
              f"per-round p99 ratios {[round(v, 2) for v in per_round]}, pooled {np.percentile(lat, 99) / idle_p99:.2f}")
        suffix = "" if name == "default" else f"_{name}"
        if name == "default":
            result("live_p99_during_update_ms", round(float(np.percentile(lat, 99)), 3))
        result(f"live_p99_during_update_ratio{suffix}", round(float(np.median(per_round)), 3))
        result(f"live_p99_during_update_ratio_pooled{suffix}", round(float(np.percentile(lat, 99)) / idle_p99, 3))
        result(f"dropped_frames_during_update{suffix}", late_frames)
        result(f"update_cycle_wall_s{suffix}", round(float(np.median(walls)), 2))
    swap = np.concatenate([run["swap_lat"] for run in runs["default"]])
    print(f"  the server's hot-swap window (3 s after each publish): p99 {np.percentile(swap, 99):.2f} ms "
          f"({len(swap)} frames)")
    result("live_p99_swap_window_ratio", round(float(np.percentile(swap, 99)) / idle_p99, 3))

if __name__ == "__main__":
    main()
