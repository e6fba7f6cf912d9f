"""Lazy import of optional dependencies with an error that names the extra to install."""
import importlib
from types import ModuleType

from miro_edge.errors import MissingDependencyError


def require(module: str, extra: str, purpose: str = "") -> ModuleType:
    """Import ``module`` or raise MissingDependencyError naming ``pip install miro-edge[extra]``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        what = " for {}".format(purpose) if purpose else ""
        raise MissingDependencyError(
            "{!r} is needed{} but is not installed ({}); install it with "
            "`pip install 'miro-edge[{}]'`".format(module, what, exc, extra)) from exc
