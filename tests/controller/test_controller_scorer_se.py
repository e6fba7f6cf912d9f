"""The standard-error cut keeps every candidate not measurably worse than the best."""
import pytest

from miro_edge.config import from_dict
from miro_edge.controller.grid import Candidate
from miro_edge.controller.scorer import ScorerConfig, Trial, create_scorer
from miro_edge.errors import ConfigError


def trial(em, acc, joules, n):
    return Trial(Candidate(em, 64, em * 1000), acc, joules, "estimated", 1.0, val_samples=n)


def test_small_validation_slice_keeps_more_candidates_than_a_large_one():
    scorer = create_scorer(ScorerConfig(cut="standard_error", se_z=1.0))
    # best 0.80; SE at n=32 is 0.0707 -> keep >= 0.729; at n=400 it is 0.02 -> keep >= 0.78
    small = [trial(10, 0.75, 10.0, 32), trial(40, 0.80, 40.0, 32), trial(20, 0.70, 20.0, 32)]
    large = [trial(10, 0.75, 10.0, 400), trial(40, 0.80, 40.0, 400), trial(20, 0.70, 20.0, 400)]
    chosen_small = scorer.choose(small)
    chosen_large = scorer.choose(large)
    assert chosen_small.candidate.em_size == 10  # the cheap one is within noise of the best
    assert chosen_small.cutline_accuracy == pytest.approx(0.80 - (0.8 * 0.2 / 32) ** 0.5)
    assert chosen_large.candidate.em_size == 40  # with 400 samples 0.75 is measurably worse
    assert "standard errors of the best" in chosen_small.reason


def test_without_sample_counts_it_falls_back_to_the_fraction_cut():
    scorer = create_scorer(ScorerConfig(cut="standard_error", cutline=0.5))
    trials = [Trial(Candidate(e, 64, e), a, j, "estimated", 1.0) for e, a, j in
              [(10, 0.75, 10.0), (40, 0.80, 40.0), (20, 0.70, 20.0), (30, 0.79, 30.0)]]
    assert scorer.choose(trials).candidate.em_size == 30  # top half {0.80, 0.79}, cheaper of the two


def test_config_validation():
    with pytest.raises(ConfigError, match="cut"):
        from_dict(ScorerConfig, {"cut": "median"})
    with pytest.raises(ConfigError, match="se_z"):
        ScorerConfig(se_z=-1.0)
