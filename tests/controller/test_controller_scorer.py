"""Scorer: cutline over scored candidates, cost-effectiveness, deterministic ties, registry."""
import itertools

import pytest

from miro_edge.config import from_dict
from miro_edge.controller.grid import Candidate
from miro_edge.controller.scorer import (
    SCORERS,
    NoViableCandidateError,
    ScorerConfig,
    Trial,
    TrialStatus,
    create_scorer,
)
from miro_edge.errors import ConfigError, InputError

MB = 1024 * 1024


def ok(em, sb, acc, energy, mem_mb=None, source="measured"):
    mem = (mem_mb if mem_mb is not None else (em + sb) / 100.0) * MB
    return Trial(Candidate(em, sb, int(mem)), acc, energy, source, 12.5)


def bad(em, sb, status, acc=None, energy=None):
    return Trial(Candidate(em, sb, (em + sb) * 1000), acc, energy, "measured" if energy else "none", None,
                 status, "because")


FOUR = [ok(800, 1000, 0.90, 100.0), ok(400, 1000, 0.88, 50.0), ok(200, 500, 0.70, 10.0), ok(100, 250, 0.60, 5.0)]


def test_cost_effective_picks_best_accuracy_per_joule_above_the_cut():
    choice = create_scorer(ScorerConfig(cutline=0.5)).choose(FOUR)
    assert choice.candidate.key == (400, 1000)
    assert [t.candidate.key for t in choice.kept] == [(800, 1000), (400, 1000)]
    assert choice.cutline_accuracy == pytest.approx(0.88)
    assert choice.scores == {(800, 1000): pytest.approx(0.009), (400, 1000): pytest.approx(0.0176)}
    assert choice.score_name == "accuracy_per_j"
    # no cut at all: the cheapest-per-joule candidate wins even though it is the least accurate
    assert create_scorer(ScorerConfig(cutline=1.0)).choose(FOUR).candidate.key == (100, 250)


def test_cutline_counts_only_scored_candidates():
    trials = FOUR + [bad(1, 1, TrialStatus.DEGENERATE, 0.0, 3.0), bad(2, 2, TrialStatus.DEGENERATE),
                     bad(3, 3, TrialStatus.BLACKLISTED), bad(4, 4, TrialStatus.BLACKLISTED),
                     bad(5, 5, TrialStatus.SKIPPED), bad(6, 6, TrialStatus.FAILED)]
    choice = create_scorer(ScorerConfig(cutline=0.5)).choose(trials)
    # half of the 4 scored, not half of 10 (which would keep all four and pick (100, 250))
    assert len(choice.kept) == 2
    assert choice.candidate.key == (400, 1000)
    assert choice.excluded == {"degenerate": 2, "blacklisted": 2, "skipped": 1, "failed": 1}
    assert "not scored: 2 blacklisted, 2 degenerate, 1 failed, 1 skipped" in choice.reason


def test_degenerate_trial_is_never_chosen_even_when_it_looks_best():
    trials = [ok(10, 10, 0.5, 100.0), bad(20, 20, TrialStatus.DEGENERATE, acc=0.99, energy=0.001)]
    for name in SCORERS.names():
        choice = create_scorer(ScorerConfig(name=name, cutline=1.0)).choose(trials)
        assert choice.candidate.key == (10, 10)
        assert len(choice.kept) == 1


def test_at_least_one_is_kept_and_boundary_ties_are_all_kept():
    assert len(create_scorer(ScorerConfig(cutline=0.01)).choose(FOUR).kept) == 1
    tied = [ok(1, 1, 0.9, 10.0), ok(2, 2, 0.8, 10.0), ok(3, 3, 0.8, 1.0), ok(4, 4, 0.5, 1.0)]
    choice = create_scorer(ScorerConfig(cutline=0.5)).choose(tied)
    assert {t.candidate.key for t in choice.kept} == {(1, 1), (2, 2), (3, 3)}
    assert choice.candidate.key == (3, 3)


