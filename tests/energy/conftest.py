"""Fixtures for the energy tests; the fake trees live in ``tests/energy_fakes.py`` (importable by name)."""
from pathlib import Path

import pytest
from energy_fakes import FakeClock


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def empty_root(tmp_path: Path) -> str:
    """A root with no sensors at all (not even /proc/driver/nvidia)."""
    (tmp_path / "sys").mkdir()
    (tmp_path / "proc").mkdir()
    return str(tmp_path)
