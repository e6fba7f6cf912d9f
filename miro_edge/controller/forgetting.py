"""Evidence about forgetting, carried across tasks, and the candidate rule it drives.

Short trials rank candidates by how fast a warm-started copy recovers, not by how much a small
EM forgets (or a small SB fails to learn) over a whole task, so on workloads where memory
matters they pick configurations that are too small. What the live run shows at the end of
every task is better evidence: the validation accuracy of the old classes (replayed from ``s``
EM samples per class) against the new ones (learned from ``b`` SB samples per class). The model

    accuracy of a class trained from n samples per class ~ 1 - exp(-n / tau)

has one parameter, the *saturation scale* ``tau`` in samples per class: small when a few
samples per class are enough (workloads that saturate), large when accuracy keeps growing with
memory. One task's ``old / new`` accuracy ratio gives one estimate of ``tau`` (solved from
``(1 - exp(-s/tau)) / (1 - exp(-b/tau))``; when ``s >= b`` from ``1 - exp(-s/tau)`` alone); the
model uses their geometric mean. Before any evidence it uses an optimistic prior (3 samples per
class: a cheap first choice). A prior of 10 made every saturating workload pay for memory it did
not need (full runs in BENCHMARKS.md: BasicMotions took EM 56 where 20 was as accurate), and the
first task's evidence corrects an optimistic one at once (a grown EM refills from the store, so
old classes are relearned). Ratios are clipped at 0.98: saturated evidence bounds ``tau`` from
above only.

The rule, per task: predict every fitting candidate's accuracy over all classes; allow those
within ``max(tolerance, cut_fraction x (best - worst predicted))`` of the best (Miro's top-half
cut, applied to predictions that see forgetting); never shrink the EM below what it holds
(evicting what replay just paid for) unless the budget forces it. The profiler trains and
scores only the allowed candidates (the others are recorded as skipped, never trained).
"""
import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from miro_edge.config import field, require


@dataclass(frozen=True)
class ForgettingConfig:
    enabled: bool = field(True, help="require EM sizes the cross-task forgetting evidence predicts to be within "
                                     "tolerance of the largest fitting EM (off: trials alone decide)")
    prior_tau: float = field(3.0, help="saturation scale (samples per old class) assumed before any evidence "
                                       "(optimistic: the first task's evidence replaces it)")
    tolerance: float = field(0.02, help="accuracy (over all classes, as a fraction) an allowed candidate may be "
                                        "predicted to lose against the best one, at least")
    cut_fraction: float = field(0.5, help="... or this fraction of the predicted range (best - worst), if larger: "
                                          "Miro's top-half cut on predicted accuracy")
    keep_em: bool = field(True, help="never shrink the EM below what it holds unless the budget forces it")

    def __post_init__(self) -> None:
        require(self.prior_tau > 0, "prior_tau", "must be > 0")
        require(0 <= self.tolerance < 1, "tolerance", "must be in [0, 1)")
        require(0 <= self.cut_fraction <= 1, "cut_fraction", "must be in [0, 1]")


@dataclass(frozen=True)
class Observation:
    """What one task showed: old-class vs new-class validation accuracy at ``per_class`` EM
    samples per old class and ``sb_per_class`` SB samples per new class, and the saturation
    scale that implies."""

    task_id: int
    per_class: float
    sb_per_class: float
    old_accuracy: float
    new_accuracy: float
    tau: float


@dataclass(frozen=True)
class CandidateRule:
    """The candidates a task may try and why (recorded as ``kind: em_rule``)."""

    task_id: int
    tau: float
    evidence: int
    predicted: Dict[Tuple[int, int], float]
    allowed: Tuple[Tuple[int, int], ...]
    keep_floor: int
    reason: str


def _saturation(n: float, tau: float) -> float:
    return 1.0 - math.exp(-n / tau)


