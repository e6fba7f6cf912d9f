"""The forgetting evidence and the candidate rule: evidence of forgetting makes the rule require
larger EMs, evidence of saturation lets it keep small ones, and the EM never shrinks below what
it holds unless the budget caps it."""
import math

import pytest

from miro_edge.config import from_dict
from miro_edge.controller import ControllerConfig
from miro_edge.controller.forgetting import ForgettingConfig, ForgettingModel, PerClass, solve_tau
from miro_edge.errors import ConfigError

OLD = {c: 150 for c in range(6)}  # six old classes, 150 stored samples each
GRID = [(em, sb) for em in (60, 150, 390, 900) for sb in (64, 256)]  # a fitting grid, 2 new classes


def test_tau_reproduces_the_observed_ratio_and_evidence_replaces_the_prior():
    tau = solve_tau(10, 32, 0.6)
    assert (1 - math.exp(-10 / tau)) / (1 - math.exp(-32 / tau)) == pytest.approx(0.6, abs=1e-3)
    assert solve_tau(40, 20, 0.5) == pytest.approx(40 / math.log(2))  # EM >= SB per class: old vs ceiling
    model = ForgettingModel(ForgettingConfig(prior_tau=3.0))
    assert model.tau == pytest.approx(3.0)
    first = model.observe(1, per_class=10, sb_per_class=32, old_accuracy=0.54, new_accuracy=0.9)
    assert first.tau == pytest.approx(tau, rel=1e-3) and model.tau == pytest.approx(first.tau)
    second = model.observe(2, per_class=10, sb_per_class=32, old_accuracy=0.9, new_accuracy=0.9)  # clipped
    assert model.tau == pytest.approx(math.sqrt(first.tau * second.tau)) and second.tau < first.tau
    assert model.observe(3, per_class=0, sb_per_class=32, old_accuracy=0.1, new_accuracy=0.9) is None  # no EM
    assert model.observe(3, per_class=10, sb_per_class=32, old_accuracy=0.1, new_accuracy=0.1) is None
    assert len(model.observations) == 2


def test_forgetting_evidence_allows_only_larger_candidates_saturation_allows_the_smallest():
    forgets, saturates = ForgettingModel(ForgettingConfig()), ForgettingModel(ForgettingConfig())
    for task in range(1, 4):
        forgets.observe(task, per_class=10, sb_per_class=32, old_accuracy=0.4, new_accuracy=0.9)
        saturates.observe(task, per_class=10, sb_per_class=32, old_accuracy=0.95, new_accuracy=0.96)
    hard = forgets.rule(4, GRID, PerClass(OLD), new_classes=2, held_em=0)
    easy = saturates.rule(4, GRID, PerClass(OLD), new_classes=2, held_em=0)
    assert (60, 64) in easy.allowed
    assert (60, 64) not in hard.allowed and (900, 256) in hard.allowed
    assert min(em for em, _ in hard.allowed) > 60
    assert hard.predicted[(900, 256)] > hard.predicted[(60, 64)] + 0.1
    assert "tau" in hard.reason and "3 task(s)" in hard.reason


def test_the_em_is_not_shrunk_below_what_it_holds_unless_the_budget_caps_it():
    saturates = ForgettingModel(ForgettingConfig())
    saturates.observe(1, per_class=10, sb_per_class=32, old_accuracy=0.95, new_accuracy=0.96)
    kept = saturates.rule(2, GRID, PerClass(OLD), new_classes=2, held_em=300)
    assert kept.allowed and min(em for em, _ in kept.allowed) == 390 and "replay paid for" in kept.reason
    capped = saturates.rule(2, [(60, 64), (150, 64)], PerClass(OLD), new_classes=2, held_em=300)
    assert capped.allowed == ((150, 64),) and "budget caps it" in capped.reason
    free = ForgettingModel(ForgettingConfig(keep_em=False))
    free.observe(1, per_class=10, sb_per_class=32, old_accuracy=0.95, new_accuracy=0.96)
    assert (60, 64) in free.rule(2, GRID, PerClass(OLD), new_classes=2, held_em=300).allowed


def test_per_class_is_balanced_and_capped_by_the_store():
    assert PerClass({0: 5, 1: 100, 2: 100})(105) == [5.0, 50.0, 50.0]
    assert sum(PerClass(OLD)(90)) == 90


def test_config_is_validated_and_loads_from_yaml_keys():
    cfg = from_dict(ControllerConfig, {"forgetting": {"prior_tau": 5.0, "tolerance": 0.01, "keep_em": False}})
    assert cfg.forgetting == ForgettingConfig(prior_tau=5.0, tolerance=0.01, keep_em=False)
    with pytest.raises(ConfigError, match="prior_tau"):
        ForgettingConfig(prior_tau=0)
    with pytest.raises(ConfigError, match="cut_fraction"):
        ForgettingConfig(cut_fraction=2)
    with pytest.raises(ConfigError):
        from_dict(ControllerConfig, {"forgetting": {"tau": 5.0}})  # unknown key
