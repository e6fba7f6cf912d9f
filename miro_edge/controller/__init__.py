"""The Miro controller's decision logic: which ``(em_size, sb_size)`` to run, when to train,
and how to adapt to I/O congestion and memory-budget drops.

Everything here is pure and deterministic (the idle gate's waiting aside); the profiler loop
that trains candidates lives in ``miro_edge.controller.profiler``. ``report`` imports
matplotlib only when it draws.
"""
from miro_edge.controller.adapt import (BudgetDecision, MemoryBudgetAdapter, RatioChange, SwapAdapterConfig,
                                        SwapRatioAdapter)
from miro_edge.controller.grid import (Candidate, Grid, GridConfig, GridInputs, InfeasibleBudgetError,
                                       best_fitting, build_grid, fits, max_fit)
from miro_edge.controller.idle import Decision, GateResult, IdleGate, IdlePolicy, IdlePolicyConfig
from miro_edge.controller.report import ChoiceEvent, SwapRatioEvent, TrialEvent
from miro_edge.controller.scorer import (SCORERS, Choice, NoViableCandidateError, Scorer, ScorerConfig, Trial,
                                         TrialStatus, create_scorer)

__all__ = [
    "BudgetDecision", "Candidate", "Choice", "ChoiceEvent", "Decision", "GateResult", "Grid", "GridConfig",
    "GridInputs", "IdleGate", "IdlePolicy", "IdlePolicyConfig", "InfeasibleBudgetError", "MemoryBudgetAdapter",
    "NoViableCandidateError", "RatioChange", "SCORERS", "Scorer", "ScorerConfig", "SwapAdapterConfig",
    "SwapRatioAdapter", "SwapRatioEvent", "Trial", "TrialEvent", "TrialStatus", "best_fitting", "build_grid",
    "create_scorer", "fits", "max_fit",
]