def solve_tau(per_class: float, sb_per_class: float, ratio: float) -> float:
    """The ``tau`` at which old/new accuracy equals ``ratio`` (clipped to what the model can
    produce), by bisection on log tau: the ratio moves monotonically with tau."""
    if per_class >= sb_per_class:  # the SB side carries no information: old vs a saturated ceiling
        return per_class / -math.log(1.0 - ratio)
    lo_ratio = per_class / sb_per_class  # the limit tau -> infinity (linear regime)
    ratio = max(ratio, lo_ratio * 1.02 + 1e-6)
    lo, hi = math.log(1e-3), math.log(1e5)
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        tau = math.exp(mid)
        if _saturation(per_class, tau) / _saturation(sb_per_class, tau) > ratio:
            lo = mid  # too saturated: a larger tau
        else:
            hi = mid
    return float(math.exp(0.5 * (lo + hi)))


class ForgettingModel:
    """Cross-task evidence of how old-class accuracy grows with EM samples per class."""

    def __init__(self, config: ForgettingConfig) -> None:
        self.config = config
        self.observations: List[Observation] = []

    def observe(self, task_id: int, per_class: float, sb_per_class: float, old_accuracy: float,
                new_accuracy: float) -> Optional[Observation]:
        """Add one task's evidence; None when it carries none (no EM, or the new classes were
        not learned either, so the ratio means nothing)."""
        if per_class <= 0 or sb_per_class <= 0 or not (new_accuracy >= 0.2) or not math.isfinite(old_accuracy):
            return None
        ratio = min(0.98, max(0.02, old_accuracy / new_accuracy))
        obs = Observation(task_id, float(per_class), float(sb_per_class), float(old_accuracy), float(new_accuracy),
                          solve_tau(per_class, sb_per_class, ratio))
        self.observations.append(obs)
        return obs

    @property
    def tau(self) -> float:
        if not self.observations:
            return float(self.config.prior_tau)
        return float(math.exp(sum(math.log(o.tau) for o in self.observations) / len(self.observations)))

    def predicted_accuracy(self, per_class: Sequence[float], sb_per_class: float, new_classes: int) -> float:
        """Accuracy over all classes (relative to the workload's ceiling) with ``per_class[i]``
        EM samples of each old class and ``sb_per_class`` SB samples of each new class."""
        tau = self.tau
        old = sum(_saturation(s, tau) for s in per_class)
        return float((old + new_classes * _saturation(sb_per_class, tau)) / max(1, len(per_class) + new_classes))

    def rule(self, task_id: int, candidates: Sequence[Tuple[int, int]], per_class_of: "PerClass",
             new_classes: int, held_em: int) -> CandidateRule:
        """The allowed ``(em_size, sb_size)`` among ``candidates`` (the fitting grid)."""
        keys = sorted(set(candidates))
        predicted = {(em, sb): round(self.predicted_accuracy(per_class_of(em), sb / max(1, new_classes),
                                                             new_classes), 4) for em, sb in keys}
        best, worst = max(predicted.values()), min(predicted.values())
        slack = max(self.config.tolerance, self.config.cut_fraction * (best - worst))
        allowed = [k for k in keys if predicted[k] >= best - slack - 1e-9]
        ems = sorted({em for em, _ in keys})
        keep = 0
        if self.config.keep_em and held_em > 0:
            keep = next((em for em in ems if em >= held_em), ems[-1])  # the budget caps the floor
            kept = [k for k in allowed if k[0] >= keep]
            allowed = kept or [k for k in keys if k[0] >= keep]
        top = max(keys, key=lambda k: predicted[k])
        reason = (f"tau {self.tau:.1f} samples/class from {len(self.observations)} task(s) of evidence: {len(allowed)} of {len(keys)} candidates predicted within {slack:.3f} "
                  f"of the best ({top[0]}/{top[1]} at {best:.3f})")
        if keep:
            reason += "; EM >= {} kept: it holds {} samples replay paid for{}".format(
                keep, held_em, "" if keep >= held_em else " (the budget caps it)")
        return CandidateRule(task_id, self.tau, len(self.observations), predicted, tuple(allowed), keep, reason)


class PerClass:
    """EM samples per old class for an EM size, class-balanced and capped by what the store holds."""

    def __init__(self, class_counts: Dict[int, int]) -> None:
        self.counts = sorted(class_counts.values())

    def __call__(self, em_size: int) -> List[float]:
        out, left = [], em_size
        for i, n in enumerate(self.counts):  # smallest classes first: they fill before the quota binds
            share = min(n, left // max(1, len(self.counts) - i))
            out.append(float(share))
            left -= share
        return out
