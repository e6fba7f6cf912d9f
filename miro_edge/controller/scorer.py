"""Scoring profiled trials: keep the most accurate candidates, then pick the cheapest per joule.

Miro's rule, with its flaws fixed: the cutline is a fraction of the candidates that were
actually scored (skipped, failed, degenerate and blacklisted trials do not count, and a
degenerate trial is never mistaken for a zero-accuracy one), at least one candidate is always
kept, energy is the trial's measured (or explicitly estimated) joules, and ties are broken
deterministically. Alternative rules are registered by name in ``SCORERS``.
"""
import logging
import math
from collections import Counter
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from miro_edge.config import field, require
from miro_edge.controller.grid import Candidate
from miro_edge.errors import InputError, MiroEdgeError
from miro_edge.utils.registry import Registry

logger = logging.getLogger(__name__)


class TrialStatus:
    """Outcome of one profiling trial (strings, so they go into JSONL unchanged)."""

    OK = "ok"                    #: trained and validated; scorable
    DEGENERATE = "degenerate"    #: ran, but the result is meaningless (NaN loss, zero energy, ...)
    BLACKLISTED = "blacklisted"  #: over the memory budget; never trained
    FAILED = "failed"            #: raised an error while training or validating
    SKIPPED = "skipped"          #: not run (idle window closed, profiling stopped, ...)
    ALL = (OK, DEGENERATE, BLACKLISTED, FAILED, SKIPPED)


ENERGY_LABELS = ("measured", "estimated")
NO_ENERGY_LABEL = "none"


class NoViableCandidateError(MiroEdgeError):
    """No trial is scorable (all skipped, failed, degenerate or blacklisted)."""


def _finite(x: Optional[float]) -> bool:
    return x is not None and math.isfinite(x)


@dataclass(frozen=True)
class Trial:
    """One profiled candidate: validation accuracy, training energy and how the trial ended.

    A trial with status ``ok`` must carry an accuracy in [0, 1] and a finite positive energy
    with its label (``measured`` or ``estimated``); other statuses may leave them ``None``.
    ``reason`` says why a trial is not ok (e.g. the blacklist reason).
    """

    candidate: Candidate
    accuracy: Optional[float]
    energy_j: Optional[float]
    energy_label: str
    seconds: Optional[float]
    status: str = TrialStatus.OK
    reason: str = ""
    val_samples: Optional[int] = None

    def __post_init__(self) -> None:
        if self.status not in TrialStatus.ALL:
            raise InputError("trial status must be one of {}, got {!r}".format(
                ", ".join(TrialStatus.ALL), self.status))
        if self.status != TrialStatus.OK:
            return
        if not (_finite(self.accuracy) and 0.0 <= self.accuracy <= 1.0):  # type: ignore[operator]
            raise InputError(f"an ok trial of {self.candidate.label()} needs an accuracy in [0, 1], got {self.accuracy!r}; mark it "
                             "'degenerate' instead")
        if not (_finite(self.energy_j) and self.energy_j > 0):  # type: ignore[operator]
            raise InputError(f"an ok trial of {self.candidate.label()} needs a finite energy_j > 0, got {self.energy_j!r}; mark it "
                             "'degenerate' instead")
        if self.energy_label not in ENERGY_LABELS:
            raise InputError("energy_label must be one of {}, got {!r}".format(
                ", ".join(ENERGY_LABELS), self.energy_label))

    @property
    def scorable(self) -> bool:
        return self.status == TrialStatus.OK

    @property
    def accuracy_per_j(self) -> Optional[float]:
        if not self.scorable:
            return None
        return self.accuracy / self.energy_j  # type: ignore[operator]

    @classmethod
    def blacklisted(cls, candidate: Candidate, reason: str) -> "Trial":
        """The record of a grid point that was never tried because it exceeds the budget."""
        return cls(candidate, None, None, NO_ENERGY_LABEL, None, TrialStatus.BLACKLISTED, reason)


