"""Miro's four observations, computed from a sweep's runs (no plotting here).

1. Energy grows with the memory buffers: a least-squares line of training energy against the
   samples held in RAM for training (EM + SB, averaged over the tasks) and its R².
2. The best EM/SB split differs across budgets: per budget, the EM share with the highest mean
   final accuracy (and the one with the most accuracy per joule).
3. A larger budget does not guarantee better accuracy: accuracy against budget per share; a
   *drop* is a larger budget whose accuracy is lower than a smaller one's by more than the noise.
4. Swapping costs little energy and has a low knee: energy and accuracy against swap ratio; the
   knee is the ratio after which accuracy stops rising (the point farthest above the chord).

Noise: with two or more seeds, the standard error of a mean is the seeds' std / sqrt(n); with
one seed it is unknown, and differences are reported without a noise test (said so).
"""
import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np


@dataclass(frozen=True)
class Stat:
    mean: float
    se: Optional[float]   # standard error over seeds; None with one seed
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> "Stat":
        arr = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=np.float64)
        if len(arr) == 0:
            return cls(float("nan"), None, 0)
        se = float(arr.std(ddof=1) / math.sqrt(len(arr))) if len(arr) >= 2 else None
        return cls(float(arr.mean()), se, len(arr))


@dataclass(frozen=True)
class LinearFit:
    slope: float
    intercept: float
    r2: float
    n: int


@dataclass(frozen=True)
class GridCell:
    budget_samples: int
    em_share: float
    em_size: int
    sb_size: int
    accuracy: Stat
    energy_j: Stat
    in_ram: Stat


@dataclass(frozen=True)
class SwapCell:
    swap_ratio: float
    accuracy: Stat
    energy_j: Stat
    swaps: Stat


@dataclass
class Observations:
    workload: str
    dataset: str
    energy_label: str
    energy_source: str
    overhead_bytes: int
    bytes_per_sample: int
    seeds: int
    energy_points: List[Tuple[float, float]] = field(default_factory=list)   # (in RAM, J) per run
    energy_fit: Optional[LinearFit] = None
    grid: List[GridCell] = field(default_factory=list)
    best_by_accuracy: Dict[int, float] = field(default_factory=dict)          # budget -> share
    best_by_acc_per_j: Dict[int, float] = field(default_factory=dict)
    accuracy_drops: List[Dict[str, Any]] = field(default_factory=list)
    swap: List[SwapCell] = field(default_factory=list)
    knee_ratio: Optional[float] = None
    swap_energy_change: Optional[float] = None                                # J at max ratio / J at min - 1
    swap_accuracy_gain: Optional[float] = None
    missing: int = 0
    failed: int = 0
    verdicts: Dict[str, str] = field(default_factory=dict)

    def budget_mb(self, budget_samples: int) -> float:
        return (self.overhead_bytes + budget_samples * self.bytes_per_sample) / 2.0 ** 20


def linear_fit(xs: Sequence[float], ys: Sequence[float]) -> Optional[LinearFit]:
    x, y = np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)
    if len(x) < 3 or np.ptp(x) == 0:
        return None
    slope, intercept = np.polyfit(x, y, 1)
    resid = y - (slope * x + intercept)
    total = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - float(np.sum(resid ** 2)) / total if total > 0 else 1.0
    return LinearFit(float(slope), float(intercept), r2, len(x))


def knee(xs: Sequence[float], ys: Sequence[float]) -> Optional[float]:
    """The x after which a rising curve flattens: max height above the chord of the normalised
    curve (the Kneedle idea). None when the curve does not rise overall."""
    x, y = np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)
    if len(x) < 3 or y[-1] <= y[0] or np.ptp(x) == 0:
        return None
    xn = (x - x[0]) / (x[-1] - x[0])
    yn = (y - y[0]) / (y[-1] - y[0])
    return float(x[int(np.argmax(yn - xn))])


def _differs(a: Stat, b: Stat, z: float = 2.0) -> Optional[bool]:
    """True/False when the seeds give a standard error, None when they cannot tell."""
    if a.se is None or b.se is None:
        return None
    return abs(a.mean - b.mean) > z * math.sqrt(a.se ** 2 + b.se ** 2)


