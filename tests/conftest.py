"""Root fixtures. Test doubles live in ``miro_fakes`` (a unique module name: several test
folders have their own conftest)."""
import pytest
from miro_fakes import MemorySource, make_source

# The checkpoint fixtures (``ckpt_factory``) of tests/model_fixtures.py, for every test folder.
pytest_plugins = ["model_fixtures"]


@pytest.fixture
def memory_source() -> MemorySource:
    return make_source()