@dataclass(frozen=True)
class Choice:
    """The scorer's decision with everything needed to explain and record it.

    ``scores`` maps ``(em_size, sb_size)`` of each kept candidate to the scorer's score
    (higher is better; ``score_name`` says what it is). ``cutline_accuracy`` is the lowest
    accuracy that was kept.
    """

    candidate: Candidate
    trial: Trial
    scorer: str
    reason: str
    kept: Tuple[Trial, ...]
    scores: Dict[Tuple[int, int], float]
    score_name: str
    cutline_accuracy: float
    excluded: Dict[str, int]


@dataclass(frozen=True)
class ScorerConfig:
    """Which scoring rule to apply and how many candidates survive the accuracy cut."""

    name: str = field("cost_effective", help="scoring rule: cost_effective, highest_accuracy, "
                                              "lowest_energy_within_cutline")
    cutline: float = field(0.5, help="fraction (0, 1] of scored candidates kept by accuracy before "
                                     "choosing; at least one is always kept")
    cut: str = field("fraction", help="'fraction': keep the top `cutline` by accuracy; 'standard_error': keep "
                                      "every trial within se_z standard errors of the best accuracy (binomial, "
                                      "over the validation samples), i.e. not measurably worse")
    se_z: float = field(1.0, help="width of the standard-error cut, in standard errors")

    def __post_init__(self) -> None:
        require(self.cut in ("fraction", "standard_error"), "cut",
                f"must be 'fraction' or 'standard_error', got {self.cut!r}")
        require(self.se_z >= 0, "se_z", f"must be >= 0, got {self.se_z}")
        require(self.name in SCORERS, "name", "unknown scorer {!r}; choose one of: {}".format(
            self.name, ", ".join(SCORERS.names())))
        require(0.0 < self.cutline <= 1.0, "cutline",
                f"must be in (0, 1], got {self.cutline}")


class Scorer:
    """Base rule: cut to the top ``cutline`` fraction by accuracy, then rank by ``score``.

    Subclasses set ``name``, ``score_name`` and implement ``score`` (higher is better) and
    ``merit`` (the words used in the reason).
    """

    name = ""
    score_name = ""
    merit = ""

    def __init__(self, cutline: float = 0.5, cut: str = "fraction", se_z: float = 1.0) -> None:
        if not 0.0 < cutline <= 1.0:
            raise InputError(f"cutline must be in (0, 1], got {cutline}")
        self.cutline = cutline
        self.cut_mode = cut
        self.se_z = se_z

    def score(self, trial: Trial) -> float:
        raise NotImplementedError

    def describe_score(self, trial: Trial) -> str:
        return f"{self.score(trial):.4g}"

    def cut(self, trials: Sequence[Trial]) -> Tuple[List[Trial], float]:
        """Scorable trials kept by the accuracy cut, in input order, and the cutline accuracy.

        Keeps ``ceil(cutline * n_scored)`` (at least one) and every trial tied with the last
        kept accuracy: equal accuracies cannot be told apart, so neither is cut arbitrarily.
        """
        scored = [t for t in trials if t.scorable]
        if not scored:
            raise NoViableCandidateError(f"no trial can be scored ({_status_summary(trials)}); profile again in the next idle "
                                         "window or fall back to max_fit")
        ranked = sorted(scored, key=lambda t: -t.accuracy)  # type: ignore[operator]
        best = ranked[0]
        if self.cut_mode == "standard_error" and best.val_samples:
            # not measurably worse than the best: within se_z binomial standard errors of it
            p, n = float(best.accuracy), float(best.val_samples)  # type: ignore[arg-type]
            threshold = p - self.se_z * max(math.sqrt(p * (1.0 - p) / n), 1.0 / n)
            return [t for t in scored if t.accuracy >= threshold - 1e-12], threshold  # type: ignore[operator]
        n_keep = max(1, int(math.ceil(self.cutline * len(scored) - 1e-9)))
        threshold = float(ranked[n_keep - 1].accuracy)  # type: ignore[arg-type]
        return [t for t in scored if t.accuracy >= threshold], threshold  # type: ignore[operator]

    def choose(self, trials: Sequence[Trial]) -> Choice:
        """Pick one trial. Ties: score, then accuracy, then lower energy, smaller memory, input order."""
        kept, threshold = self.cut(trials)
        order = {id(t): i for i, t in enumerate(trials)}
        best = min(kept, key=lambda t: (-self.score(t), -t.accuracy, t.energy_j,  # type: ignore[operator]
                                        t.candidate.memory_bytes, order[id(t)]))
        excluded = dict(Counter(t.status for t in trials if not t.scorable))
        n_scored = sum(1 for t in trials if t.scorable)
        sources = sorted({t.energy_label for t in kept})
        reason = self._reason(best, kept, n_scored, threshold, excluded, sources)
        if len(sources) > 1:
            logger.warning("choosing among trials whose energy mixes %s sources; joules are not comparable "
                           "across sources", " and ".join(sources))
        logger.info("%s", reason)
        return Choice(
            candidate=best.candidate, trial=best, scorer=self.name, reason=reason, kept=tuple(kept),
            scores={t.candidate.key: self.score(t) for t in kept}, score_name=self.score_name,
            cutline_accuracy=threshold, excluded=excluded)

    def _reason(self, best: Trial, kept: Sequence[Trial], n_scored: int, threshold: float,
                excluded: Dict[str, int], sources: Sequence[str]) -> str:
        rule = f"top {self.cutline:.0%}" if self.cut_mode == "fraction" or not best.val_samples else \
            f"within {self.se_z:g} standard errors of the best"
        text = (f"{best.candidate.label()} has the {self.merit} ({self.describe_score(best)}: accuracy {best.accuracy:.3f}, {best.energy_j:.4g} J {best.energy_label}) among the {len(kept)} of {n_scored} scored candidates "
                f"at or above the cutline accuracy {threshold:.3f} ({rule})")
        if excluded:
            text += "; not scored: " + ", ".join(f"{n} {s}" for s, n in sorted(excluded.items()))
        if len(sources) > 1:
            text += "; warning: energy mixes {} values".format(" and ".join(sources))
        return text + "."