def analyse(plan: Dict[str, Any], runs: Dict[str, Dict[str, Any]]) -> Observations:
    ok = {k: r for k, r in runs.items() if r.get("status") == "ok"}
    cells = plan["cells"]
    labels = sorted({str(r.get("energy_label")) for r in ok.values()})
    sources = sorted({str(r.get("energy_source")) for r in ok.values()})
    session = plan["session"]
    name = str(session["data"]["dataset"])
    path = (session.get("data_options") or {}).get("path")
    if path:
        name = "{} ({})".format(name, str(path).rstrip("/").split("/")[-1])
    obs = Observations(plan["workload"], name, "/".join(labels) or "none",
                       "/".join(sources) or "none", int(plan["overhead_bytes"]), int(plan["bytes_per_sample"]),
                       len(plan["sweep"]["seeds"]))
    obs.missing = len({c["key"] for c in cells if c["key"] not in runs})
    obs.failed = len({c["key"] for c in cells if c["key"] in runs and c["key"] not in ok})
    grid = [c for c in cells if c["series"] == "grid" and c["key"] in ok]
    for c in grid:
        r = ok[c["key"]]
        obs.energy_points.append((float(r["mean_training_samples_in_ram"]), float(r["energy_j"])))
    obs.energy_fit = linear_fit([p[0] for p in obs.energy_points], [p[1] for p in obs.energy_points])
    by_cell: Dict[Tuple[int, float], List[Dict[str, Any]]] = {}
    for c in grid:
        by_cell.setdefault((int(c["budget_samples"]), float(c["em_share"])), []).append(dict(ok[c["key"]], cell=c))
    for (budget, share), rs in sorted(by_cell.items()):
        p = rs[0]["params"]
        obs.grid.append(GridCell(budget, share, int(p["em_size"]), int(p["sb_size"]),
                                 Stat.of([r["final_average_accuracy"] for r in rs]), Stat.of([r["energy_j"] for r in rs]),
                                 Stat.of([r["mean_training_samples_in_ram"] for r in rs])))
    budgets = sorted({g.budget_samples for g in obs.grid})
    for b in budgets:
        row = [g for g in obs.grid if g.budget_samples == b]
        obs.best_by_accuracy[b] = max(row, key=lambda g: g.accuracy.mean).em_share
        obs.best_by_acc_per_j[b] = max(row, key=lambda g: g.accuracy.mean / max(g.energy_j.mean, 1e-12)).em_share
    shares = sorted({g.em_share for g in obs.grid})
    per_share: List[Optional[float]] = [*shares, None]  # None: the best share at each budget
    for curve_share in per_share:
        curve = []
        for b in budgets:
            row = [g for g in obs.grid if g.budget_samples == b and (curve_share is None or g.em_share == curve_share)]
            if row:
                curve.append((b, max(row, key=lambda g: g.accuracy.mean)))
        for i, (b_small, small) in enumerate(curve):
            for b_large, large in curve[i + 1:]:
                if large.accuracy.mean < small.accuracy.mean:
                    obs.accuracy_drops.append({
                        "em_share": curve_share, "from_budget": b_small, "to_budget": b_large,
                        "from_acc": small.accuracy.mean, "to_acc": large.accuracy.mean,
                        "beyond_noise": _differs(small.accuracy, large.accuracy)})
    swap = [c for c in cells if c["series"] == "swap" and c["key"] in ok]
    by_ratio: Dict[float, List[Dict[str, Any]]] = {}
    for c in swap:
        by_ratio.setdefault(float(c["swap_ratio"]), []).append(ok[c["key"]])
    for ratio, rs in sorted(by_ratio.items()):
        obs.swap.append(SwapCell(ratio, Stat.of([r["final_average_accuracy"] for r in rs]),
                                 Stat.of([r["energy_j"] for r in rs]), Stat.of([r["swaps_done"] for r in rs])))
    if len(obs.swap) >= 2:
        lo, hi = obs.swap[0], obs.swap[-1]
        obs.swap_energy_change = hi.energy_j.mean / lo.energy_j.mean - 1.0 if lo.energy_j.mean > 0 else None
        obs.swap_accuracy_gain = hi.accuracy.mean - lo.accuracy.mean
        obs.knee_ratio = knee([s.swap_ratio for s in obs.swap], [s.accuracy.mean for s in obs.swap])
    obs.verdicts = verdicts(obs)
    return obs


