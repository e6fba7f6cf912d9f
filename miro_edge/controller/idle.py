"""Idle windows: the controller profiles and trains only when the device can spare it.

Training competes with the live inference path for the GPU, memory bandwidth and the
battery. ``IdlePolicy`` decides from a resource snapshot (live load, external power) and the
local time whether training may run now; ``IdleGate`` is what the training loop calls at
every batch boundary: it returns at once when allowed, else blocks (sleeping, never spinning)
until allowed, stopped or timed out.
"""
import datetime
import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Callable, Optional, Tuple, Union

from miro_edge.config import field, require
from miro_edge.errors import ConfigError

try:  # Protocol is in typing from 3.8
    from typing import Protocol
except ImportError:  # pragma: no cover
    from typing_extensions import Protocol  # type: ignore

logger = logging.getLogger(__name__)


class LoadSnapshot(Protocol):
    """What the policy reads; ``miro_edge.device.resources.ResourceSnapshot`` provides it."""

    @property
    def live_load(self) -> float: ...

    @property
    def on_external_power(self) -> bool: ...


def parse_time_window(text: str) -> Tuple[datetime.time, datetime.time]:
    """Parse ``"HH:MM-HH:MM"`` (local time; the end is exclusive; may cross midnight)."""
    parts = text.split("-")
    if len(parts) != 2:
        raise ConfigError(f"idle.time_window: expected 'HH:MM-HH:MM' (e.g. '01:00-05:00'), got {text!r}")
    bounds = []
    for part in parts:
        try:
            bounds.append(datetime.datetime.strptime(part.strip(), "%H:%M").time())
        except ValueError:
            raise ConfigError(f"idle.time_window: {part!r} is not a time HH:MM in {text!r}") from None
    if bounds[0] == bounds[1]:
        raise ConfigError(f"idle.time_window: start equals end in {text!r}; leave time_window unset to allow "
                          "any time of day")
    return bounds[0], bounds[1]


def in_window(now: datetime.time, start: datetime.time, end: datetime.time) -> bool:
    """Whether ``now`` is in ``[start, end)``; a window with start > end crosses midnight."""
    if start < end:
        return start <= now < end
    return now >= start or now < end


@dataclass(frozen=True)
class IdlePolicyConfig:
    """When training may run. All set conditions must hold."""

    max_live_load: float = field(0.2, help="train only while the live path's load (0..1) is at or below this")
    require_external_power: bool = field(False, help="train only on external power, never on battery")
    time_window: Optional[str] = field(None, help="local daily window 'HH:MM-HH:MM' (may cross midnight); "
                                                  "unset: any time")

    def __post_init__(self) -> None:
        require(0.0 <= self.max_live_load <= 1.0, "max_live_load",
                f"must be in [0, 1], got {self.max_live_load}")
        if self.time_window is not None:
            parse_time_window(self.time_window)


@dataclass(frozen=True)
class Decision:
    """Whether training may run now, and a sentence saying why (or why not)."""

    allowed: bool
    reason: str


def _now_local() -> datetime.datetime:
    return datetime.datetime.now()