def _status_summary(trials: Sequence[Trial]) -> str:
    if not trials:
        return "no trials"
    counts = Counter(t.status for t in trials)
    return ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))


SCORERS: Registry[Scorer] = Registry("scorer")


@SCORERS.register("cost_effective")
class CostEffectiveScorer(Scorer):
    """Miro's rule: among the accurate enough, the most accuracy per joule of training."""

    name = "cost_effective"
    score_name = "accuracy_per_j"
    merit = "highest accuracy per joule"

    def score(self, trial: Trial) -> float:
        return trial.accuracy / trial.energy_j  # type: ignore[operator]

    def describe_score(self, trial: Trial) -> str:
        return f"{self.score(trial):.4g} accuracy/J"


@SCORERS.register("highest_accuracy")
class HighestAccuracyScorer(Scorer):
    """Ignore energy (the "all accuracy" baseline); ties go to the cheaper candidate."""

    name = "highest_accuracy"
    score_name = "accuracy"
    merit = "highest accuracy"

    def score(self, trial: Trial) -> float:
        return float(trial.accuracy)  # type: ignore[arg-type]


@SCORERS.register("lowest_energy_within_cutline")
class LowestEnergyScorer(Scorer):
    """The cheapest trial that is still accurate enough; score is negative joules."""

    name = "lowest_energy_within_cutline"
    score_name = "neg_energy_j"
    merit = "lowest energy"

    def score(self, trial: Trial) -> float:
        return -float(trial.energy_j)  # type: ignore[arg-type]

    def describe_score(self, trial: Trial) -> str:
        return f"{trial.energy_j:.4g} J"


def create_scorer(config: ScorerConfig = ScorerConfig()) -> Scorer:
    """The scorer named by ``config.name`` with its cutline."""
    return SCORERS.create(config.name, cutline=config.cutline, cut=config.cut, se_z=config.se_z)
