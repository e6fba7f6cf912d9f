"""The live path's load as a number in [0, 1]: the inference loop sets it, the idle policy reads it,
in one process (:class:`LoadGauge`) or across processes (:class:`LoadFile`)."""
import dataclasses
import json
import math
import os
import threading
import time
from pathlib import Path
from typing import Any, Dict, Optional, Protocol

from miro_edge.device.frame_gap import FrameSchedule
from miro_edge.errors import InputError
from miro_edge.utils.atomic import atomic_write_json


class LoadReader(Protocol):
    """What reads a live load: a ``LoadGauge`` in this process, or a ``LoadFile`` across processes."""

    def get(self) -> float: ...


class LoadGauge:
    """A thread-safe number in [0, 1] the live inference loop publishes (0 = idle, 1 = saturated).

    E.g. the fraction of each frame period spent in inference, or queue depth / capacity.
    """

    def __init__(self, value: float = 0.0) -> None:
        self._lock = threading.Lock()
        self._value = 0.0
        self._updated_s: Optional[float] = None
        if value:
            self.set(value)

    def set(self, value: float) -> None:
        value = float(value)
        if math.isnan(value) or value < 0.0:
            raise InputError(f"live load must be a number in [0, 1], got {value!r}")
        with self._lock:
            self._value = min(1.0, value)
            self._updated_s = time.monotonic()

    def get(self) -> float:
        with self._lock:
            return self._value

    @property
    def updated_s(self) -> Optional[float]:
        """Monotonic time of the last ``set`` (None if never set)."""
        with self._lock:
            return self._updated_s


class LoadFile:
    """The live load published across processes: the serving process writes a small JSON file
    (atomically, at most every ``every_s``), the update cycle's idle policy reads it.

    A file older than ``stale_s`` (a crashed or stopped server) reads as idle, so training is never
    blocked forever by a process that is gone.
    """

    def __init__(self, path: "os.PathLike[str]", every_s: float = 0.5, stale_s: float = 10.0) -> None:
        self.path = Path(path)
        self.every_s = float(every_s)
        self.stale_s = float(stale_s)
        self._last_write = 0.0

    def publish(self, busy: float, fps: float, force: bool = False,
                schedule: Optional[FrameSchedule] = None) -> bool:
        """Write the load (and the frame ``schedule`` of a paced loop, for ``FrameGap``) if
        ``every_s`` passed since the last write (or ``force``); return whether it wrote."""
        now = time.time()
        if not force and now - self._last_write < self.every_s:
            return False
        self._last_write = now
        payload: Dict[str, Any] = {"busy": max(0.0, min(1.0, float(busy))), "fps": float(fps), "pid": os.getpid(),
                                   "time": now}
        if schedule is not None:
            payload["schedule"] = dataclasses.asdict(schedule)
        atomic_write_json(self.path, payload, perms=0o644)
        return True

    def read(self) -> Dict[str, Any]:
        """``{"busy", "fps", "pid", "time", "age_s", "stale", "schedule"}``; an absent or stale file is
        idle (busy 0); ``schedule`` is the raw frame schedule a paced loop wrote, or None."""
        try:
            data = json.loads(self.path.read_text())
            age = time.time() - float(data["time"])
        except (OSError, ValueError, KeyError, TypeError):
            return {"busy": 0.0, "fps": 0.0, "pid": None, "time": None, "age_s": None, "stale": True, "schedule": None}
        stale = age > self.stale_s
        return {"busy": 0.0 if stale else float(data.get("busy", 0.0)), "fps": float(data.get("fps", 0.0)),
                "pid": data.get("pid"), "time": data["time"], "age_s": age, "stale": stale,
                "schedule": data.get("schedule")}

    def busy(self) -> float:
        return float(self.read()["busy"])

    def schedule(self) -> Optional[FrameSchedule]:
        """The live loop's frame schedule, or None (no server, a stale file, an unpaced source)."""
        data = self.read()
        raw = data["schedule"]
        if data["stale"] or not raw:
            return None
        try:
            return FrameSchedule(float(raw["period_s"]), float(raw["last_due_s"]), float(raw["frame_s"]))
        except (ValueError, KeyError, TypeError):
            return None

    get = busy  # reads like a LoadGauge, so ResourceMonitor(gauge=LoadFile(...)) sees another process's load

    def clear(self) -> None:
        try:
            self.path.unlink()
        except OSError:
            pass
