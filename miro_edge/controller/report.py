"""Controller events in the results file, and the report drawn from them.

The profiler records one ``trial`` event per grid point (blacklisted ones included), one
``choice`` event per decision and one ``swap_ratio`` event per ratio change. Their dataclasses
are declared with every other kind in ``miro_edge.events``; the functions below build them from
the controller's own types::

    recorder.write(trial_event(task_id, trial))

``write_report`` reads a results JSONL, draws one PNG per task (accuracy against energy of
every candidate, the cutline, the chosen point) and returns a plain-text summary table.
matplotlib is imported only when plotting (extra ``report``).
"""
import io
import logging
import math
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from miro_edge.controller.adapt import RatioChange
from miro_edge.controller.forgetting import CandidateRule
from miro_edge.controller.grid import Grid
from miro_edge.controller.scorer import Choice, Trial, TrialStatus
from miro_edge.errors import InputError
from miro_edge.events import ChoiceEvent, EmRuleEvent, GridEvent, SwapRatioEvent, TrialEvent
from miro_edge.recorder import read_typed
from miro_edge.utils.atomic import atomic_write, atomic_write_bytes
from miro_edge.utils.optional import require

logger = logging.getLogger(__name__)
_MB = 1024.0 * 1024.0


def trial_event(task_id: int, trial: Trial) -> TrialEvent:
    """The ``trial`` event of one profiled (or blacklisted, skipped) candidate."""
    c = trial.candidate
    return TrialEvent(task_id, c.em_size, c.sb_size, c.memory_bytes, trial.accuracy, trial.energy_j,
                      trial.energy_label, trial.seconds, trial.status, trial.reason)


def choice_event(task_id: int, choice: Choice) -> ChoiceEvent:
    """The ``choice`` event of a scorer's decision."""
    return ChoiceEvent(task_id, choice.candidate.em_size, choice.candidate.sb_size, choice.scorer,
                       choice.reason, choice.cutline_accuracy)


def grid_event(task_id: int, grid: Grid, data_ratio: float, fixed_passes: float) -> GridEvent:
    """The ``grid`` event of a task's candidate grid, with the trials' data ratio."""
    return GridEvent(task_id=task_id, data_ratio=data_ratio, fixed_passes=fixed_passes,
                     em_sizes=list(grid.em_sizes), sb_sizes=list(grid.sb_sizes), candidates=len(grid.candidates),
                     blacklisted=len(grid.blacklisted), memory_budget_bytes=grid.memory_budget_bytes)


def em_rule_event(rule: CandidateRule) -> EmRuleEvent:
    """The ``em_rule`` event of the forgetting rule's decision (candidates as ``"EM/SB"``)."""
    return EmRuleEvent(task_id=rule.task_id, tau=rule.tau, evidence=rule.evidence,
                       predicted={"{}/{}".format(*k): v for k, v in sorted(rule.predicted.items())},
                       allowed=["{}/{}".format(*k) for k in rule.allowed], keep_floor=rule.keep_floor,
                       reason=rule.reason)


def swap_ratio_event(task_id: int, change: RatioChange) -> SwapRatioEvent:
    """The ``swap_ratio`` event of one change by the congestion rule."""
    return SwapRatioEvent(task_id, change.old, change.new, change.reason)


@dataclass(frozen=True)
class TaskRecord:
    """Every controller event of one task, in file order."""

    task_id: Any
    trials: Tuple[TrialEvent, ...]
    choices: Tuple[ChoiceEvent, ...]
    swap_changes: Tuple[SwapRatioEvent, ...]

    def chosen_trials(self) -> List[Tuple[ChoiceEvent, Optional[TrialEvent]]]:
        """Each choice with the ok trial of the same (em_size, sb_size), if it was profiled."""
        by_key = {(t.em_size, t.sb_size): t for t in self.trials if t.status == TrialStatus.OK}
        return [(c, by_key.get((c.em_size, c.sb_size))) for c in self.choices]

    def energy_labels(self) -> List[str]:
        """``measured`` / ``estimated``: what the ok trials' joules are."""
        return sorted({t.energy_label for t in self.trials if t.status == TrialStatus.OK})


