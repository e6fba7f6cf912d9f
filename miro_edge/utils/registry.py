"""Name -> factory registries, so adding a backend adds a module and no ``elif``."""
from typing import Callable, Dict, Generic, List, TypeVar

from miro_edge.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """A named table of factories of one kind (models, meters, engines, scorers...)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: Dict[str, Callable[..., T]] = {}

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        def decorate(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._items[name] = factory
            return factory
        return decorate

    def get(self, name: str) -> Callable[..., T]:
        try:
            return self._items[name]
        except KeyError:
            raise ConfigError("unknown {} {!r}; choose one of: {}".format(
                self.kind, name, ", ".join(self.names()))) from None

    def create(self, name: str, *args: object, **kwargs: object) -> T:
        return self.get(name)(*args, **kwargs)

    def names(self) -> List[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items
