"""Swap-ratio congestion control and memory-budget adaptation on synthetic sequences."""
from dataclasses import dataclass

import pytest

from miro_edge.controller.adapt import MemoryBudgetAdapter, SwapAdapterConfig, SwapRatioAdapter
from miro_edge.controller.grid import Candidate
from miro_edge.controller.scorer import CostEffectiveScorer, Trial, TrialStatus
from miro_edge.errors import ConfigError, InputError

MB = 1024 * 1024


@dataclass(frozen=True)
class Stats:
    backlog: int
    latency_ewma_s: float
    latency_p95_s: float
    swaps_done: int


CALM = Stats(0, 0.005, 0.01, 100)
BACKLOGGED = Stats(500, 0.005, 0.01, 100)
SLOW = Stats(0, 0.2, 0.3, 100)
NEUTRAL = Stats(60, 0.01, 0.02, 100)  # under the budget of 64 but above 0.8 * 64
CFG = SwapAdapterConfig(max_backlog=64, max_read_latency_s=0.05, congested_windows=3, clear_windows=2,
                        floor=0.05, recover_step=0.25, clear_fraction=0.8)


def run(adapter, windows):
    return [adapter.observe(s) for s in windows]


def test_calm_windows_change_nothing():
    adapter = SwapRatioAdapter(CFG, profiled_ratio=0.4)
    assert run(adapter, [CALM] * 10) == [None] * 10
    assert adapter.ratio == 0.4


def test_halves_after_n_consecutive_congested_windows_down_to_the_floor():
    adapter = SwapRatioAdapter(CFG, profiled_ratio=0.4)
    events = [e for e in run(adapter, [BACKLOGGED] * 15) if e is not None]
    assert [(e.old, e.new) for e in events] == [(0.4, 0.2), (0.2, 0.1), (0.1, 0.05)]
    assert [e.window for e in events] == [3, 6, 9]
    assert "congested for 3 windows" in events[0].reason and "backlog 500 (budget 64)" in events[0].reason
    assert adapter.ratio == 0.05  # floor: no further events


def test_interrupted_congestion_does_not_trigger():
    adapter = SwapRatioAdapter(CFG, profiled_ratio=0.4)
    assert run(adapter, [SLOW, SLOW, CALM, SLOW, SLOW, NEUTRAL, SLOW, SLOW]) == [None] * 8
    assert adapter.observe(SLOW).new == 0.2  # the third in a row


def test_p95_latency_over_budget_is_congestion_including_a_read_still_in_flight():
    adapter = SwapRatioAdapter(CFG, profiled_ratio=0.4)
    idle = Stats(0, 0.2, 0.0, 0)  # a window with no read at all: latency unknown, not congestion
    assert run(adapter, [idle] * 5) == [None] * 5
    events = run(adapter, [SLOW] * 3)
    assert events[-1] is not None and "p95 0.300 s" in events[-1].reason
    # the worker's window reports a read still running with its age so far (no swap done yet)
    stuck = Stats(0, 0.2, 0.3, 0)
    events = run(SwapRatioAdapter(CFG, profiled_ratio=0.4), [stuck] * 3)
    assert events[-1] is not None and events[-1].new == 0.2


def test_recovers_gradually_after_m_calm_windows_capped_at_profiled():
    adapter = SwapRatioAdapter(CFG, profiled_ratio=0.4)
    run(adapter, [BACKLOGGED] * 6)
    assert adapter.ratio == pytest.approx(0.1)
    events = run(adapter, [CALM] * 8)
    assert events[0] is None  # one calm window is not enough
    values = [round(e.new, 6) for e in events if e is not None]
    assert values == [0.2, 0.3, 0.4]  # +25 % of the profiled 0.4 per calm window, then capped
    assert adapter.ratio == pytest.approx(0.4)
    assert "recovering toward the profiled ratio 0.400" in events[1].reason


def test_congestion_during_recovery_restarts_the_calm_count():
    adapter = SwapRatioAdapter(CFG, profiled_ratio=0.4)
    run(adapter, [BACKLOGGED] * 3)
    events = run(adapter, [CALM, CALM, BACKLOGGED, CALM, CALM])
    assert [e is not None for e in events] == [False, True, False, False, True]


def test_deterministic_and_reset_per_task():
    windows = [BACKLOGGED] * 4 + [NEUTRAL, CALM, CALM, SLOW, SLOW, SLOW, CALM, CALM, CALM]
    a = run(SwapRatioAdapter(CFG, 0.3), windows)
    b = run(SwapRatioAdapter(CFG, 0.3), windows)
    assert a == b and any(e is not None for e in a)
    adapter = SwapRatioAdapter(CFG, 0.3)
    run(adapter, windows[:3])
    adapter.reset(0.5)
    assert adapter.ratio == 0.5 and adapter.window == 0


def test_zero_profiled_ratio_never_swaps():
    adapter = SwapRatioAdapter(CFG, profiled_ratio=0.0)
    assert run(adapter, [BACKLOGGED] * 6 + [CALM] * 6) == [None] * 12


def test_invalid_inputs():
    with pytest.raises(InputError, match="swap stats"):
        SwapRatioAdapter(CFG, 0.2).observe(Stats(-1, 0.0, 0.0, 0))
    with pytest.raises(InputError, match="profiled swap ratio"):
        SwapRatioAdapter(CFG, 1.5)
    with pytest.raises(ConfigError, match="congested_windows"):
        SwapAdapterConfig(congested_windows=0)


def trial(em, sb, mem_mb, acc, energy, status=TrialStatus.OK):
    if status != TrialStatus.OK:
        return Trial(Candidate(em, sb, mem_mb * MB), None, None, "none", None, status, "x")
    return Trial(Candidate(em, sb, mem_mb * MB), acc, energy, "measured", 30.0)


TRIALS = [trial(800, 1000, 60, 0.95, 400.0), trial(400, 1000, 40, 0.80, 200.0),
          trial(200, 500, 30, 0.70, 20.0), trial(100, 250, 25, 0.40, 5.0),
          trial(900, 2000, 90, None, None, TrialStatus.BLACKLISTED)]


def test_budget_drop_switches_to_best_profiled_that_fits():
    adapter = MemoryBudgetAdapter(CostEffectiveScorer(cutline=0.5))
    current = TRIALS[1].candidate
    keep = adapter.decide(50 * MB, TRIALS, current)
    assert keep.candidate == current and not keep.changed and "still fits" in keep.reason
    switch = adapter.decide(35 * MB, TRIALS, current)
    assert switch.changed and switch.candidate.key == (200, 500)
    assert switch.reason.startswith("EM 400 / SB 1000 (40.0 MB) needs 40.00 MB, over the new budget of 35.00 MB")
    assert "switching without re-profiling" in switch.reason
    assert switch.choice is not None and not switch.needs_fallback


def test_budget_drop_with_nothing_fitting_asks_for_fallback():
    adapter = MemoryBudgetAdapter(CostEffectiveScorer(cutline=0.5))
    decision = adapter.decide(10 * MB, TRIALS, TRIALS[1].candidate)
    assert decision.needs_fallback and decision.candidate is None and decision.changed
    assert "fall back to max_fit" in decision.reason
