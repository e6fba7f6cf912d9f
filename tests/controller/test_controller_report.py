"""Report: events round-trip through the results JSONL, PNG per task, summary table, CLI."""
import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from miro_edge.cli.commands.report import command
from miro_edge.controller.adapt import RatioChange
from miro_edge.controller.grid import Candidate
from miro_edge.controller.report import (
    choice_event,
    load_results,
    summary_table,
    swap_ratio_event,
    trial_event,
    write_report,
)
from miro_edge.controller.scorer import CostEffectiveScorer, Trial
from miro_edge.errors import InputError
from miro_edge.events import ChoiceEvent, SwapRatioEvent, TrialEvent
from miro_edge.recorder import Recorder

MB = 1024 * 1024


def test_event_field_names_are_the_documented_schema():
    assert TrialEvent.field_names() == ("task_id", "em_size", "sb_size", "memory_bytes", "accuracy", "energy_j",
                                        "energy_label", "seconds", "status", "reason")
    assert ChoiceEvent.field_names() == ("task_id", "em_size", "sb_size", "scorer", "reason", "cutline_accuracy")
    assert SwapRatioEvent.field_names() == ("task_id", "old", "new", "reason")


def _task_trials(scale):
    return [
        Trial(Candidate(50, 64, 21 * MB), 0.52 * scale, 40.0, "measured", 8.0),
        Trial(Candidate(210, 253, 30 * MB), 0.71 * scale, 95.0, "measured", 15.0),
        Trial(Candidate(880, 1000, 62 * MB), 0.80 * scale, 260.0, "measured", 41.0),
        Trial(Candidate(880, 253, 48 * MB), 0.78 * scale, 150.0, "measured", 27.0),
        Trial(Candidate(50, 1000, 30 * MB), None, None, "none", 3.0, "degenerate", "loss was NaN"),
        Trial.blacklisted(Candidate(3670, 1000, 75 * MB), "needs 75.01 MB, over the memory budget of 64.00 MB"),
    ]


@pytest.fixture
def results_file(tmp_path):
    path = tmp_path / "run" / "results.jsonl"
    scorer = CostEffectiveScorer(cutline=0.5)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"kind": "run_start", "time": 0.0, "config": {"seed": 0}}) + "\n")  # a newer kind
    with Recorder(path) as rec:
        for task_id, scale in ((0, 1.0), (1, 0.9)):
            trials = _task_trials(scale)
            for t in trials:
                rec.write(trial_event(task_id, t))
            rec.write(choice_event(task_id, scorer.choose(trials)))
        rec.write(swap_ratio_event(1, RatioChange(0.2, 0.1, "congested for 3 windows", 3)))
    with open(str(path), "a") as handle:
        handle.write('{"kind": "trial", "task_id": 2, "em_si')  # a torn last line (power cut)
    return path


def test_load_results_groups_by_task(results_file):
    tasks = load_results(results_file)
    assert [t.task_id for t in tasks] == [0, 1]
    assert len(tasks[0].trials) == 6 and len(tasks[0].choices) == 1 and tasks[0].swap_changes == ()
    assert tasks[1].swap_changes[0].new == 0.1
    # cutline 0.5 over the 4 scored -> (880, 1000) and (880, 253) kept; the latter is cheaper per joule
    assert (tasks[0].choices[0].em_size, tasks[0].choices[0].sb_size) == (880, 253)
    assert tasks[0].choices[0].cutline_accuracy == pytest.approx(0.78)


def test_write_report_draws_a_png_per_task_and_a_summary(results_file, tmp_path):
    out = tmp_path / "report"
    report = write_report(results_file, out)
    assert [p.name for p in report.pngs] == ["task_0.png", "task_1.png"]
    for png in report.pngs:
        data = png.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        assert len(data) > 20000  # axes, points, labels and a legend, not an empty canvas
    text = (out / "summary.txt").read_text()
    assert text == report.summary
    lines = text.splitlines()
    assert lines[0] == "task 0: 6 candidates, 4 ok, energy measured"
    chosen = [ln for ln in lines if ln.startswith(" *")]
    assert len(chosen) == 2 and all(ln.split()[1:3] == ["880", "253"] for ln in chosen)
    assert any("blacklisted" in ln and "over the memory budget of 64.00 MB" in ln for ln in lines)
    assert any("degenerate" in ln and "loss was NaN" in ln for ln in lines)
    assert sum(ln.endswith(" cut") for ln in lines) == 4 and sum(ln.endswith(" kept") for ln in lines) == 4
    assert "choice (cost_effective, cutline accuracy 0.7800): EM 880 / SB 253. EM 880 / SB 253 (48.0 MB) has" in text
    assert "swap ratio 0.200 -> 0.100: congested for 3 windows" in text
    assert "5.2000" in text  # accuracy per kJ of (880, 253): 0.78 / 150 J * 1000


def test_summary_without_controller_events(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps({"kind": "epoch", "time": 0.0, "loss": 1.0}) + "\n")  # not a kind of this version
    assert "no controller events" in summary_table(load_results(path))
    assert write_report(path, tmp_path / "o").pngs == ()


def test_missing_fields_and_files_are_input_errors(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps({"kind": "choice", "task_id": 0, "em_size": 1}) + "\n")
    with pytest.raises(InputError, match="choice event is missing field"):
        load_results(path)
    with pytest.raises(InputError, match="does not exist"):
        load_results(tmp_path / "absent.jsonl")


def test_cli_report(results_file, tmp_path):
    out = tmp_path / "cli"
    result = CliRunner().invoke(command, ["--results", str(results_file), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "task 1: 6 candidates, 4 ok" in result.output
    assert "wrote {}".format(out / "task_0.png") in result.output
    assert (out / "task_1.png").stat().st_size > 20000
    bad = CliRunner().invoke(command, ["--results", str(tmp_path / "nope.jsonl"), "--out", str(out)])
    assert bad.exit_code == 1 and "does not exist" in bad.output


def test_controller_imports_without_matplotlib_loaded():
    code = ("import sys, miro_edge.controller, miro_edge.cli.commands.report; "
            "assert 'matplotlib' not in sys.modules, 'matplotlib imported eagerly'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_matplotlib_names_the_extra(results_file, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    result = CliRunner().invoke(command, ["--results", str(results_file), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert "miro-edge[report]" in result.output
