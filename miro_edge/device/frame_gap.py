"""Start background work in the gaps between live frames.

A paced live loop (a camera, a file at its frame rate) runs frame ``k`` at ``last_due_s + k *
period_s`` and is busy for about ``frame_s`` after each due time. The serving process publishes
that schedule with its load (``LoadFile``); the update daemon, in another process, starts each
training batch only where the batch, as long as the recent ones took, ends before the next frame
is due. Kernel priorities (niceness, SCHED_IDLE) decide who runs on a contended core; this also
keeps the two apart when they run on different cores but share caches, memory bandwidth or (on a
virtual machine) a physical core.
"""
import math
import time
from dataclasses import dataclass
from typing import Callable, Optional, Protocol


@dataclass(frozen=True)
class FrameSchedule:
    """The live loop's frame timing, on the system-wide monotonic clock (``time.monotonic``)."""

    period_s: float
    last_due_s: float  # the due time of a recent frame
    frame_s: float  # p90 time from a frame's due time to its prediction

    def wait_s(self, now: float, need_s: float, margin_s: float = 0.001) -> float:
        """Seconds from ``now`` until work of ``need_s`` can start without overlapping a frame's
        window ``[due, due + frame_s + margin_s]``. Work that cannot fit in one gap starts right
        after a frame (so only its tail overlaps the next one)."""
        busy = self.frame_s + margin_s
        gap = self.period_s - busy
        phase = (now - self.last_due_s) % self.period_s  # time since the last due frame
        if phase < busy:  # inside a frame's window: start when it ends
            return busy - phase
        if need_s <= gap and phase + need_s > self.period_s - margin_s:  # would run into the next frame
            return self.period_s - phase + busy
        return 0.0


class ScheduleReader(Protocol):
    def schedule(self) -> Optional[FrameSchedule]: ...


class FrameGap:
    """Waits (at most about one frame period per call) until work of a given length fits between
    two frames of the schedule ``reader`` publishes; no schedule (no server, a stale one, an
    unpaced source) means no wait. The schedule is re-read at most every ``refresh_s``."""

    def __init__(self, reader: ScheduleReader, margin_s: float = 0.001, refresh_s: float = 0.5,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        self.reader = reader
        self.margin_s = margin_s
        self.refresh_s = refresh_s
        self.clock = clock
        self.sleep = sleep
        self.waits = 0
        self.waited_s = 0.0
        self._schedule: Optional[FrameSchedule] = None
        self._read_at = -math.inf

    def _current(self, now: float) -> Optional[FrameSchedule]:
        if now - self._read_at >= self.refresh_s:
            self._schedule, self._read_at = self.reader.schedule(), now
        return self._schedule

    def wait(self, need_s: float) -> float:
        """Sleep until ``need_s`` of work fits before the next frame; return the seconds slept."""
        now = self.clock()
        schedule = self._current(now)
        if schedule is None or schedule.period_s <= 0:
            return 0.0
        delay = min(schedule.wait_s(now, max(0.0, need_s), self.margin_s), schedule.period_s + schedule.frame_s)
        if delay > 0:
            self.sleep(delay)
            self.waits += 1
            self.waited_s += delay
        return delay
