"""Adapting to resources while a task trains: I/O congestion and memory-budget drops.

Both are pure, deterministic rules (no threads, no clocks): the caller feeds observations
and records the decisions they return, so every change can be replayed from the results file.

- ``SwapRatioAdapter`` is congestion control for the swap worker: when swap reads fall behind
  (backlog or read latency over budget for ``congested_windows`` windows in a row) the swap
  ratio halves, down to a floor; after ``clear_windows`` calm windows it climbs back by a
  fixed step per calm window, never above the profiled value.
- ``MemoryBudgetAdapter`` answers "the budget dropped: which configuration now?" with the best
  candidate already profiled that fits, without profiling again.
"""
import logging
import math
from dataclasses import dataclass
from typing import Optional, Sequence

from miro_edge.config import field, require
from miro_edge.controller.grid import Candidate, best_fitting, fits
from miro_edge.controller.scorer import Choice, Scorer, Trial
from miro_edge.errors import InputError

try:  # Protocol is in typing from 3.8
    from typing import Protocol
except ImportError:  # pragma: no cover
    from typing_extensions import Protocol  # type: ignore

logger = logging.getLogger(__name__)
_MB = 1024.0 * 1024.0


class SwapWindowStats(Protocol):
    """One window of swap-worker statistics (what the swap worker reports)."""

    @property
    def backlog(self) -> int: ...

    @property
    def latency_ewma_s(self) -> float: ...

    @property
    def latency_p95_s(self) -> float: ...

    @property
    def swaps_done(self) -> int: ...


@dataclass(frozen=True)
class SwapAdapterConfig:
    """Budgets for swap I/O and how fast the ratio backs off and recovers."""

    max_backlog: int = field(16, help="pending swap requests above which a window counts as congested "
                                      "(keep it below memory.swap.max_backlog, the queue's bound)")
    max_read_latency_s: float = field(0.05, help="p95 store read latency above which a window is congested")
    congested_windows: int = field(3, help="consecutive congested windows before the ratio halves")
    clear_windows: int = field(2, help="consecutive calm windows before the ratio starts to recover")
    floor: float = field(0.02, help="the ratio never drops below this (nor below the profiled ratio)")
    recover_step: float = field(0.25, help="fraction of the profiled ratio added back per calm window")
    clear_fraction: float = field(0.8, help="a window is calm only under this fraction of both budgets "
                                            "(hysteresis against flapping)")

    def __post_init__(self) -> None:
        require(self.max_backlog >= 0, "max_backlog", f"must be >= 0, got {self.max_backlog}")
        require(self.max_read_latency_s > 0, "max_read_latency_s",
                f"must be > 0, got {self.max_read_latency_s}")
        require(self.congested_windows >= 1, "congested_windows",
                f"must be >= 1, got {self.congested_windows}")
        require(self.clear_windows >= 1, "clear_windows",
                f"must be >= 1, got {self.clear_windows}")
        require(0.0 <= self.floor <= 1.0, "floor", f"must be in [0, 1], got {self.floor}")
        require(0.0 < self.recover_step <= 1.0, "recover_step",
                f"must be in (0, 1], got {self.recover_step}")
        require(0.0 < self.clear_fraction <= 1.0, "clear_fraction",
                f"must be in (0, 1], got {self.clear_fraction}")


@dataclass(frozen=True)
class RatioChange:
    """One swap-ratio change, to be recorded as a ``swap_ratio`` event."""

    old: float
    new: float
    reason: str
    window: int


