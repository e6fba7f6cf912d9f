"""Candidate grid: derived from budget, sample size, overhead and store contents."""
import pytest

from miro_edge.config import from_dict
from miro_edge.controller.grid import (
    Candidate,
    GridConfig,
    GridInputs,
    InfeasibleBudgetError,
    best_fitting,
    build_grid,
    fits,
    max_fit,
    spaced,
)
from miro_edge.controller.scorer import CostEffectiveScorer, Trial, TrialStatus
from miro_edge.errors import ConfigError, InputError

MB = 1024 * 1024
BPS = 3 * 32 * 32 * 4 + 64  # a float32 CIFAR-sized sample plus label/bookkeeping


def inputs(budget_mb=64, overhead_mb=20, counts=None, task_size=1000, bps=BPS):
    counts = {c: 500 for c in range(10)} if counts is None else counts
    return GridInputs(memory_budget_bytes=int(budget_mb * MB), bytes_per_sample=bps,
                      fixed_overhead_bytes=int(overhead_mb * MB), class_counts=counts, task_size=task_size)


def test_spaced_keeps_exact_ends_and_dedups():
    assert spaced(10, 1000, 3, "geometric") == [10, 100, 1000]
    assert spaced(10, 1000, 3, "linear") == [10, 505, 1000]
    assert spaced(1, 3, 10, "linear") == [1, 2, 3]
    assert spaced(7, 7, 4, "geometric") == [7]
    assert spaced(5, 80, 1, "geometric") == [80]


def test_geometric_puts_more_points_at_the_small_end():
    geo = spaced(10, 10000, 5, "geometric")
    lin = spaced(10, 10000, 5, "linear")
    assert sum(v < 1000 for v in geo) > sum(v < 1000 for v in lin)


def test_every_candidate_fits_and_every_blacklisted_one_does_not():
    inp = inputs(budget_mb=64)
    grid = build_grid(inp, GridConfig(em_steps=4, sb_steps=3))
    assert grid.candidates and grid.blacklisted
    for c in grid.candidates:
        assert c.memory_bytes == inp.fixed_overhead_bytes + (c.em_size + c.sb_size) * BPS
        assert c.memory_bytes <= inp.memory_budget_bytes
    for c, reason in grid.blacklisted:
        assert c.memory_bytes > inp.memory_budget_bytes
        assert "over the memory budget of 64.00 MB" in reason
    assert len(grid.all()) == len(grid.em_sizes) * len(grid.sb_sizes)


def test_em_is_class_balanced_and_capped_at_what_the_store_holds():
    counts = {0: 3, 1: 100, 2: 40}
    grid = build_grid(inputs(budget_mb=1024, counts=counts), GridConfig(em_steps=4, min_em_per_class=5))
    # smallest quota 5: class 0 only has 3 -> 3 + 5 + 5
    assert grid.em_sizes[0] == 13
    # a huge budget still never asks for more than the 143 stored samples
    assert grid.em_sizes[-1] == 143
    assert not grid.blacklisted


def test_sb_never_exceeds_the_task_and_small_tasks_collapse_the_axis():
    grid = build_grid(inputs(budget_mb=1024, task_size=1000), GridConfig(sb_steps=3, min_sb_size=64))
    assert grid.sb_sizes == (64, 253, 1000)
    small = build_grid(inputs(budget_mb=1024, task_size=40), GridConfig(sb_steps=3, min_sb_size=64))
    assert small.sb_sizes == (40,)


def test_first_task_has_nothing_to_replay():
    grid = build_grid(inputs(counts={}), GridConfig(em_steps=4))
    assert grid.em_sizes == (0,)
    assert all(c.em_size == 0 for c in grid.candidates)


def test_no_replay_point_is_opt_in():
    assert 0 not in build_grid(inputs(), GridConfig()).em_sizes
    assert build_grid(inputs(), GridConfig(include_no_replay=True)).em_sizes[0] == 0


def test_axes_follow_the_budget_not_a_table():
    small = build_grid(inputs(budget_mb=30))
    large = build_grid(inputs(budget_mb=80))
    assert max(c.em_size for c in small.candidates) < max(c.em_size for c in large.candidates)
    # bigger samples on the same budget: fewer samples fit
    fat = build_grid(inputs(budget_mb=30, bps=BPS * 4))
    assert max(c.em_size + c.sb_size for c in fat.candidates) < max(c.em_size + c.sb_size for c in small.candidates)


