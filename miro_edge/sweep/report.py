"""The sweep report: one PNG with the four observations (legends below the axes, never over
the data), an HTML page with the figure, the tables behind it and the verdicts, and
``observations.json`` for other tools. matplotlib loads only here (extra ``report``)."""
import html
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import List

import numpy as np

from miro_edge.sweep.analysis import Observations, Stat, analyse
from miro_edge.sweep.run import load_sweep
from miro_edge.utils.atomic import atomic_write_bytes
from miro_edge.utils.optional import require

TITLES = {
    "energy_vs_memory": "1. Energy grows with EM + SB",
    "best_split_per_budget": "2. The best EM/SB split differs across budgets",
    "larger_budget_not_better": "3. A larger budget does not guarantee accuracy",
    "swap_cheap_low_knee": "4. Swapping is cheap and has a low knee",
}


@dataclass(frozen=True)
class SweepReport:
    png: Path
    html: Path
    json: Path
    observations: Observations


def _err(stat: Stat) -> float:
    return stat.se if stat.se is not None else 0.0


def plot(obs: Observations) -> bytes:
    require("matplotlib", "report", "plotting sweep reports")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 8.6), dpi=90)
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 2)
    unit = f"J ({obs.energy_label})"
    # 1. energy vs in-RAM samples
    ax = axes[0][0]
    if obs.energy_points:
        xs, ys = np.array(obs.energy_points).T
        ax.scatter(xs, ys, s=18, color="tab:blue", label="run")
        if obs.energy_fit is not None:
            line = np.linspace(xs.min(), xs.max(), 20)
            ax.plot(line, obs.energy_fit.slope * line + obs.energy_fit.intercept, color="tab:red",
                    label=f"fit: {obs.energy_fit.slope:.3g} J/sample, R² {obs.energy_fit.r2:.3f}")
    ax.set_xlabel("EM + SB samples in RAM while training (mean over tasks)")
    ax.set_ylabel("training energy, " + unit)
    ax.set_title(TITLES["energy_vs_memory"], fontsize=10)
    # 2. accuracy per split, grouped by budget
    ax = axes[0][1]
    budgets = sorted({g.budget_samples for g in obs.grid})
    shares = sorted({g.em_share for g in obs.grid})
    width = 0.8 / max(1, len(shares))
    for j, share in enumerate(shares):
        vals = [next((g for g in obs.grid if g.budget_samples == b and g.em_share == share), None) for b in budgets]
        pos = np.arange(len(budgets)) + (j - (len(shares) - 1) / 2.0) * width
        ax.bar(pos, [v.accuracy.mean if v else 0 for v in vals], width, yerr=[_err(v.accuracy) if v else 0 for v in vals],
               label=f"EM share {share:g}", capsize=2)
    for i, b in enumerate(budgets):
        best = obs.best_by_accuracy.get(b)
        if best is not None:
            j = shares.index(best)
            top = next(g for g in obs.grid if g.budget_samples == b and g.em_share == best).accuracy.mean
            ax.annotate("best", (i + (j - (len(shares) - 1) / 2.0) * width, top), ha="center", va="bottom", fontsize=7)
    ax.set_xticks(np.arange(len(budgets)))
    ax.set_xticklabels([f"{b}\n({obs.budget_mb(b):.2f} MB)" for b in budgets], fontsize=8)
    lows = [g.accuracy.mean for g in obs.grid]
    if lows:
        ax.set_ylim(max(0.0, min(lows) - 0.1), min(1.05, max(lows) + 0.06))
    ax.set_xlabel("memory budget, samples beyond the overhead (MB in all)")
    ax.set_ylabel("final average accuracy")
    ax.set_title(TITLES["best_split_per_budget"], fontsize=10)
    # 3. accuracy vs budget per share
    ax = axes[1][0]
    for share in shares:
        row = sorted((g for g in obs.grid if g.em_share == share), key=lambda g: g.budget_samples)
        ax.errorbar([g.budget_samples for g in row], [g.accuracy.mean for g in row], yerr=[_err(g.accuracy) for g in row],
                    marker="o", capsize=2, label=f"EM share {share:g}")
    best_curve = [max((g for g in obs.grid if g.budget_samples == b), key=lambda g: g.accuracy.mean) for b in budgets]
    if best_curve:
        ax.plot(budgets, [g.accuracy.mean for g in best_curve], "k--", linewidth=1, label="best split")
    ax.set_xscale("log")
    ax.set_xticks(budgets)
    ax.set_xticks([], minor=True)
    ax.set_xticklabels([str(b) for b in budgets])
    ax.set_xlabel("memory budget (samples beyond the overhead, log scale)")
    ax.set_ylabel("final average accuracy")
    ax.set_title(TITLES["larger_budget_not_better"], fontsize=10)
    # 4. swap ratio: accuracy (left) and energy (right)
    ax = axes[1][1]
    if obs.swap:
        ratios = [s.swap_ratio for s in obs.swap]
        ax.errorbar(ratios, [s.accuracy.mean for s in obs.swap], yerr=[_err(s.accuracy) for s in obs.swap],
                    marker="o", color="tab:green", capsize=2, label="accuracy")
        twin = ax.twinx()
        twin.errorbar(ratios, [s.energy_j.mean for s in obs.swap], yerr=[_err(s.energy_j) for s in obs.swap],
                      marker="s", color="tab:orange", capsize=2, label="energy")
        energies = [s.energy_j.mean for s in obs.swap]
        twin.set_ylim(0, max(energies) * 1.25)
        twin.set_ylabel("training energy, " + unit)
        if obs.knee_ratio is not None:
            ax.axvline(obs.knee_ratio, color="grey", linestyle=":", label=f"knee ({obs.knee_ratio:g})")
        handles, labels = ax.get_legend_handles_labels()
        h2, l2 = twin.get_legend_handles_labels()
        ax.legend(handles + h2, labels + l2, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3, fontsize=8,
                  frameon=False)
    ax.set_xlabel("swap ratio")
    ax.set_ylabel("final average accuracy")
    ax.set_title(TITLES["swap_cheap_low_knee"], fontsize=10)
    for ax in (axes[0][0], axes[0][1], axes[1][0]):
        handles = ax.get_legend_handles_labels()[0]
        if handles:
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2 if ax is axes[0][1] else -0.16),
                      ncol=min(4, len(handles)), fontsize=8, frameon=False)
    fig.suptitle(f"{obs.dataset} sweep ({obs.seeds} seed(s); energy {obs.energy_label} from {obs.energy_source})", fontsize=11)
    fig.subplots_adjust(left=0.08, right=0.92, top=0.92, bottom=0.11, hspace=0.62, wspace=0.32)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _fmt(stat: Stat, digits: int = 3) -> str:
    text = "{:.{d}f}".format(stat.mean, d=digits)
    return text + (" ± {:.{d}f}".format(stat.se, d=digits) if stat.se is not None else "")