class SwapRatioAdapter:
    """Halve the swap ratio under sustained I/O congestion; recover it gradually when calm.

    A window is *congested* when the backlog exceeds ``max_backlog`` or, if any swap
    completed in it, the p95 read latency exceeds ``max_read_latency_s`` (a window with no
    completed swap has no fresh latency; a stuck store shows up as backlog). It is *calm* when
    both are under ``clear_fraction`` of their budgets; anything in between breaks both streaks.
    """

    def __init__(self, config: SwapAdapterConfig = SwapAdapterConfig(), profiled_ratio: float = 0.2) -> None:
        self.config = config
        self.reset(profiled_ratio)

    def reset(self, profiled_ratio: float) -> None:
        """Start a new task at its profiled ratio (streaks cleared)."""
        if not (math.isfinite(profiled_ratio) and 0.0 <= profiled_ratio <= 1.0):
            raise InputError(f"profiled swap ratio must be in [0, 1], got {profiled_ratio!r}")
        self.profiled_ratio = float(profiled_ratio)
        self.ratio = float(profiled_ratio)
        self.floor = min(self.config.floor, self.profiled_ratio)
        self.window = 0
        self._congested = 0
        self._calm = 0

    def _classify(self, stats: SwapWindowStats) -> str:
        cfg = self.config
        if stats.backlog < 0 or stats.swaps_done < 0:
            raise InputError(f"swap stats must be >= 0, got backlog={stats.backlog} swaps_done={stats.swaps_done}")
        latency_known = math.isfinite(stats.latency_p95_s) and (stats.swaps_done > 0 or stats.latency_p95_s > 0)
        if stats.backlog > cfg.max_backlog or (latency_known and stats.latency_p95_s > cfg.max_read_latency_s):
            return "congested"
        calm_backlog = stats.backlog <= cfg.clear_fraction * cfg.max_backlog
        calm_latency = not latency_known or stats.latency_p95_s <= cfg.clear_fraction * cfg.max_read_latency_s
        return "calm" if calm_backlog and calm_latency else "neutral"

    def observe(self, stats: SwapWindowStats) -> Optional[RatioChange]:
        """Feed one window of stats; returns the change to apply and record, or None."""
        self.window += 1
        state = self._classify(stats)
        cfg = self.config
        what = f"backlog {stats.backlog} (budget {cfg.max_backlog}), read latency p95 {stats.latency_p95_s:.3f} s / ewma {stats.latency_ewma_s:.3f} s (budget {cfg.max_read_latency_s:.3f} s)"
        if state == "congested":
            self._calm = 0
            self._congested += 1
            if self._congested < cfg.congested_windows:
                return None
            self._congested = 0  # the worker gets N more windows to drain before the next cut
            new = max(self.floor, self.ratio / 2.0)
            if new >= self.ratio:
                logger.debug("swap I/O congested but the ratio is at its floor %.3f", self.floor)
                return None
            return self._change(new, f"congested for {cfg.congested_windows} windows: {what}; halving the swap ratio")
        self._congested = 0
        if state == "neutral":
            self._calm = 0
            return None
        self._calm += 1
        if self._calm < cfg.clear_windows or self.ratio >= self.profiled_ratio:
            return None
        new = min(self.profiled_ratio, self.ratio + cfg.recover_step * self.profiled_ratio)
        return self._change(new, f"calm for {self._calm} windows: {what}; recovering toward the profiled ratio {self.profiled_ratio:.3f}")

    def _change(self, new: float, reason: str) -> RatioChange:
        change = RatioChange(old=self.ratio, new=new, reason=reason, window=self.window)
        logger.info("swap ratio %.3f -> %.3f: %s", change.old, change.new, reason)
        self.ratio = new
        return change


@dataclass(frozen=True)
class BudgetDecision:
    """What to run after a memory-budget change.

    ``candidate`` is None when no profiled candidate fits: the caller then falls back to
    ``grid.max_fit`` (or the smallest fitting grid point) for the new budget.
    """

    candidate: Optional[Candidate]
    changed: bool
    reason: str
    choice: Optional[Choice] = None

    @property
    def needs_fallback(self) -> bool:
        return self.candidate is None


class MemoryBudgetAdapter:
    """On a budget change, keep the current candidate if it fits, else the best profiled one that does.

    A budget rise keeps the current candidate: the next task's profiling uses the bigger budget.
    """

    def __init__(self, scorer: Scorer) -> None:
        self.scorer = scorer

    def decide(self, budget_bytes: int, trials: Sequence[Trial],
               current: Optional[Candidate] = None) -> BudgetDecision:
        budget_mb = budget_bytes / _MB
        if current is not None and fits(current, budget_bytes):
            return BudgetDecision(current, False, f"{current.label()} still fits the memory budget of {budget_mb:.2f} MB; keeping it")
        choice = best_fitting(trials, budget_bytes, self.scorer)
        was = f"{current.label()} needs {current.memory_bytes / _MB:.2f} MB, over the new budget of {budget_mb:.2f} MB" if current is not None else \
            "no current candidate"
        if choice is None:
            n_fit = sum(1 for t in trials if fits(t.candidate, budget_bytes))
            reason = (f"{was}; none of the {len(trials)} profiled candidates fits and was scored ({n_fit} fit but were not ok); "
                      "fall back to max_fit for this budget")
            logger.warning("%s", reason)
            return BudgetDecision(None, True, reason)
        reason = f"{was}; switching without re-profiling: {choice.reason}"
        logger.info("%s", reason)
        return BudgetDecision(choice.candidate, choice.candidate != current, reason, choice)
