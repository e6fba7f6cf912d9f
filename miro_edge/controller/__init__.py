"""The Miro controller: which ``(em_size, sb_size)`` to run per task, when to train, and how to
adapt to I/O congestion and memory-budget drops.

Modules, one job each: ``config`` (typed config, policy table), ``footprint`` (what the memory
budget counts), ``grid`` (candidates), ``trials`` (one profiling trial), ``scorer`` (the choice),
``miro`` (the profiling controller), ``policies`` (max-fit, the factory), ``adapt`` and
``adapt_callback`` (during training), ``idle`` (idle windows), ``report`` (events, plots;
matplotlib only when it draws).
"""
from miro_edge.controller.adapt import (
                                        BudgetDecision,
                                        MemoryBudgetAdapter,
                                        RatioChange,
                                        SwapAdapterConfig,
                                        SwapRatioAdapter,
)
from miro_edge.controller.adapt_callback import AdaptCallback
from miro_edge.controller.config import POLICIES, ControllerConfig
from miro_edge.controller.footprint import MemoryBudget, bytes_per_sample, measure_overhead_bytes
from miro_edge.controller.grid import (
                                        Candidate,
                                        Grid,
                                        GridConfig,
                                        GridInputs,
                                        InfeasibleBudgetError,
                                        best_fitting,
                                        build_grid,
                                        fits,
                                        max_fit,
)
from miro_edge.controller.idle import Decision, GateResult, IdleGate, IdlePolicy, IdlePolicyConfig
from miro_edge.controller.miro import MiroController, ProfileResult
from miro_edge.controller.policies import MaxFitPolicy, create_controller
from miro_edge.controller.report import ChoiceEvent, SwapRatioEvent, TrialEvent
from miro_edge.controller.scorer import (
                                        SCORERS,
                                        Choice,
                                        NoViableCandidateError,
                                        Scorer,
                                        ScorerConfig,
                                        Trial,
                                        TrialStatus,
                                        create_scorer,
)
from miro_edge.controller.trials import profile_data_ratio

__all__ = [
    "AdaptCallback", "BudgetDecision", "Candidate", "Choice", "ChoiceEvent", "ControllerConfig", "Decision",
    "GateResult", "Grid", "GridConfig", "GridInputs", "IdleGate", "IdlePolicy", "IdlePolicyConfig",
    "InfeasibleBudgetError", "MaxFitPolicy", "MemoryBudget", "MemoryBudgetAdapter", "MiroController",
    "NoViableCandidateError", "POLICIES", "ProfileResult", "RatioChange", "SCORERS", "Scorer", "ScorerConfig",
    "SwapAdapterConfig", "SwapRatioAdapter", "SwapRatioEvent", "Trial", "TrialEvent", "TrialStatus",
    "best_fitting", "build_grid", "bytes_per_sample", "create_controller", "create_scorer", "fits", "max_fit",
    "measure_overhead_bytes", "profile_data_ratio",
]
