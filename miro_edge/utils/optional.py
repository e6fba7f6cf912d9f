"""Lazy import of optional dependencies with an error that names the extra to install."""
import importlib
from types import ModuleType

from miro_edge.errors import MissingDependencyError


def require(module: str, extra: str, purpose: str = "") -> ModuleType:
    """Import ``module`` or raise MissingDependencyError naming ``pip install miro-edge[extra]``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        what = f" for {purpose}" if purpose else ""
        raise MissingDependencyError(
            f"{module!r} is needed{what} but is not installed ({exc}); install it with "
            f"`pip install 'miro-edge[{extra}]'`") from exc
