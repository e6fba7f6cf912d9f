"""One structured recorder: every result (accuracy, joules, chosen config, swap counts)
is one JSON line. Reports and plots read these files; nothing parses log text.

What a line may hold is fixed by ``miro_edge.events``: ``Recorder.write`` takes one of its
dataclasses, ``read_typed`` gives them back. ``read_events`` yields the raw dicts (any kind).
"""
import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Set, Tuple, Type, TypeVar, Union, cast

from miro_edge.events import EVENT_TYPES, Event, kinds_of, parse_event, type_problems

E = TypeVar("E", bound=Event)

logger = logging.getLogger(__name__)


class Recorder:
    """Append-only JSONL writer. Each line is flushed and fsynced (results survive power cuts)."""

    def __init__(self, path: Optional[Union[str, Path]] = None, fsync: bool = True) -> None:
        self.path = Path(path) if path is not None else None
        self._fsync = fsync
        self._lock = threading.Lock()
        self._handle = None
        self.events: List[Dict[str, Any]] = []
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = open(str(self.path), "a")

    def write(self, event: Event) -> Dict[str, Any]:
        """Append one event (a ``miro_edge.events`` dataclass) as ``{"kind", "time", **fields}``.

        A value the results file cannot hold as its declared type is a ``TypeError`` here, at the
        writer, not a line readers later reject. Returns the line as a reader will decode it."""
        cls = type(event)
        if not isinstance(event, Event) or EVENT_TYPES.get(cls.KIND) is not cls:
            raise TypeError(f"Recorder.write takes a registered miro_edge.events type, got {event!r}")
        line = {"kind": cls.KIND, "time": time.time()}
        line.update(event.fields())
        text = json.dumps(line, default=_jsonable, sort_keys=True)
        decoded = json.loads(text)
        problems = type_problems(cls, decoded)
        if problems:
            raise TypeError("{} event: {}".format(cls.KIND, "; ".join(problems)))
        with self._lock:
            self.events.append(decoded)
            if self._handle is not None:
                self._handle.write(text + "\n")
                self._handle.flush()
                if self._fsync:
                    os.fsync(self._handle.fileno())
        return decoded

    def of_kind(self, kind: Union[str, Type[Event]]) -> List[Dict[str, Any]]:
        """The lines written so far of one kind (a kind this version declares), as dicts."""
        name = kind if isinstance(kind, str) else kind.KIND
        if name not in EVENT_TYPES:
            raise KeyError(f"unknown event kind {name!r}; miro_edge.events declares {', '.join(sorted(EVENT_TYPES))}")
        return [e for e in self.events if e["kind"] == name]

    def of_type(self, cls: Type[E]) -> List[E]:
        """The events written so far of one type, as dataclasses."""
        return [cast(E, parse_event(e)) for e in self.of_kind(cls)]

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __enter__(self) -> "Recorder":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_events(path: Union[str, Path]) -> Iterator[Dict[str, Any]]:
    """Read a results file; a torn last line (power cut mid-write) is skipped."""
    with open(str(path)) as handle:
        for number, line in enumerate(handle, 1):
            line = line.strip()
            if not line:
                continue
            try:
                yield json.loads(line)
            except ValueError:
                logger.warning("%s:%d: skipping unreadable line (torn write?)", path, number)


def read_timed(path: Union[str, Path], *kinds: Type[E]) -> Iterator[Tuple[float, E]]:
    """``(time, event)`` for every line of the given types (every known type when none are given).

    A kind this version does not know (a newer miro_edge wrote it) is skipped with one warning per
    kind; a known kind whose fields do not fit raises ``InputError`` naming the kind and field."""
    wanted = kinds_of(*kinds)
    warned: Set[str] = set()
    for line in read_events(path):
        kind = line.get("kind") if isinstance(line, dict) else None
        if not isinstance(kind, str) or kind not in EVENT_TYPES:
            shown = str(kind)
            if shown not in warned:
                warned.add(shown)
                logger.warning("%s: skipping events of kind %r, unknown to this miro_edge version (a newer one "
                               "wrote them?)", path, kind)
            continue
        if kind in wanted:
            stamp = line.get("time")
            yield (float(stamp) if isinstance(stamp, (int, float)) else float("nan")), cast(E, parse_event(line))


def read_typed(path: Union[str, Path], *kinds: Type[E]) -> Iterator[E]:
    """The events of the given types in a results file, as dataclasses, in file order."""
    for _, event in read_timed(path, *kinds):
        yield event


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "__dataclass_fields__"):
        import dataclasses
        return dataclasses.asdict(obj)
    return str(obj)