def test_budget_below_overhead_blacklists_everything():
    grid = build_grid(inputs(budget_mb=10, overhead_mb=20))
    assert grid.candidates == ()
    assert len(grid.blacklisted) == len(grid.all()) >= 1


def test_max_fit_gives_sb_the_whole_task_when_it_fits():
    inp = inputs(budget_mb=64)
    cand = max_fit(inp.memory_budget_bytes, inp)
    room = (inp.memory_budget_bytes - inp.fixed_overhead_bytes) // BPS
    assert cand.sb_size == 1000
    assert cand.em_size == room - 1000
    assert fits(cand, inp.memory_budget_bytes)


def test_max_fit_splits_the_room_evenly_when_the_task_does_not_fit():
    inp = inputs(budget_mb=22, overhead_mb=20, task_size=100000)
    cand = max_fit(inp.memory_budget_bytes, inp, GridConfig(min_em_per_class=5))
    room = (inp.memory_budget_bytes - inp.fixed_overhead_bytes) // BPS
    assert cand.em_size == room // 2 and cand.sb_size == room - room // 2
    sb_first = max_fit(inp.memory_budget_bytes, inp, GridConfig(min_em_per_class=5, max_fit_em_share=0.0))
    assert sb_first.key == (50, room - 50)  # share 0: the SB takes all but the smallest useful EM


def test_max_fit_caps_em_at_what_exists_and_always_fits():
    inp = inputs(budget_mb=4096)
    five = GridConfig(min_em_per_class=5)
    assert max_fit(inp.memory_budget_bytes, inp, five).key == (5000, 1000)
    for budget_mb in (21, 23, 30, 50, 70, 200):
        assert fits(max_fit(budget_mb * MB, inp, five), budget_mb * MB)


def test_max_fit_refuses_an_infeasible_budget_with_the_fix():
    inp = inputs()
    with pytest.raises(InfeasibleBudgetError, match="raise the memory budget"):
        max_fit(19 * MB, inp)


def test_best_fitting_rescores_among_fitting_trials_only():
    def trial(em, sb, mem_mb, acc, energy):
        return Trial(Candidate(em, sb, mem_mb * MB), acc, energy, "measured", 10.0)
    trials = [trial(800, 1000, 60, 0.95, 400.0), trial(400, 1000, 40, 0.80, 200.0),
              trial(200, 500, 30, 0.70, 20.0), trial(100, 250, 25, 0.40, 5.0)]
    scorer = CostEffectiveScorer(cutline=0.5)
    assert scorer.choose(trials).candidate.key == (400, 1000)
    # budget 35 MB: (200, 500) and (100, 250) remain; the cut is recomputed over those two
    assert best_fitting(trials, 35 * MB, scorer).candidate.key == (200, 500)
    assert best_fitting(trials, 20 * MB, scorer) is None
    failed = [Trial(Candidate(1, 1, MB), None, None, "none", None, TrialStatus.FAILED)]
    assert best_fitting(failed, 35 * MB, scorer) is None


def test_config_validation_names_the_key():
    with pytest.raises(ConfigError, match="spacing"):
        GridConfig(spacing="log")
    with pytest.raises(ConfigError, match="em_steps"):
        GridConfig(em_steps=0)
    with pytest.raises(ConfigError, match="unknown config key 'sb_stpes'"):
        from_dict(GridConfig, {"sb_stpes": 3})
    assert from_dict(GridConfig, {"spacing": "linear", "em_steps": 2}).em_steps == 2


def test_inputs_validation():
    with pytest.raises(InputError, match="bytes_per_sample"):
        inputs(bps=0)
    with pytest.raises(InputError, match="task_size"):
        inputs(task_size=0)
    with pytest.raises(InputError, match="class_counts"):
        inputs(counts={0: -1})
    counts = {0: 5, 1: 0}
    inp = inputs(counts=counts)
    counts[2] = 99  # the caller's dict changing later does not change the inputs
    assert inp.class_counts == {0: 5} and inp.num_classes_seen == 1
