"""The controller's search space: candidate ``(em_size, sb_size)`` configurations.

The grid is derived from what this device has and what the store holds, never from a
per-dataset table: the memory budget, the bytes one sample costs in RAM, the fixed overhead
(model, optimizer, activations; measured once by the caller), the training samples the store
holds per old class and the size of the new task.

- EM sizes come from a class-balanced per-class quota ``q``: ``em_size(q) = sum_c min(q, n_c)``,
  so EM never asks for more samples of a class than the store holds.
- SB sizes run up to the task's sample count (a bigger SB holds nothing more).
- Each axis is capped by what could fit the budget with the other axis at its minimum; the
  corners of the product that still exceed the budget are **blacklisted**: kept in the record
  with the reason, never trained.

``max_fit`` is the "give replay all the memory you have" baseline; ``fits`` and
``best_fitting`` implement the memory-budget-drop rule (move to the best candidate already
profiled that fits, without profiling again).
"""
import dataclasses
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, List, Mapping, Optional, Sequence, Tuple

from miro_edge.config import field, require
from miro_edge.errors import InputError, MiroEdgeError

if TYPE_CHECKING:  # pragma: no cover - annotations only, avoids an import cycle
    from miro_edge.controller.scorer import Choice, Scorer, Trial

logger = logging.getLogger(__name__)

SPACINGS = ("geometric", "linear")
_MB = 1024.0 * 1024.0


class InfeasibleBudgetError(MiroEdgeError, ValueError):
    """The memory budget cannot hold even the fixed overhead plus the smallest SB."""


@dataclass(frozen=True)
class GridConfig:
    """How many grid points to try and how to space them (the range comes from the inputs)."""

    em_steps: int = field(4, help="EM sizes to try (distinct values after rounding may be fewer)")
    sb_steps: int = field(3, help="SB sizes to try (distinct values after rounding may be fewer)")
    spacing: str = field("geometric", help="'geometric' (more points at the small, cheap end) or 'linear'")
    min_em_per_class: int = field(10, help="smallest EM quota per old class: below ~10 replays per class, short "
                                           "trials cannot show the forgetting a tiny EM causes over a whole task")
    min_sb_size: int = field(64, help="smallest SB in samples (capped at the task size)")
    include_no_replay: bool = field(False, help="also try em_size=0 (no replay, the forgetting floor)")
    max_fit_em_share: float = field(0.5, help="max-fit (the baseline, and the controller's fallback): share of "
                                              "the replay room the EM gets first (capped at what the store "
                                              "holds); the SB takes the rest up to the task size, the EM any "
                                              "leftover")

    def __post_init__(self) -> None:
        require(self.em_steps >= 1, "em_steps", f"must be >= 1, got {self.em_steps}")
        require(self.sb_steps >= 1, "sb_steps", f"must be >= 1, got {self.sb_steps}")
        require(self.spacing in SPACINGS, "spacing",
                "must be one of {}, got {!r}".format(", ".join(SPACINGS), self.spacing))
        require(self.min_em_per_class >= 1, "min_em_per_class",
                f"must be >= 1, got {self.min_em_per_class}")
        require(self.min_sb_size >= 1, "min_sb_size", f"must be >= 1, got {self.min_sb_size}")
        require(0 <= self.max_fit_em_share < 1, "max_fit_em_share",
                f"must be in [0, 1), got {self.max_fit_em_share}")


@dataclass(frozen=True)
class Candidate:
    """One configuration: EM and SB sizes in samples and the total RAM they need.

    ``memory_bytes`` is the whole footprint the budget is compared with:
    fixed overhead + (em_size + sb_size) * bytes per sample.
    """

    em_size: int
    sb_size: int
    memory_bytes: int

    @property
    def key(self) -> Tuple[int, int]:
        """``(em_size, sb_size)``: how choices and scores name a candidate."""
        return (self.em_size, self.sb_size)

    def label(self) -> str:
        return f"EM {self.em_size} / SB {self.sb_size} ({self.memory_bytes / _MB:.1f} MB)"


