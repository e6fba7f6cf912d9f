"""Through the real CLI, on the generated glyphs workload: the controller records the forgetting
evidence of every task that replayed, the rule each task's candidates passed and why, and the
choice names the rule; candidates the rule excludes are recorded as skipped, never trained."""
import json
import subprocess
import sys

import pytest

CONFIG = """
data: {dataset: glyphs, classes_per_task: 2, num_tasks: 3, seed: 0}
data_options: {per_class: 80}
memory: {em_size: 20, swap: {swap_ratio: 1.0}}
train: {model: cnn2d, width: 8, epochs: 8, threads: 1}
controller:
  enabled: true
  memory_budget_mb: 1.35  # overhead ~1.21 MB measured + room for ~250 samples
  trial_epochs: 1
  val_per_class: 10
  grid: {em_steps: 3, sb_steps: 2, min_em_per_class: 5, min_sb_size: 48}
energy: {source: model}
"""


@pytest.mark.slow
def test_controller_run_records_evidence_rule_and_reasons(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(CONFIG)
    out = subprocess.run([sys.executable, "-m", "miro_edge", "run", "--config", str(config), "--out",
                          str(tmp_path / "run")], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert "final average accuracy" in out.stdout and "glyphs" in out.stdout
    events = [json.loads(line) for line in (tmp_path / "run" / "results.jsonl").read_text().splitlines()]
    kinds = lambda k: [e for e in events if e["kind"] == k]  # noqa: E731
    rules = {e["task_id"]: e for e in kinds("em_rule")}
    assert sorted(rules) == [0, 1, 2]  # task 0 (no old classes) is ruled on its SB sizes
    assert rules[1]["evidence"] == 0 and rules[2]["evidence"] == 1  # task 1's evidence reached task 2
    for rule in rules.values():
        assert rule["allowed"] and set(rule["allowed"]) <= set(rule["predicted"]) and "tau" in rule["reason"]
    evidence = kinds("forgetting_evidence")
    assert [e["task_id"] for e in evidence] == [1, 2]
    assert all(0 <= e["old_accuracy"] <= 1 and e["per_class"] > 0 for e in evidence)
    assert evidence[0]["tau"] > 0  # (a later task whose new classes were not learned carries no estimate: null)
    choices = {e["task_id"]: e for e in kinds("choice")}
    assert "Forgetting rule" in choices[1]["reason"] and "Forgetting rule" in choices[2]["reason"]
    for task_id, rule in rules.items():
        chosen = "{}/{}".format(choices[task_id]["em_size"], choices[task_id]["sb_size"])
        assert chosen in rule["allowed"]
        trained = {(w["em_size"], w["sb_size"]) for w in kinds("trial_window") if w["task_id"] == task_id}
        allowed = {tuple(int(v) for v in k.split("/")) for k in rule["allowed"]}
        if choices[task_id]["scorer"] == "forgetting_rule":  # predictions left no choice worth a trial
            assert not trained and "without trials" in choices[task_id]["reason"]
            assert (choices[task_id]["em_size"], choices[task_id]["sb_size"]) == min(allowed, key=sum)
        else:
            assert trained == allowed  # the rest are recorded skipped, never trained
            skipped = [t for t in kinds("trial") if t["task_id"] == task_id and t["status"] == "skipped"]
            assert all("{}/{}".format(t["em_size"], t["sb_size"]) not in rule["allowed"] for t in skipped)
    profiles = kinds("profile_energy")
    assert len(profiles) == 3 and all(p["energy_j"] > 0 and p["energy_j"] >= p["trial_windows_j"] for p in profiles)
