from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple

import pytest

from miro_edge.config import from_dict, load_yaml
from miro_edge.errors import ConfigError
from miro_edge.session import SessionConfig

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_every_shipped_yaml_loads(path):
    config = load_yaml(path, SessionConfig)
    assert isinstance(config, SessionConfig)


def test_shipped_configs_exist():
    assert any(p.name == "demo.yaml" for p in SHIPPED)


def test_unknown_key_is_an_error_naming_the_key(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("memory:\n  swap:\n    swap_raito: 0.5\n")
    with pytest.raises(ConfigError, match=r"memory\.swap\.swap_raito"):
        load_yaml(path, SessionConfig)


def test_type_and_range_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"train\.epochs: expected an integer"):
        from_dict(SessionConfig, {"train": {"epochs": "five"}})
    with pytest.raises(ConfigError, match=r"memory\.swap\.swap_ratio"):
        from_dict(SessionConfig, {"memory": {"swap": {"swap_ratio": 1.5}}})
    with pytest.raises(ConfigError, match="does not exist"):
        load_yaml(tmp_path / "nope.yaml", SessionConfig)
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_yaml(bad, SessionConfig)


@pytest.mark.parametrize("section, path", [
    ({"controller": {"grid": {"em_steps": 0}}}, "controller.grid.em_steps"),
    ({"controller": {"forgetting": {"prior_tau": 0}}}, "controller.forgetting.prior_tau"),
    ({"memory": {"store": {"quota_samples": -4}}}, "memory.store.quota_samples"),
    ({"memory": {"swap": {"mode": "sometimes"}}}, "memory.swap.mode"),
    ({"energy": {"interval_ms": 0}}, "energy.interval_ms"),
])
def test_range_errors_of_nested_sections_name_the_full_key_path(section, path):
    """A section's own check names its field; loading puts the section's path in front."""
    with pytest.raises(ConfigError) as info:
        from_dict(SessionConfig, section)
    assert str(info.value).startswith(path + ": "), str(info.value)


def test_a_section_built_in_python_names_its_own_field():
    from miro_edge.controller.grid import GridConfig
    with pytest.raises(ConfigError, match=r"^em_steps: must be >= 1, got 0$"):
        GridConfig(em_steps=0)


@dataclass(frozen=True)
class Inner:
    size: Optional[int] = None
    pair: Tuple[int, int] = (1, 2)


def test_optional_and_tuple_coercion():
    assert from_dict(Inner, {"size": None, "pair": [3, 4]}) == Inner(None, (3, 4))
    with pytest.raises(ConfigError, match="expected 2 items"):
        from_dict(Inner, {"pair": [1]})
