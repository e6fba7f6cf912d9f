"""The sweep's grid: which fixed (EM, SB, swap ratio, seed) runs reproduce Miro's observations.

A **memory budget** is counted in sample slots: what the budget holds beyond the fixed training
overhead (weights, gradients, momentum, one minibatch of activations), so
``budget_mb = overhead_mb + budget_samples * bytes_per_sample`` (both measured and written in the
report). Each budget is split between EM and SB by ``em_shares``; a second series varies the swap
ratio at one (budget, share). Every point is an independent, seeded job keyed by its parameters:
points shared by two series run once, and results from several machines merge by key.
"""
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

from miro_edge.config import field, require


@dataclass(frozen=True)
class SweepConfig:
    """``miro-edge sweep --config``: a session config to start from and the grid over it."""

    session: str = field(help="session config (YAML) every point starts from (configs/*.yaml)")
    budgets_samples: Tuple[int, ...] = field((100, 200, 400), help="memory budgets, in EM+SB sample slots beyond the "
                                                                  "measured training overhead")
    em_shares: Tuple[float, ...] = field((0.25, 0.5, 0.75), help="fraction of each budget given to the EM "
                                                                "(the rest is the SB)")
    swap_ratios: Tuple[float, ...] = field((0.0, 0.1, 0.2, 0.5, 1.0), help="swap ratios of the swap series")
    swap_budget_samples: Optional[int] = field(None, help="budget of the swap series (default: the middle budget)")
    swap_em_share: Optional[float] = field(None, help="EM share of the swap series (default: the middle share)")
    grid_swap_ratio: Optional[float] = field(None, help="swap ratio of the budget x share points "
                                                        "(default: the session config's)")
    seeds: Tuple[int, ...] = field((0,), help="seeds (class order, split, init, minibatch order) of every point")
    epochs: Optional[int] = field(None, help="override train.epochs of the session config")
    num_tasks: Optional[int] = field(None, help="override data.num_tasks of the session config")

    def __post_init__(self) -> None:
        require(bool(self.session), "session", "must name a session config")
        require(len(self.budgets_samples) >= 1 and all(b >= 2 for b in self.budgets_samples), "budgets_samples",
                "need at least one budget, each >= 2 samples")
        require(len(self.em_shares) >= 1 and all(0.0 <= s < 1.0 for s in self.em_shares), "em_shares",
                "need at least one share, each in [0, 1) (the SB needs at least one slot)")
        require(all(0.0 <= r <= 1.0 for r in self.swap_ratios), "swap_ratios", "each must be in [0, 1]")
        require(self.grid_swap_ratio is None or 0.0 <= self.grid_swap_ratio <= 1.0, "grid_swap_ratio",
                "must be in [0, 1]")
        require(self.swap_budget_samples is None or self.swap_budget_samples >= 2, "swap_budget_samples", "must be >= 2")
        require(self.swap_em_share is None or 0.0 < self.swap_em_share < 1.0, "swap_em_share",
                "must be in (0, 1): swapping needs an EM")
        require(len(self.seeds) >= 1, "seeds", "need at least one seed")
        require(self.epochs is None or self.epochs >= 1, "epochs", "must be >= 1")
        require(self.num_tasks is None or self.num_tasks >= 1, "num_tasks", "must be >= 1")


@dataclass(frozen=True)
class Point:
    """One run of the sweep: a fixed configuration at one seed."""

    em_size: int
    sb_size: int
    swap_ratio: float
    seed: int

    def params(self) -> Dict[str, Any]:
        return {"em_size": self.em_size, "sb_size": self.sb_size, "swap_ratio": self.swap_ratio, "seed": self.seed}


def split_budget(budget_samples: int, em_share: float) -> Tuple[int, int]:
    """(EM, SB) slots of a budget: the EM gets ``em_share`` (rounded), the SB the rest (>= 1)."""
    em = min(budget_samples - 1, int(round(em_share * budget_samples)))
    return em, budget_samples - em


def _middle(values: Sequence[Any]) -> Any:
    ordered = sorted(values)
    return ordered[(len(ordered) - 1) // 2]


@dataclass(frozen=True)
class Cell:
    """Where a point sits in the report: its series and its coordinates there."""

    series: str           # "grid" (budget x share) or "swap"
    budget_samples: int
    em_share: float
    swap_ratio: float


def plan(cfg: SweepConfig, base_swap_ratio: float) -> List[Tuple[Point, Cell]]:
    """Every (point, cell) of the sweep, grid first; a point may appear in both series."""
    grid_swap = cfg.grid_swap_ratio if cfg.grid_swap_ratio is not None else base_swap_ratio
    out: List[Tuple[Point, Cell]] = []
    for seed in cfg.seeds:
        for budget in sorted(cfg.budgets_samples):
            for share in sorted(cfg.em_shares):
                em, sb = split_budget(budget, share)
                out.append((Point(em, sb, grid_swap, seed), Cell("grid", budget, share, grid_swap)))
        swap_budget = cfg.swap_budget_samples or _middle(cfg.budgets_samples)
        swap_share = cfg.swap_em_share if cfg.swap_em_share is not None else _middle([s for s in cfg.em_shares if s > 0]
                                                                                  or [0.5])
        em, sb = split_budget(swap_budget, swap_share)
        for ratio in sorted(cfg.swap_ratios):
            out.append((Point(em, sb, ratio, seed), Cell("swap", swap_budget, swap_share, ratio)))
    return out


def workload_key(session: Dict[str, Any]) -> str:
    """A short hash of the session config the points start from (data, model, epochs...)."""
    text = json.dumps(session, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def point_key(workload: str, point: Point) -> str:
    """The job's identity: the workload hash and the point's parameters (stable across machines)."""
    return f"{workload}:em{point.em_size}:sb{point.sb_size}:swap{point.swap_ratio:g}:seed{point.seed}"
