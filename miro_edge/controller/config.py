"""The controller's typed config and the table of policies it can name.

``POLICIES`` lives here (not beside the policies) because ``ControllerConfig`` validates the
policy name against it; each policy module registers itself on import, and the package's
``__init__`` imports them all before anyone can build a config.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from miro_edge.config import field, require
from miro_edge.controller.adapt import SwapAdapterConfig
from miro_edge.controller.forgetting import ForgettingConfig
from miro_edge.controller.grid import GridConfig
from miro_edge.controller.idle import IdlePolicyConfig
from miro_edge.controller.scorer import ScorerConfig
from miro_edge.utils.registry import Registry

if TYPE_CHECKING:  # pragma: no cover
    from miro_edge.controller.miro import MiroController

POLICIES: Registry[MiroController] = Registry("controller policy")


@dataclass(frozen=True)
class ControllerConfig:
    enabled: bool = field(False, help="choose (EM, SB) per task; off = the fixed memory config")
    policy: str = field("profile", help="'profile' (Miro: profiled cost-effectiveness) or 'max_fit' (baseline)")
    memory_budget_mb: float = field(16.0, help="memory for EM + SB + model/optimizer/activations, in MB")
    follow_available_memory: bool = field(False, help="also cap the budget at a fraction of the memory "
                                                      "the OS reports available (cgroup-aware)")
    available_memory_fraction: float = field(0.5, help="fraction of available memory usable when following it")
    start_task: int = field(0, help="first task that is profiled (task 0 has nothing to replay, so only SB "
                                    "sizes are tried there)")
    data_ratio: float = field(0.12, help="largest fraction of EM and SB each trial trains on (class-balanced)")
    max_profile_share: Optional[float] = field(0.03, help="cap on a task's profiling work (warm start + trials, "
                                               "in sample-passes) as a fraction of the cheapest candidate's "
                                               "full training; trials train on less than data_ratio when needed. "
                                               "null: always data_ratio")
    trial_epochs: int = field(2, help="epochs of each trial")
    warm_start_epochs: int = field(1, help="epochs of the shared warm start on the new task (data_ratio of SB)")
    val_per_class: int = field(20, help="validation samples per class read from the store's held-out slice")
    successive_halving: bool = field(True, help="train every trial 1 epoch, then only the better half by "
                                                "accuracy the remaining trial_epochs - 1 (saves profiling energy)")
    trial_energy: str = field("extrapolated", help="'extrapolated': score each candidate by its trial's "
                              "measured joules per sample-pass (shrunk toward the profile's median) times the "
                              "sample-passes of its full training; 'raw': by the trial's own joules")
    adapt_window_steps: int = field(4, help="minibatches per window of the swap-congestion and budget checks")
    grid: GridConfig = field(default_factory=GridConfig, help="the candidate grid")
    scorer: ScorerConfig = field(default_factory=ScorerConfig, help="how a candidate is chosen")
    swap_adapt: SwapAdapterConfig = field(default_factory=SwapAdapterConfig, help="swap-ratio congestion rule")
    forgetting: ForgettingConfig = field(default_factory=ForgettingConfig, help="the EM-size rule driven by "
                                         "cross-task forgetting evidence")
    idle: Optional[IdlePolicyConfig] = field(None, help="idle-window policy; null = the device is always idle")
    idle_poll_s: float = field(1.0, help="how often a paused trainer re-checks the idle policy")

    def __post_init__(self) -> None:
        require(self.memory_budget_mb > 0, "memory_budget_mb", "must be > 0")
        require(self.policy in POLICIES, "policy", "must be one of {}".format(", ".join(POLICIES.names())))
        require(0 < self.available_memory_fraction <= 1, "available_memory_fraction", "must be in (0, 1]")
        require(self.start_task >= 0, "start_task", "must be >= 0")
        require(0 < self.data_ratio <= 1, "data_ratio", "must be in (0, 1]")
        require(self.max_profile_share is None or self.max_profile_share > 0, "max_profile_share",
                "must be > 0 or null")
        require(self.trial_epochs >= 1, "trial_epochs", "must be >= 1")
        require(self.warm_start_epochs >= 0, "warm_start_epochs", "must be >= 0")
        require(self.val_per_class >= 1, "val_per_class", "must be >= 1")
        require(self.trial_energy in ("extrapolated", "raw"), "trial_energy",
                "must be 'extrapolated' or 'raw'")
        require(self.adapt_window_steps >= 1, "adapt_window_steps", "must be >= 1")
        require(self.idle_poll_s > 0, "idle_poll_s", "must be > 0")

