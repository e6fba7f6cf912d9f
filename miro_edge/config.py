"""Typed, frozen configuration loaded from YAML.

Each section is a frozen dataclass validated in ``__post_init__``; units live in field names.
Unknown keys are errors that name the full key path, so a typo fails before any work starts.
Field docs are the ``help`` entry of each field's metadata.
"""
import dataclasses
import typing
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple, Type, TypeVar, Union, cast

import yaml

from miro_edge.errors import ConfigError

T = TypeVar("T")


def field(default: Any = dataclasses.MISSING, help: str = "", **kwargs: Any) -> Any:
    """A dataclass field with a help text (shown by ``miro-edge config --help-fields``)."""
    meta = {"help": help}
    if default is dataclasses.MISSING:
        return dataclasses.field(metadata=meta, **kwargs)
    return dataclasses.field(default=default, metadata=meta, **kwargs)


def _check(cond: bool, key: str, message: str) -> None:
    if not cond:
        raise ConfigError(f"{key}: {message}")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin is Union:
        if value is None and type(None) in args:
            return None
        last: Optional[ConfigError] = None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError as exc:
                last = exc
        raise last if last else ConfigError(f"{key}: invalid value {value!r}")
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        _check(isinstance(value, Mapping), key, f"expected a mapping, got {value!r}")
        return from_dict(tp, value, key)
    if origin in (tuple, Tuple):
        _check(isinstance(value, (list, tuple)), key, f"expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
        _check(len(args) == len(value), key, f"expected {len(args)} items, got {len(value)}")
        return tuple(_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if origin in (dict, Dict):
        _check(isinstance(value, Mapping), key, f"expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        _check(isinstance(value, bool), key, f"expected true/false, got {value!r}")
        return value
    if tp is int:
        _check(isinstance(value, int) and not isinstance(value, bool), key,
               f"expected an integer, got {value!r}")
        return value
    if tp is float:
        _check(isinstance(value, (int, float)) and not isinstance(value, bool), key,
               f"expected a number, got {value!r}")
        return float(value)
    if tp is str:
        _check(isinstance(value, str), key, f"expected a string, got {value!r}")
        return value
    return value


def from_dict(cls: Type[T], data: Mapping[str, Any], prefix: str = "") -> T:
    """Build dataclass ``cls`` from a mapping; unknown keys raise ConfigError naming the key."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cast(Any, cls)) if f.init}  # cls: a dataclass type
    for key in data:
        if key not in names:
            raise ConfigError("unknown config key {!r}; known keys here: {}".format(
                _join(prefix, str(key)), ", ".join(sorted(names))))
    kwargs = {}
    for name in names:
        if name in data:
            kwargs[name] = _coerce(data[name], hints[name], _join(prefix, name))
    try:
        return cls(**kwargs)
    except FieldError as exc:  # a section's own check names its field: prefix the section's path
        raise ConfigError(f"{_join(prefix, exc.key)}: {exc.detail}") from None
    except TypeError as exc:
        raise ConfigError(f"{prefix or cls.__name__}: {exc}") from None


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def to_dict(obj: Any) -> Dict[str, Any]:
    """Plain-dict view of a config, for recording inside checkpoints and results."""
    return dataclasses.asdict(obj)


def load_yaml(path: Union[str, Path], cls: Type[T]) -> T:
    """Load a YAML file into dataclass ``cls``; errors name the file and the key."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: top level must be a mapping")
    try:
        return from_dict(cls, data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


class FieldError(ConfigError):
    """A ``__post_init__`` check failed on field ``key`` of the section being built; loading
    from YAML re-raises it with the field's full path (``controller.grid.em_steps``)."""

    def __init__(self, key: str, detail: str) -> None:
        super().__init__(f"{key}: {detail}")
        self.key = key
        self.detail = detail


def require(cond: bool, key: str, message: str) -> None:
    """Validation helper for ``__post_init__``: ``key`` is the field's name in its own section
    (a cross-field check names the field it blames); raise a FieldError naming it."""
    if not cond:
        raise FieldError(key, message)