def load_results(path: Union[str, Path]) -> List[TaskRecord]:
    """Group the controller events of a results file by task (ordered by task id).

    Other event kinds are ignored; an event of a controller kind with missing fields raises
    InputError naming the field.
    """
    if not Path(path).is_file():
        raise InputError(f"results file {path} does not exist; pass the results.jsonl of a run")
    tasks: Dict[Any, Dict[str, List[Any]]] = OrderedDict()
    for record in read_typed(path, TrialEvent, ChoiceEvent, SwapRatioEvent):
        assert isinstance(record, (TrialEvent, ChoiceEvent, SwapRatioEvent))
        bucket = tasks.setdefault(record.task_id, {TrialEvent.KIND: [], ChoiceEvent.KIND: [], SwapRatioEvent.KIND: []})
        bucket[record.KIND].append(record)
    out = [TaskRecord(tid, tuple(b[TrialEvent.KIND]), tuple(b[ChoiceEvent.KIND]), tuple(b[SwapRatioEvent.KIND]))
           for tid, b in tasks.items()]
    return sorted(out, key=lambda r: (str(type(r.task_id)), r.task_id))


def _fmt(value: Optional[float], spec: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return format(value, spec)


def summary_table(tasks: List[TaskRecord]) -> str:
    """A fixed-width text table per task: every candidate, its status and the choice."""
    lines: List[str] = []
    header = "{:>2} {:>8} {:>8} {:>9} {:>8} {:>10} {:>11} {:>9} {:<12} {}".format(
        "", "em_size", "sb_size", "mem_MB", "accuracy", "energy_J", "acc_per_kJ", "seconds", "status", "note")
    for task in tasks:
        chosen = {(c.em_size, c.sb_size) for c in task.choices}
        cut = task.choices[-1].cutline_accuracy if task.choices else None
        sources = task.energy_labels()
        lines.append("task {}: {} candidates, {} ok, energy {}".format(
            task.task_id, len(task.trials), sum(1 for t in task.trials if t.status == TrialStatus.OK),
            "/".join(sources) if sources else "n/a"))
        lines.append(header)
        for t in task.trials:
            mark = "*" if (t.em_size, t.sb_size) in chosen and t.status == TrialStatus.OK else ""
            kept = (t.status == TrialStatus.OK and cut is not None and t.accuracy is not None
                    and t.accuracy >= cut)
            note = t.reason if t.status != TrialStatus.OK else ("kept" if kept else "cut" if cut is not None else "")
            apj = t.accuracy_per_j
            lines.append("{:>2} {:>8} {:>8} {:>9} {:>8} {:>10} {:>11} {:>9} {:<12} {}".format(
                mark, t.em_size, t.sb_size, _fmt(t.memory_bytes / _MB, ".2f"), _fmt(t.accuracy, ".4f"),
                _fmt(t.energy_j, ".1f"), _fmt(apj * 1000.0 if apj is not None else None, ".4f"),
                _fmt(t.seconds, ".1f"), t.status, note).rstrip())
        if not task.choices:
            lines.append("   no choice recorded")
        for c in task.choices:
            lines.append("   choice ({}, cutline accuracy {}): EM {} / SB {}. {}".format(
                c.scorer, _fmt(c.cutline_accuracy, ".4f"), c.em_size, c.sb_size, c.reason))
        for s in task.swap_changes:
            lines.append(f"   swap ratio {s.old:.3f} -> {s.new:.3f}: {s.reason}")
        lines.append("")
    if not tasks:
        lines.append("no controller events (trial/choice/swap_ratio) in this results file")
    return "\n".join(lines).rstrip() + "\n"


def _energy_axis_label(sources: List[str]) -> str:
    if not sources:
        return "training energy per trial (J)"
    if len(sources) == 1:
        return f"training energy per trial (J, {sources[0]})"
    return "training energy per trial (J, mixed: {})".format(" + ".join(sources))


def _energy_accuracy(trials: Sequence[TrialEvent]) -> Tuple[List[float], List[float]]:
    """(joules, accuracies) of the trials that have both, for one scatter call."""
    pairs = [(t.energy_j, t.accuracy) for t in trials if t.energy_j is not None and t.accuracy is not None]
    return [e for e, _ in pairs], [a for _, a in pairs]


def plot_task(task: TaskRecord, out_path: Union[str, Path]) -> Path:
    """Draw accuracy against energy for one task's candidates and write a PNG atomically."""
    require("matplotlib", "report", "plotting controller reports")
    # the Agg canvas directly, no pyplot: no GUI backend, no global figure state
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 5.0), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ok = [t for t in task.trials if t.status == TrialStatus.OK]
    for source, marker in (("measured", "o"), ("estimated", "s")):
        pts = [t for t in ok if t.energy_label == source]
        if pts:
            ax.scatter(*_energy_accuracy(pts), marker=marker, s=36,
                       color="tab:blue", alpha=0.85, label=f"candidate ({source})", zorder=2)
    for t in ok:
        ax.annotate(f"{t.em_size}/{t.sb_size}", (t.energy_j, t.accuracy), fontsize=7,
                    xytext=(4, 3), textcoords="offset points", color="0.3")
    degenerate = [t for t in task.trials if t.status == TrialStatus.DEGENERATE
                  and t.accuracy is not None and t.energy_j is not None]
    if degenerate:
        ax.scatter(*_energy_accuracy(degenerate), marker="x",
                   color="tab:gray", label="degenerate (not scored)", zorder=2)
    cut = task.choices[-1].cutline_accuracy if task.choices else None
    if cut is not None:
        ax.axhline(cut, color="tab:orange", linestyle="--", linewidth=1.2,
                   label=f"cutline (accuracy {cut:.3f})", zorder=1)
    for i, (choice, trial) in enumerate(task.chosen_trials()):
        if trial is None:
            continue
        ax.scatter(*_energy_accuracy([trial]), marker="*", s=260, color="tab:red",
                   edgecolors="black", linewidths=0.6, zorder=3,
                   label=f"chosen ({choice.scorer})" if i == 0 else f"re-chosen ({choice.scorer})")
    unplotted = [t for t in task.trials if t.status != TrialStatus.OK and t not in degenerate]
    if unplotted:
        text = "not trained / not scored:\n" + "\n".join(
            "EM {} / SB {}: {}{}".format(t.em_size, t.sb_size, t.status, f" ({t.reason})" if t.reason else "")
            for t in unplotted[:8])
        if len(unplotted) > 8:
            text += f"\n... and {len(unplotted) - 8} more"
        ax.text(0.99, 0.01, text, transform=ax.transAxes, fontsize=6.5, ha="right", va="bottom",
                bbox={"boxstyle": "round", "facecolor": "0.95", "edgecolor": "0.7"}, zorder=4)
    ax.set_xlabel(_energy_axis_label(task.energy_labels()))
    ax.set_ylabel("validation accuracy (held-out store slice)")
    ax.set_title(f"task {task.task_id}: {len(task.trials)} candidates ({len(ok)} trained); points labelled EM/SB")
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return atomic_write_bytes(out_path, buf.getvalue(), perms=0o644)


@dataclass(frozen=True)
class Report:
    """What ``write_report`` produced."""

    tasks: Tuple[TaskRecord, ...]
    pngs: Tuple[Path, ...]
    summary_path: Path
    summary: str


def _safe_name(task_id: Any) -> str:
    text = str(task_id)
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in text) or "task"


def write_report(results_path: Union[str, Path], out_dir: Union[str, Path]) -> Report:
    """Read ``results_path``; write ``task_<id>.png`` per task and ``summary.txt`` into ``out_dir``."""
    tasks = load_results(results_path)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pngs: List[Path] = []
    for task in tasks:
        if not task.trials:
            logger.info("task %s has no trial events; no plot", task.task_id)
            continue
        pngs.append(plot_task(task, out / f"task_{_safe_name(task.task_id)}.png"))
    summary = summary_table(tasks)
    summary_path = atomic_write(out / "summary.txt", lambda f: f.write(summary), "w", perms=0o644)
    return Report(tuple(tasks), tuple(pngs), summary_path, summary)