class IdlePolicy:
    """Evaluates the idle conditions; the clock is injectable so tests need no real time."""

    def __init__(self, config: IdlePolicyConfig = IdlePolicyConfig(),
                 clock: Callable[[], datetime.datetime] = _now_local) -> None:
        self.config = config
        self._clock = clock
        self._window = parse_time_window(config.time_window) if config.time_window else None

    def allows(self, snapshot: LoadSnapshot,
               now: Optional[Union[datetime.datetime, datetime.time]] = None) -> Decision:
        """All unmet conditions are named in the reason, so a log line explains a long pause.

        ``now`` (local) defaults to the injected clock; it is read only when a time window is set.
        """
        cfg = self.config
        ok = []
        blocked = []
        load = getattr(snapshot, "live_load", None)
        if load is None or not math.isfinite(load):
            blocked.append(f"live load unknown ({load!r})")
        elif load <= cfg.max_live_load:
            ok.append(f"live load {load:.2f} <= {cfg.max_live_load:.2f}")
        else:
            blocked.append(f"live load {load:.2f} > {cfg.max_live_load:.2f}")
        if cfg.require_external_power:
            power = getattr(snapshot, "on_external_power", None)
            if power is True:
                ok.append("on external power")
            elif power is None:
                blocked.append("power source unknown")
            else:
                blocked.append("on battery")
        if self._window is not None:
            moment = now if now is not None else self._clock()
            t = moment.time() if isinstance(moment, datetime.datetime) else moment
            where = "{} {} {}".format(t.strftime("%H:%M"), "inside" if in_window(t, *self._window) else "outside",
                                      cfg.time_window)
            (ok if in_window(t, *self._window) else blocked).append(where)
        if blocked:
            return Decision(False, "training paused: " + "; ".join(blocked))
        return Decision(True, "training allowed: " + "; ".join(ok))


@dataclass(frozen=True)
class GateResult:
    """How a ``wait_until_allowed`` call ended."""

    allowed: bool
    waited_s: float
    polls: int
    reason: str


class IdleGate:
    """Blocks the training loop at a batch boundary until the idle policy allows training.

    ``snapshot_fn`` returns any object with ``live_load`` and ``on_external_power`` (e.g.
    ``ResourceMonitor.snapshot``). ``pauses`` counts calls that had to wait; ``paused_s`` sums
    their waiting time. Waiting uses ``Event.wait``, so a stop request ends it at once.
    """

    def __init__(self, policy: IdlePolicy, snapshot_fn: Callable[[], LoadSnapshot],
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self._snapshot = snapshot_fn
        self._monotonic = monotonic
        self.pauses = 0
        self.paused_s = 0.0
        self.last_decision: Optional[Decision] = None

    def check(self) -> Decision:
        """One non-blocking evaluation of the policy on a fresh snapshot."""
        decision = self.policy.allows(self._snapshot())
        self.last_decision = decision
        return decision

    def wait_until_allowed(self, stop_event: Optional[threading.Event] = None, poll_s: float = 5.0,
                           timeout_s: Optional[float] = None) -> GateResult:
        """Return when training is allowed (``allowed=True``), or on stop or timeout (``False``).

        A call with neither ``stop_event`` nor ``timeout_s`` could block forever and is refused.
        """
        if poll_s <= 0:
            raise ConfigError(f"poll_s must be > 0, got {poll_s}")
        if stop_event is None and timeout_s is None:
            raise ConfigError("wait_until_allowed needs a stop_event or a timeout_s; otherwise it could "
                              "block forever")
        if timeout_s is not None and timeout_s < 0:
            raise ConfigError(f"timeout_s must be >= 0, got {timeout_s}")
        event = stop_event if stop_event is not None else threading.Event()
        start = self._monotonic()
        polls = 1
        decision = self.check()
        if decision.allowed:
            return GateResult(True, 0.0, polls, decision.reason)
        self.pauses += 1
        logger.info("%s", decision.reason)
        try:
            while True:
                if event.is_set():
                    return GateResult(False, self._monotonic() - start, polls,
                                      f"stopped while waiting ({decision.reason})")
                elapsed = self._monotonic() - start
                if timeout_s is not None and elapsed >= timeout_s:
                    return GateResult(False, elapsed, polls,
                                      f"timed out after {elapsed:.1f} s ({decision.reason})")
                wait = poll_s if timeout_s is None else min(poll_s, max(0.0, timeout_s - elapsed))
                if event.wait(wait):
                    continue  # stop requested: reported at the top of the loop
                polls += 1
                decision = self.check()
                if decision.allowed:
                    waited = self._monotonic() - start
                    logger.info("%s after %.1f s paused", decision.reason, waited)
                    return GateResult(True, waited, polls, decision.reason)
        finally:
            self.paused_s += self._monotonic() - start