def render_html(obs: Observations, png_name: str) -> str:
    e = html.escape
    rows: List[str] = []
    rows.append(f"<h1>Sweep: {e(obs.dataset)} (workload {e(obs.workload)})</h1>")
    rows.append(f"<p>Energy is <b>{e(obs.energy_label)}</b> (source {e(obs.energy_source)}). Budgets count EM+SB sample slots beyond the measured "
                f"training overhead of {obs.overhead_bytes / 2.0 ** 20:.3f} MB; one slot is {obs.bytes_per_sample} B. {obs.seeds} seed(s) per point; ± is one standard error "
                f"over seeds. Missing points: {obs.missing}, failed: {obs.failed}.</p>")
    rows.append(f'<img src="{e(png_name)}" alt="the four observations" style="max-width:100%">')
    rows.append("<h2>Verdicts</h2><ul>")
    for key, title in TITLES.items():
        rows.append("<li><b>{}</b>: {}</li>".format(e(title), e(obs.verdicts.get(key, "no data"))))
    rows.append("</ul><h2>Budget x split</h2><table border=1 cellpadding=3><tr><th>budget (samples)</th><th>MB</th>"
                "<th>EM share</th><th>EM</th><th>SB</th><th>in RAM (mean)</th><th>final acc</th><th>energy J</th>"
                "<th>acc per kJ</th></tr>")
    for g in obs.grid:
        best = " (best)" if obs.best_by_accuracy.get(g.budget_samples) == g.em_share else ""
        rows.append(f"<tr><td>{g.budget_samples}</td><td>{obs.budget_mb(g.budget_samples):.3f}</td><td>{g.em_share:g}{best}</td><td>{g.em_size}</td><td>{g.sb_size}</td><td>{g.in_ram.mean:.0f}</td><td>{_fmt(g.accuracy)}</td>"
                    f"<td>{_fmt(g.energy_j, 1)}</td><td>{1000 * g.accuracy.mean / max(g.energy_j.mean, 1e-12):.3f}</td></tr>")
    rows.append("</table><h2>Swap ratio</h2><table border=1 cellpadding=3><tr><th>swap ratio</th><th>final acc</th>"
                "<th>energy J</th><th>swaps</th></tr>")
    for s in obs.swap:
        rows.append("<tr><td>{:g}{}</td><td>{}</td><td>{}</td><td>{:.0f}</td></tr>".format(
            s.swap_ratio, " (knee)" if obs.knee_ratio == s.swap_ratio else "", _fmt(s.accuracy),
            _fmt(s.energy_j, 1), s.swaps.mean))
    rows.append("</table>")
    return "<!doctype html><html><head><meta charset='utf-8'><title>sweep {}</title></head><body>{}</body></html>\n".format(
        e(obs.dataset), "\n".join(rows))


def write_report(sweep_dir: str, out_dir: str = "") -> SweepReport:
    """Analyse ``sweep_dir`` and write ``sweep.png``, ``sweep.html`` and ``observations.json`` (atomically)."""
    plan, runs = load_sweep(sweep_dir)
    obs = analyse(plan, runs)
    out = Path(out_dir or sweep_dir)
    out.mkdir(parents=True, exist_ok=True)
    png = atomic_write_bytes(out / "sweep.png", plot(obs), perms=0o644)
    page = atomic_write_bytes(out / "sweep.html", render_html(obs, png.name).encode("utf-8"), perms=0o644)
    data = atomic_write_bytes(out / "observations.json",
                              (json.dumps(asdict(obs), indent=1, sort_keys=True, default=str) + "\n").encode("utf-8"),
                              perms=0o644)
    return SweepReport(png, page, data, obs)