@dataclass(frozen=True)
class GridInputs:
    """What the grid is derived from; every value is measured or counted by the caller.

    ``class_counts`` maps each class seen in earlier tasks to the training samples the store
    holds for it (``store.class_counts("train")`` minus the new task's classes): EM replays
    these classes, and cannot usefully hold more than exists.
    """

    memory_budget_bytes: int
    bytes_per_sample: int
    fixed_overhead_bytes: int
    class_counts: Mapping[int, int]
    task_size: int

    def __post_init__(self) -> None:
        if self.bytes_per_sample <= 0:
            raise InputError(f"bytes_per_sample must be > 0 (sample nbytes + label/bookkeeping), got {self.bytes_per_sample}"
                             )
        if self.fixed_overhead_bytes < 0:
            raise InputError(f"fixed_overhead_bytes must be >= 0, got {self.fixed_overhead_bytes}")
        if self.memory_budget_bytes <= 0:
            raise InputError(f"memory_budget_bytes must be > 0, got {self.memory_budget_bytes}")
        if self.task_size < 1:
            raise InputError("task_size must be >= 1: a task without samples has nothing to profile")
        bad = {c: n for c, n in self.class_counts.items() if n < 0}
        if bad:
            raise InputError(f"class_counts must be >= 0; negative for classes {sorted(bad)}")
        # a private copy: the caller's dict may change while this object lives
        object.__setattr__(self, "class_counts", {int(c): int(n) for c, n in self.class_counts.items() if n > 0})

    @property
    def num_classes_seen(self) -> int:
        return len(self.class_counts)

    @property
    def em_capacity(self) -> int:
        """The most EM samples that can exist: every stored training sample of old classes."""
        return sum(self.class_counts.values())

    def bytes_for(self, em_size: int, sb_size: int) -> int:
        return self.fixed_overhead_bytes + (em_size + sb_size) * self.bytes_per_sample

    def samples_within(self, budget_bytes: int) -> int:
        """How many samples (EM + SB) fit in ``budget_bytes`` after the fixed overhead."""
        return max(0, (budget_bytes - self.fixed_overhead_bytes) // self.bytes_per_sample)

    def em_for_quota(self, quota: int) -> int:
        """EM size of a class-balanced EM with at most ``quota`` samples per class."""
        return sum(min(quota, n) for n in self.class_counts.values())

    def quota_for_em(self, max_em: int) -> int:
        """The largest per-class quota whose EM size stays within ``max_em`` (0 if none)."""
        if not self.class_counts or max_em <= 0:
            return 0
        lo, hi = 0, max(self.class_counts.values())
        while lo < hi:  # em_for_quota is non-decreasing in the quota
            mid = (lo + hi + 1) // 2
            if self.em_for_quota(mid) <= max_em:
                lo = mid
            else:
                hi = mid - 1
        return lo

    def candidate(self, em_size: int, sb_size: int) -> Candidate:
        return Candidate(em_size, sb_size, self.bytes_for(em_size, sb_size))

    def with_budget(self, memory_budget_bytes: int) -> "GridInputs":
        return dataclasses.replace(self, memory_budget_bytes=memory_budget_bytes)


@dataclass(frozen=True)
class Grid:
    """The candidates to profile plus the ones blacklisted for the budget (never trained)."""

    candidates: Tuple[Candidate, ...]
    blacklisted: Tuple[Tuple[Candidate, str], ...]
    em_sizes: Tuple[int, ...]
    sb_sizes: Tuple[int, ...]
    memory_budget_bytes: int

    def all(self) -> List[Candidate]:
        """Every grid point in grid order (EM ascending, then SB ascending)."""
        out = list(self.candidates) + [c for c, _ in self.blacklisted]
        return sorted(out, key=lambda c: c.key)


def spaced(lo: int, hi: int, steps: int, spacing: str) -> List[int]:
    """``steps`` integers from ``lo`` to ``hi`` (both included), deduplicated, ascending.

    One step gives ``[hi]``: with a single point the natural choice is the largest.
    """
    if spacing not in SPACINGS:
        raise InputError("spacing must be one of {}, got {!r}".format(", ".join(SPACINGS), spacing))
    if lo > hi:
        lo, hi = hi, lo
    if steps == 1 or lo == hi:
        return [hi]
    values = []
    for i in range(steps):
        t = i / (steps - 1)
        if spacing == "geometric" and lo > 0:
            v = lo * (hi / lo) ** t
        else:
            v = lo + (hi - lo) * t
        values.append(int(round(v)))
    values[0], values[-1] = lo, hi  # exact ends despite float rounding
    return sorted(set(values))


def _em_axis(inputs: GridInputs, config: GridConfig, em_room: int) -> List[int]:
    if inputs.num_classes_seen == 0:
        return [0]  # the first task: nothing to replay
    top_quota = max(inputs.class_counts.values())
    lo_q = min(config.min_em_per_class, top_quota)
    hi_q = max(lo_q, min(top_quota, inputs.quota_for_em(em_room)))
    sizes = sorted({inputs.em_for_quota(q) for q in spaced(lo_q, hi_q, config.em_steps, config.spacing)})
    if config.include_no_replay:
        sizes = [0] + [s for s in sizes if s > 0]
    return sizes


def _sb_axis(inputs: GridInputs, config: GridConfig, sb_room: int) -> List[int]:
    lo = min(config.min_sb_size, inputs.task_size)
    hi = max(lo, min(inputs.task_size, sb_room))
    return spaced(lo, hi, config.sb_steps, config.spacing)


def _min_em(inputs: GridInputs, config: GridConfig) -> int:
    if inputs.num_classes_seen == 0 or config.include_no_replay:
        return 0
    return inputs.em_for_quota(config.min_em_per_class)


def build_grid(inputs: GridInputs, config: GridConfig = GridConfig()) -> Grid:
    """Candidate grid for one task; points over ``inputs.memory_budget_bytes`` are blacklisted."""
    room = inputs.samples_within(inputs.memory_budget_bytes)
    sb_lo = min(config.min_sb_size, inputs.task_size)
    em_axis = _em_axis(inputs, config, room - sb_lo)
    sb_axis = _sb_axis(inputs, config, room - _min_em(inputs, config))
    fitting: List[Candidate] = []
    blacklisted: List[Tuple[Candidate, str]] = []
    for em in em_axis:
        for sb in sb_axis:
            cand = inputs.candidate(em, sb)
            if fits(cand, inputs.memory_budget_bytes):
                fitting.append(cand)
            else:
                blacklisted.append((cand, over_budget_reason(cand, inputs.memory_budget_bytes)))
    if not fitting:
        logger.warning("no candidate fits the memory budget of %.1f MB (overhead %.1f MB, %d B/sample); "
                       "all %d grid points are blacklisted", inputs.memory_budget_bytes / _MB,
                       inputs.fixed_overhead_bytes / _MB, inputs.bytes_per_sample, len(blacklisted))
    return Grid(tuple(fitting), tuple(blacklisted), tuple(em_axis), tuple(sb_axis), inputs.memory_budget_bytes)


def over_budget_reason(candidate: Candidate, budget_bytes: int) -> str:
    return f"needs {candidate.memory_bytes / _MB:.2f} MB, over the memory budget of {budget_bytes / _MB:.2f} MB"


def fits(candidate: Candidate, budget_bytes: int) -> bool:
    """Whether the candidate's whole footprint (overhead included) is within the budget."""
    return candidate.memory_bytes <= budget_bytes


def max_fit(budget_bytes: int, inputs: GridInputs, config: GridConfig = GridConfig()) -> Candidate:
    """The largest EM and SB that fit ``budget_bytes``: the baseline that gives replay all memory,
    split the way a user would set it.

    Split rule: the EM first gets ``max_fit_em_share`` of the room (half by default; at least the
    smallest useful EM, ``min_em_per_class`` per old class; at most what the store holds); the
    SB takes the rest, up to the whole task; the EM then takes whatever the SB leaves. So old
    and new classes share the memory evenly instead of the new task taking it all (an SB-first
    split forgets badly where memory matters). Raises InfeasibleBudgetError when not even the
    overhead, the minimum EM and one SB sample fit.
    """
    room = inputs.samples_within(budget_bytes)
    em_reserve = min(_min_em(inputs, config), inputs.em_capacity)
    if room < em_reserve + 1:
        raise InfeasibleBudgetError(
            f"memory budget {budget_bytes / _MB:.2f} MB cannot hold the fixed overhead {inputs.fixed_overhead_bytes / _MB:.2f} MB plus {em_reserve} EM samples and one "
            f"SB sample at {inputs.bytes_per_sample} B each; raise the memory budget or use a smaller model")
    em_first = min(inputs.em_capacity, max(em_reserve, int(room * config.max_fit_em_share)), room - 1)
    sb = min(inputs.task_size, room - em_first)
    em = min(inputs.em_capacity, room - sb)
    return inputs.candidate(em, sb)


def best_fitting(trials: Sequence["Trial"], budget_bytes: int, scorer: "Scorer") -> Optional["Choice"]:
    """The scorer's choice among already-profiled trials that fit ``budget_bytes``, or None.

    The cutline is applied over the fitting trials only: a candidate that no longer fits
    must not push a fitting one below the cut.
    """
    fitting = [t for t in trials if fits(t.candidate, budget_bytes)]
    if not any(t.scorable for t in fitting):
        return None
    return scorer.choose(fitting)

