"""One structured recorder: every result (accuracy, joules, chosen config, swap counts)
is one JSON line. Reports and plots read these files; nothing parses log text.
"""
import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Union

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

    def record(self, kind: str, **fields: Any) -> Dict[str, Any]:
        event = {"kind": kind, "time": time.time()}
        event.update(fields)
        with self._lock:
            self.events.append(event)
            if self._handle is not None:
                self._handle.write(json.dumps(event, default=_jsonable, sort_keys=True) + "\n")
                self._handle.flush()
                if self._fsync:
                    os.fsync(self._handle.fileno())
        return event

    def of_kind(self, kind: str) -> List[Dict[str, Any]]:
        return [e for e in self.events if e["kind"] == kind]

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


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "__dataclass_fields__"):
        import dataclasses
        return dataclasses.asdict(obj)
    return str(obj)