def test_ties_are_broken_by_accuracy_then_memory_then_order_regardless_of_input_order():
    same_ratio = [ok(1, 1, 0.4, 4.0), ok(2, 2, 0.8, 8.0)]  # both 0.1 accuracy/J
    same_all = [ok(5, 5, 0.8, 8.0, mem_mb=30), ok(6, 6, 0.8, 8.0, mem_mb=20)]
    scorer = create_scorer(ScorerConfig(cutline=1.0))
    for perm in itertools.permutations(same_ratio):
        assert scorer.choose(list(perm)).candidate.key == (2, 2)
    for perm in itertools.permutations(same_all):
        assert scorer.choose(list(perm)).candidate.key == (6, 6)
    identical = [ok(7, 7, 0.8, 8.0, mem_mb=20), ok(8, 8, 0.8, 8.0, mem_mb=20)]
    assert scorer.choose(identical).candidate.key == (7, 7)
    assert scorer.choose(identical[::-1]).candidate.key == (8, 8)


def test_alternative_scorers():
    assert SCORERS.names() == ["cost_effective", "highest_accuracy", "lowest_energy_within_cutline"]
    best = create_scorer(ScorerConfig(name="highest_accuracy", cutline=0.5)).choose(FOUR)
    assert best.candidate.key == (800, 1000) and best.score_name == "accuracy"
    cheap = create_scorer(ScorerConfig(name="lowest_energy_within_cutline", cutline=0.75)).choose(FOUR)
    assert cheap.candidate.key == (200, 500)
    assert cheap.scores[(200, 500)] == -10.0
    # highest accuracy ties go to the cheaper one
    tie = [ok(1, 1, 0.9, 20.0), ok(2, 2, 0.9, 10.0)]
    assert create_scorer(ScorerConfig(name="highest_accuracy")).choose(tie).candidate.key == (2, 2)


def test_reason_is_a_sentence_with_the_numbers():
    choice = create_scorer(ScorerConfig(cutline=0.5)).choose(FOUR)
    assert choice.reason.startswith("EM 400 / SB 1000")
    assert "highest accuracy per joule" in choice.reason
    assert "0.0176 accuracy/J" in choice.reason
    assert "2 of 4 scored candidates" in choice.reason
    assert "cutline accuracy 0.880 (top 50%)" in choice.reason
    assert choice.reason.endswith(".")


def test_mixed_energy_sources_are_flagged():
    trials = [ok(1, 1, 0.9, 10.0, source="measured"), ok(2, 2, 0.9, 9.0, source="estimated")]
    choice = create_scorer(ScorerConfig(cutline=1.0)).choose(trials)
    assert "energy mixes estimated and measured" in choice.reason


def test_nothing_scorable_raises_with_the_statuses():
    with pytest.raises(NoViableCandidateError, match="1 blacklisted, 1 degenerate"):
        create_scorer().choose([bad(1, 1, TrialStatus.DEGENERATE), bad(2, 2, TrialStatus.BLACKLISTED)])
    with pytest.raises(NoViableCandidateError, match="no trials"):
        create_scorer().choose([])


def test_ok_trials_must_carry_real_measurements():
    cand = Candidate(1, 1, 100)
    with pytest.raises(InputError, match="accuracy"):
        Trial(cand, None, 1.0, "measured", 1.0)
    with pytest.raises(InputError, match="accuracy"):
        Trial(cand, 1.5, 1.0, "measured", 1.0)
    with pytest.raises(InputError, match="energy_j"):
        Trial(cand, 0.5, 0.0, "measured", 1.0)
    with pytest.raises(InputError, match="energy_j"):
        Trial(cand, 0.5, float("nan"), "measured", 1.0)
    with pytest.raises(InputError, match="energy_label"):  # a meter backend is an energy_source, not a label
        Trial(cand, 0.5, 1.0, "ina3221", 1.0)
    with pytest.raises(InputError, match="status"):
        Trial(cand, 0.5, 1.0, "measured", 1.0, status="bogus")
    black = Trial.blacklisted(cand, "too big")
    assert black.status == TrialStatus.BLACKLISTED and not black.scorable and black.accuracy_per_j is None


def test_config_and_registry_errors():
    with pytest.raises(ConfigError, match="unknown scorer 'fastest'"):
        ScorerConfig(name="fastest")
    with pytest.raises(ConfigError, match="cutline"):
        ScorerConfig(cutline=0.0)
    with pytest.raises(ConfigError, match="choose one of"):
        SCORERS.get("nope")
    assert from_dict(ScorerConfig, {"name": "highest_accuracy", "cutline": 1}).cutline == 1.0