def verdicts(obs: Observations) -> Dict[str, str]:
    """One sentence per observation: does this sweep show it? Rules written out, not tuned."""
    out = {}
    fit = obs.energy_fit
    if fit is None:
        out["energy_vs_memory"] = "not enough grid points to fit"
    else:
        shown = fit.slope > 0 and fit.r2 >= 0.9
        out["energy_vs_memory"] = "{}: energy = {:.3g} J/sample x in-RAM samples + {:.3g} J, R² {:.3f} over {} runs".format(
            "shown" if shown else "not shown", fit.slope, fit.intercept, fit.r2, fit.n)
    best = obs.best_by_accuracy
    if len(best) >= 2:
        distinct = sorted(set(best.values()))
        clear: Dict[int, float] = {}
        tests = []
        for b, share in best.items():
            row = sorted((g for g in obs.grid if g.budget_samples == b), key=lambda g: -g.accuracy.mean)
            test = _differs(row[0].accuracy, row[1].accuracy) if len(row) >= 2 else None
            tests.append(test)
            if test:
                clear[b] = share
        listed = ", ".join(f"{b}: {s:g}" for b, s in sorted(best.items()))
        if any(t is None for t in tests):
            verdict = "{} without a noise test (one seed)".format("shown" if len(distinct) > 1 else "not shown")
        elif len(set(clear.values())) > 1:
            verdict = "shown"
        else:
            verdict = "not shown beyond noise" if len(distinct) > 1 else "not shown"
        per_joule = ", ".join(f"{b}: {s:g}" for b, s in sorted(obs.best_by_acc_per_j.items()))
        out["best_split_per_budget"] = "{}: best EM share by accuracy per budget {}; clear (beats the runner-up by " \
            "> 2 standard errors) at {}; by accuracy per joule (no noise test) {}".format(
                verdict, listed, ", ".join(str(b) for b in sorted(clear)) or "none", per_joule)
    else:
        out["best_split_per_budget"] = "needs two or more budgets"
    drops = obs.accuracy_drops
    real = [d for d in drops if d["beyond_noise"] is True]
    unknown = [d for d in drops if d["beyond_noise"] is None]
    if real:
        out["larger_budget_not_better"] = f"shown: {len(real)} budget increase(s) lose accuracy beyond 2 standard errors"
    elif unknown:
        worst = max(unknown, key=lambda d: d["from_acc"] - d["to_acc"])
        out["larger_budget_not_better"] = ("shown without a noise test (one seed): {} larger-budget drop(s), largest "
                                           "{:.3f} ({} -> {} samples)".format(len(unknown), worst["from_acc"] - worst["to_acc"],
                                                                             worst["from_budget"], worst["to_budget"]))
    elif drops:
        out["larger_budget_not_better"] = f"not shown: {len(drops)} drop(s), all within 2 standard errors"
    else:
        out["larger_budget_not_better"] = "not shown: accuracy never fell as the budget grew"
    if obs.swap_energy_change is None:
        out["swap_cheap_low_knee"] = "needs two or more swap ratios"
    else:
        cheap = obs.swap_energy_change <= 0.05  # "costs little": at most 5 % more (less is cheaper still)
        gain = _differs(obs.swap[-1].accuracy, obs.swap[0].accuracy)
        knee_note = ""
        low = obs.knee_ratio is not None and obs.knee_ratio <= 0.3
        if low:
            # a real low knee: measurably better than no swapping, with most (3/4) of the best gain
            at = next(c for c in obs.swap if c.swap_ratio == obs.knee_ratio)
            base = obs.swap[0].accuracy.mean
            best_gain = max(c.accuracy.mean for c in obs.swap) - base
            share = (at.accuracy.mean - base) / best_gain if best_gain > 0 else 0.0
            above_zero = _differs(at.accuracy, obs.swap[0].accuracy)
            low = above_zero is not False and share >= 0.75
            if above_zero is None:
                knee_note = " (one seed: no noise test)"
            elif not above_zero:
                knee_note = " (not resolved: accuracy there is within 2 standard errors of no swapping)"
            elif share < 0.75:
                knee_note = f" (not a knee: only {share:.0%} of the best gain by then)"
        out["swap_cheap_low_knee"] = "{}: energy {:+.1%} from swap ratio {:g} to {:g}; accuracy {:+.3f}{}; knee {}{}".format(
            "shown" if cheap and low else "partly shown" if cheap or low else "not shown", obs.swap_energy_change,
            obs.swap[0].swap_ratio, obs.swap[-1].swap_ratio, obs.swap_accuracy_gain or 0.0,
            "" if gain is None else " (beyond 2 standard errors)" if gain else " (within 2 standard errors)",
            f"at {obs.knee_ratio:g}" if obs.knee_ratio is not None else "none (accuracy does not rise)",
            knee_note)
    return out
