"""``miro-edge sweep``: the grid, the observations' arithmetic, and the command run the way a user
runs it (subprocess: parallel points, one JSON line per run, resume after a cut, the report)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from miro_edge.config import load_yaml
from miro_edge.errors import ConfigError
from miro_edge.sweep.analysis import analyse, knee, linear_fit
from miro_edge.sweep.grid import SweepConfig, plan, point_key, split_budget

ROOT = Path(__file__).resolve().parents[2]


def test_budgets_split_into_em_and_sb_and_shared_points_run_once():
    assert split_budget(100, 0.25) == (25, 75)
    assert split_budget(10, 0.0) == (0, 10)
    assert split_budget(3, 0.99) == (2, 1)  # the SB keeps a slot
    cfg = SweepConfig(session="s.yaml", budgets_samples=(40, 100, 200), em_shares=(0.25, 0.5),
                      swap_ratios=(0.0, 1.0), seeds=(0, 1))
    cells = plan(cfg, base_swap_ratio=1.0)
    assert len(cells) == 2 * (3 * 2 + 2)
    swap = [(p, c) for p, c in cells if c.series == "swap"]
    assert {(p.em_size, p.sb_size) for p, _ in swap} == {(25, 75)}  # the middle budget, the middle share
    keys = {point_key("w", p) for p, _ in cells}
    assert len(keys) == 2 * (3 * 2 + 1)  # em25/sb75 at swap 1.0 is in both series
    assert point_key("w", cells[0][0]) == "w:em10:sb30:swap1:seed0"


def test_sweep_config_is_validated(tmp_path):
    bad = tmp_path / "s.yaml"
    bad.write_text("session: x.yaml\nbudget_samples: [10]\n")
    with pytest.raises(ConfigError, match="unknown config key 'budget_samples'"):
        load_yaml(bad, SweepConfig)
    with pytest.raises(ConfigError, match="em_shares"):
        SweepConfig(session="x", em_shares=(1.0,))
    with pytest.raises(ConfigError, match="swap_em_share"):
        SweepConfig(session="x", swap_em_share=0.0)
    for shipped in sorted((ROOT / "configs" / "sweeps").glob("*.yaml")):
        cfg = load_yaml(shipped, SweepConfig)
        assert (shipped.parent / cfg.session).is_file(), shipped


def test_linear_fit_and_knee():
    fit = linear_fit([0, 1, 2, 3], [1, 3, 5, 7])
    assert fit is not None and fit.slope == pytest.approx(2) and fit.intercept == pytest.approx(1) and fit.r2 == pytest.approx(1)
    assert linear_fit([1, 1, 1], [1, 2, 3]) is None
    assert knee([0, 0.1, 0.2, 0.5, 1.0], [0.80, 0.93, 0.935, 0.94, 0.945]) == 0.1
    assert knee([0, 0.1, 0.2, 0.5, 1.0], [0.80, 0.90, 0.92, 0.93, 0.935]) == 0.2
    assert knee([0, 0.5, 1.0], [0.9, 0.8, 0.7]) is None  # no rise, no knee


def fake_sweep(acc, energy, swap_acc, swap_j):
    """A plan and runs for 2 budgets x 2 shares (+ a 3-ratio swap series), 2 seeds each."""
    cells, runs = [], {}
    for seed in (0, 1):
        for (budget, share), a in acc.items():
            em, sb = split_budget(budget, share)
            key = f"w:em{em}:sb{sb}:swap1:seed{seed}"
            cells.append({"key": key, "series": "grid", "budget_samples": budget, "em_share": share, "swap_ratio": 1.0,
                          "params": {"em_size": em, "sb_size": sb, "swap_ratio": 1.0, "seed": seed}})
            runs[key] = {"key": key, "status": "ok", "params": cells[-1]["params"], "final_average_accuracy": a + 0.002 * seed,
                         "energy_j": energy * (em + sb) + 3 + 0.01 * seed, "mean_training_samples_in_ram": em + sb,
                         "energy_label": "estimated", "energy_source": "model:t", "swaps_done": 0}
        for ratio, a, j in zip((0.0, 0.2, 1.0), swap_acc, swap_j):
            key = f"w:em50:sb50:swap{ratio:g}:seed{seed}"
            cells.append({"key": key, "series": "swap", "budget_samples": 100, "em_share": 0.5, "swap_ratio": ratio,
                          "params": {"em_size": 50, "sb_size": 50, "swap_ratio": ratio, "seed": seed}})
            runs[key] = {"key": key, "status": "ok", "params": cells[-1]["params"], "final_average_accuracy": a + 0.002 * seed,
                         "energy_j": j, "mean_training_samples_in_ram": 100, "energy_label": "estimated",
                         "energy_source": "model:t", "swaps_done": 10}
    cells.append({"key": "w:missing", "series": "grid", "budget_samples": 100, "em_share": 0.5, "swap_ratio": 1.0,
                  "params": {"em_size": 50, "sb_size": 50, "swap_ratio": 1.0, "seed": 9}})
    plan_data = {"workload": "w", "session": {"data": {"dataset": "toy"}}, "overhead_bytes": 2 ** 20,
                 "bytes_per_sample": 1024, "sweep": {"seeds": [0, 1]}, "cells": cells}
    return plan_data, runs


def test_observations_shown_when_the_data_shows_them():
    plan_data, runs = fake_sweep({(100, 0.25): 0.70, (100, 0.75): 0.80, (400, 0.25): 0.90, (400, 0.75): 0.60},
                                 energy=0.05, swap_acc=(0.70, 0.80, 0.81), swap_j=(10.0, 10.1, 10.2))
    obs = analyse(plan_data, runs)
    assert obs.energy_fit is not None and obs.energy_fit.r2 > 0.99 and obs.energy_fit.slope == pytest.approx(0.05, rel=0.01)
    assert obs.best_by_accuracy == {100: 0.75, 400: 0.25}
    assert obs.verdicts["best_split_per_budget"].startswith("shown")
    assert obs.verdicts["larger_budget_not_better"].startswith("shown")  # share 0.75: 0.80 -> 0.60
    assert obs.knee_ratio == 0.2 and obs.verdicts["swap_cheap_low_knee"].startswith("shown")
    assert obs.missing == 1 and obs.budget_mb(400) == pytest.approx(1 + 400 / 1024)


def test_observations_not_shown_when_the_data_does_not():
    plan_data, runs = fake_sweep({(100, 0.25): 0.70, (100, 0.75): 0.80, (400, 0.25): 0.75, (400, 0.75): 0.90},
                                 energy=0.05, swap_acc=(0.80, 0.79, 0.78), swap_j=(10.0, 14.0, 20.0))
    obs = analyse(plan_data, runs)
    assert obs.verdicts["best_split_per_budget"].startswith("not shown")
    assert obs.verdicts["larger_budget_not_better"].startswith("not shown")
    assert obs.knee_ratio is None and obs.verdicts["swap_cheap_low_knee"].startswith("not shown")


def sweep_cli(*args):
    return subprocess.run([sys.executable, "-m", "miro_edge", "sweep"] + list(args), capture_output=True, text=True)


def test_sweep_cli_runs_in_parallel_resumes_and_reports(tmp_path):
    cfg = tmp_path / "sweep.yaml"
    cfg.write_text("session: {}\nbudgets_samples: [30, 90]\nem_shares: [0.25, 0.75]\nswap_ratios: [0.0, 1.0]\n"
                   "seeds: [0]\nepochs: 1\nnum_tasks: 2\n".format(ROOT / "configs" / "demo.yaml"))
    out = tmp_path / "sweep"
    first = sweep_cli("--config", str(cfg), "--out", str(out), "--jobs", "2")
    assert first.returncode == 0, first.stderr
    assert "5 points (6 runs planned over 1 seed(s))" in first.stdout
    assert "energy: estimated (model:" in first.stdout and "energy_vs_memory" in first.stdout
    lines = (out / "runs.jsonl").read_text().splitlines()
    records = [json.loads(ln) for ln in lines]
    assert len(records) == 5 and all(r["status"] == "ok" for r in records)
    assert len({r["key"] for r in records}) == 5
    assert all(0.0 <= r["final_average_accuracy"] <= 1.0 and r["energy_j"] > 0 and r["tasks"] == 2 for r in records)
    assert (out / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (out / "sweep.html").read_text()
    assert "sweep.png" in page and "Verdicts" in page and "estimated" in page
    # a cut mid-sweep: the last result lost, and a torn line after it
    (out / "runs.jsonl").write_text("\n".join(lines[:4]) + '\n{"key": "torn')
    again = sweep_cli("--config", str(cfg), "--out", str(out))
    assert again.returncode == 0, again.stderr
    keys = [json.loads(ln)["key"] for ln in (out / "runs.jsonl").read_text().splitlines()]  # torn tail cut, not merged
    assert sorted(keys) == sorted(r["key"] for r in records)  # only the lost point ran again
    other = tmp_path / "other.yaml"
    other.write_text(cfg.read_text().replace("epochs: 1", "epochs: 2"))
    refused = sweep_cli("--config", str(other), "--out", str(out))
    assert refused.returncode == 1 and refused.stderr.startswith("Error:") and "another workload" in refused.stderr
