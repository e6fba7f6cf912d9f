"""The power-meter interface: samples, measurement windows, integration and the sampler thread.

A :class:`PowerMeter` owns one power source. Used as a context manager it opens the source and
starts a background sampler (10 Hz by default); :meth:`PowerMeter.window` opens a named
measurement window whose :class:`WindowResult` holds energy (J, trapezoidal integration over the
monotonic clock), mean and peak power (W), a per-rail breakdown, the sample count, the source name
and a ``measured``/``estimated`` label.

Two kinds of sources exist:

* *power* sources (INA3221, tegrastats, jtop) report instantaneous power; energy is the
  trapezoidal integral of the piecewise-linear power curve through the samples;
* *counter* sources (NVML, RAPL, the calibrated model) report cumulative energy; energy is the
  counter difference, interpolated linearly in time at window edges.

Backends subclass :class:`PowerMeter` in their own module and register with ``METERS``.
A polling backend implements ``_poll(t_s)``; a streaming backend (a subprocess or a client
library with its own thread) sets ``streaming = True`` and implements ``_run_stream()``.
"""
import collections
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Deque, Dict, Iterator, List, Mapping, Optional, Tuple

from miro_edge.errors import HardwareUnavailableError, InputError, MiroEdgeError
from miro_edge.utils.registry import Registry

logger = logging.getLogger(__name__)

MEASURED = "measured"
ESTIMATED = "estimated"

#: Rails that carry the whole module/board input; the other rails are parts of it, never added.
TOTAL_RAIL_NAMES = ("VDD_IN", "POM_5V_IN")

#: Name -> PowerMeter subclass. Filled by the backend modules imported by ``miro_edge.energy``.
METERS = Registry("power meter")  # type: Registry[PowerMeter]

Clock = Callable[[], float]


# --------------------------------------------------------------------------- errors
class MeterUnavailableError(HardwareUnavailableError):
    """The requested power source does not exist or cannot be read on this device."""


class MeterStateError(MiroEdgeError, RuntimeError):
    """A meter or window was used out of order (e.g. a window on a closed meter)."""


class SensorLostError(HardwareUnavailableError):
    """The power sensor disappeared or stopped answering while the meter was running.

    ``samples`` holds the samples the window received before the loss (most recent
    ``keep_samples``), ``partial`` the result integrated up to the last good sample
    (``complete=False``), or ``None`` when no sample was taken.
    """

    def __init__(self, message: str, window: Optional[str] = None,
                 samples: Optional[List["PowerSample"]] = None,
                 partial: Optional["WindowResult"] = None) -> None:
        super().__init__(message)
        self.window = window
        self.samples = list(samples or [])
        self.partial = partial


# --------------------------------------------------------------------------- records
@dataclass(frozen=True)
class PowerSample:
    """One reading. ``t_s`` is on the meter's monotonic clock.

    Power sources fill ``total_w`` and ``rails_w``. Counter sources also fill ``total_j`` and
    ``rails_j`` (cumulative energy since the meter opened); their ``*_w`` fields are the mean
    power since the previous reading (0 for the first).
    """

    t_s: float
    total_w: float
    rails_w: Mapping[str, float] = field(default_factory=dict)
    total_j: Optional[float] = None
    rails_j: Optional[Mapping[str, float]] = None

    @property
    def is_counter(self) -> bool:
        return self.total_j is not None


@dataclass(frozen=True)
class Figure:
    """One number with its unit, its source and whether it was measured or estimated."""

    name: str
    value: float
    unit: str
    source: str
    label: str

    def __str__(self) -> str:
        return "{} {:.3f} {} ({}, {})".format(self.name, self.value, self.unit, self.source, self.label)


@dataclass(frozen=True)
class RailEnergy:
    """Energy of one rail over a window. Rails overlap (``VDD_IN`` contains the others)."""

    rail: str
    energy_j: float
    mean_w: float
    peak_w: float


@dataclass(frozen=True)
class WindowResult:
    """What one measurement window measured (or estimated).

    ``energy_j`` is the board total: the ``total_rail`` (``VDD_IN``) where the source has one,
    else the documented sum of the source's non-overlapping rails. ``label`` is ``measured`` or
    ``estimated``; ``source`` names the backend. ``complete`` is False for a partial result
    kept after a sensor loss. ``sample_passes``/``bytes_read`` are the work reported through
    :meth:`PowerMeter.add_work` during the window (used by :func:`~miro_edge.energy.model.calibrate`).
    """

    name: str
    source: str
    label: str
    energy_j: float
    duration_s: float
    mean_w: float
    peak_w: float
    sample_count: int
    rails: Mapping[str, RailEnergy]
    total_rail: Optional[str]
    start_s: float
    end_s: float
    sample_passes: int = 0
    bytes_read: int = 0
    complete: bool = True

    @property
    def measured(self) -> bool:
        return self.label == MEASURED

    def figures(self) -> List[Figure]:
        """The headline numbers, each with unit, source and label (for printing and reports)."""
        out = [Figure("energy", self.energy_j, "J", self.source, self.label),
               Figure("duration", self.duration_s, "s", self.source, self.label),
               Figure("mean power", self.mean_w, "W", self.source, self.label),
               Figure("peak power", self.peak_w, "W", self.source, self.label)]
        for rail in sorted(self.rails):
            out.append(Figure("energy[{}]".format(rail), self.rails[rail].energy_j, "J",
                              self.source, self.label))
        return out

    def to_dict(self) -> Dict[str, Any]:
        """A flat, JSON-ready record (units in the key names) for the recorder."""
        return {
            "window": self.name, "source": self.source, "label": self.label,
            "energy_j": self.energy_j, "duration_s": self.duration_s, "mean_w": self.mean_w,
            "peak_w": self.peak_w, "sample_count": self.sample_count,
            "total_rail": self.total_rail, "complete": self.complete,
            "sample_passes": self.sample_passes, "bytes_read": self.bytes_read,
            "rails": {name: {"energy_j": r.energy_j, "mean_w": r.mean_w, "peak_w": r.peak_w}
                      for name, r in sorted(self.rails.items())},
        }


# --------------------------------------------------------------------------- integration
class Integrator:
    """Integrates samples over ``[t0, t1]`` incrementally (constant memory).

    Feed samples in time order with :meth:`add`; samples before ``t0`` only anchor the curve.
    Between samples, power is linear (power sources) or constant (counter sources, the counter
    difference spread evenly). Before the first and after the last sample, power is held
    constant. :meth:`result` integrates up to ``t1``.
    """

    def __init__(self, t0_s: float) -> None:
        self.t0_s = t0_s
        self.prev = None  # type: Optional[PowerSample]
        self.last_t_s = t0_s
        self.energy_j = 0.0
        self.rails_j = collections.OrderedDict()  # type: Dict[str, float]
        self.peak_w = None  # type: Optional[float]
        self.rails_peak_w = {}  # type: Dict[str, float]
        self.count = 0
        self._head_s = 0.0  # counter sources: time between t0 and the first sample, unresolved
        self._last_rate = None  # type: Optional[Tuple[float, Dict[str, float]]]

    def _peak(self, total_w: float, rails_w: Mapping[str, float]) -> None:
        self.peak_w = total_w if self.peak_w is None else max(self.peak_w, total_w)
        for name, value in rails_w.items():
            self.rails_peak_w[name] = max(self.rails_peak_w.get(name, value), value)

    def _add_energy(self, total_j: float, rails_j: Mapping[str, float]) -> None:
        self.energy_j += total_j
        for name, value in rails_j.items():
            self.rails_j[name] = self.rails_j.get(name, 0.0) + value

    def _hold(self, total_w: float, rails_w: Mapping[str, float], dt_s: float) -> None:
        if dt_s > 0:
            self._add_energy(total_w * dt_s, {k: v * dt_s for k, v in rails_w.items()})

    def add(self, s: PowerSample, real: bool = True) -> None:
        """Add the next sample; ``real=False`` for an interpolated edge point (not counted)."""
        prev = self.prev
        self.prev = s
        if s.t_s < self.t0_s:
            return  # anchor only
        if real:
            self.count += 1
        self.last_t_s = s.t_s
        if s.is_counter:
            self._add_counter(prev, s)
        else:
            self._add_power(prev, s)

    def _add_power(self, prev: Optional[PowerSample], s: PowerSample) -> None:
        if prev is None:
            self._hold(s.total_w, s.rails_w, s.t_s - self.t0_s)
            self._peak(s.total_w, s.rails_w)
            return
        dt = s.t_s - prev.t_s
        if dt <= 0:
            self._peak(s.total_w, s.rails_w)
            return
        lo = max(prev.t_s, self.t0_s)
        f = (lo - prev.t_s) / dt

        def at(a: float, b: float) -> float:
            return a + (b - a) * f

        lo_total = at(prev.total_w, s.total_w)
        lo_rails = {k: at(prev.rails_w.get(k, v), v) for k, v in s.rails_w.items()}
        span = s.t_s - lo
        self._add_energy((lo_total + s.total_w) / 2.0 * span,
                         {k: (lo_rails[k] + v) / 2.0 * span for k, v in s.rails_w.items()})
        if prev.t_s < self.t0_s:  # interpolated value at the window start
            self._peak(lo_total, lo_rails)
        self._peak(s.total_w, s.rails_w)

    def _add_counter(self, prev: Optional[PowerSample], s: PowerSample) -> None:
        if prev is None or prev.total_j is None:
            self._head_s += s.t_s - self.t0_s
            return
        dt = s.t_s - prev.t_s
        if dt <= 0:
            return
        rate = (float(s.total_j) - float(prev.total_j)) / dt  # type: ignore[arg-type]
        rails_now = s.rails_j or {}
        rails_before = prev.rails_j or {}
        rails_rate = {k: (v - rails_before.get(k, v)) / dt for k, v in rails_now.items()}
        lo = max(prev.t_s, self.t0_s)
        self._hold(rate, rails_rate, s.t_s - lo)
        if self._head_s > 0:  # first rate known: charge the time before the first sample
            self._hold(rate, rails_rate, self._head_s)
            self._head_s = 0.0
        self._last_rate = (rate, rails_rate)
        self._peak(rate, rails_rate)

    def result(self, t1_s: float, name: str, source: str, label: str,
               total_rail: Optional[str], sample_passes: int = 0, bytes_read: int = 0,
               complete: bool = True) -> WindowResult:
        """The integral over ``[t0, t1]``; does not change the integrator."""
        energy = self.energy_j
        rails = dict(self.rails_j)
        prev = self.prev
        tail = t1_s - self.last_t_s if prev is not None and prev.t_s >= self.t0_s else t1_s - self.t0_s
        if prev is not None and tail > 0:
            if prev.is_counter:
                if self._last_rate is not None:
                    rate, rails_rate = self._last_rate
                    energy += rate * tail
                    for k, v in rails_rate.items():
                        rails[k] = rails.get(k, 0.0) + v * tail
            else:  # hold the last power value to the end
                energy += prev.total_w * tail
                for k, v in prev.rails_w.items():
                    rails[k] = rails.get(k, 0.0) + v * tail
        duration = max(0.0, t1_s - self.t0_s)
        peak = self.peak_w if self.peak_w is not None else 0.0
        if self.count == 0 and prev is not None and not prev.is_counter:
            peak = prev.total_w
        rail_results = collections.OrderedDict()  # type: Dict[str, RailEnergy]
        for rail in sorted(rails):
            joules = rails[rail]
            rail_results[rail] = RailEnergy(
                rail, joules, joules / duration if duration > 0 else 0.0,
                self.rails_peak_w.get(rail, 0.0))
        return WindowResult(
            name=name, source=source, label=label, energy_j=energy, duration_s=duration,
            mean_w=energy / duration if duration > 0 else 0.0, peak_w=peak,
            sample_count=self.count, rails=rail_results, total_rail=total_rail,
            start_s=self.t0_s, end_s=t1_s, sample_passes=sample_passes,
            bytes_read=bytes_read, complete=complete)


def integrate(samples: List[PowerSample], t0_s: float, t1_s: float, source: str = "samples",
              label: str = MEASURED, total_rail: Optional[str] = None,
              name: str = "window") -> WindowResult:
    """Integrate time-ordered ``samples`` over ``[t0_s, t1_s]`` (same rules as windows)."""
    if t1_s < t0_s:
        raise InputError("integrate: t1_s ({}) is before t0_s ({})".format(t1_s, t0_s))
    acc = Integrator(t0_s)
    for s in samples:
        if s.t_s > t1_s:
            if acc.prev is not None and acc.prev.t_s < t1_s:
                acc.add(interpolate(acc.prev, s, t1_s), real=False)
            break
        acc.add(s)
    return acc.result(t1_s, name, source, label, total_rail)


def interpolate(a: PowerSample, b: PowerSample, t_s: float) -> PowerSample:
    """The sample at ``t_s`` between ``a`` and ``b``, linear in time (power and counters)."""
    dt = b.t_s - a.t_s
    f = (t_s - a.t_s) / dt if dt > 0 else 1.0

    def lin(x: float, y: float) -> float:
        return x + (y - x) * f

    rails_w = {k: lin(a.rails_w.get(k, v), v) for k, v in b.rails_w.items()}
    if a.total_j is None or b.total_j is None:
        return PowerSample(t_s, lin(a.total_w, b.total_w), rails_w)
    rails_j = {k: lin((a.rails_j or {}).get(k, v), v) for k, v in (b.rails_j or {}).items()}
    return PowerSample(t_s, b.total_w, dict(b.rails_w), total_j=lin(a.total_j, b.total_j), rails_j=rails_j)


def total_of(rails_w: Mapping[str, float]) -> Tuple[float, Optional[str]]:
    """Board total from rails: the input rail if present (never added to the others), else the sum."""
    for name in TOTAL_RAIL_NAMES:
        if name in rails_w:
            return rails_w[name], name
    return float(sum(rails_w.values())), None


# --------------------------------------------------------------------------- windows
class Window:
    """A named measurement window; use ``with meter.window("trial-3") as w:`` then ``w.result``.

    While it runs, ``samples`` holds the most recent samples it received. If the sensor is lost,
    leaving the block raises :class:`SensorLostError` (kept in ``error``; its ``partial`` and
    ``samples`` hold what was measured until then) and ``result`` re-raises it.
    """

    def __init__(self, meter: "PowerMeter", name: str, keep_samples: int) -> None:
        self.meter = meter
        self.name = name
        self.samples = collections.deque(maxlen=keep_samples)  # type: Deque[PowerSample]
        self.error = None  # type: Optional[SensorLostError]
        self._integrator = None  # type: Optional[Integrator]
        self._result = None  # type: Optional[WindowResult]
        self._work_start = (0, 0)
        self.running = False

    # called by the meter under its lock
    def _begin(self, t0_s: float, anchor: Optional[PowerSample], work: Tuple[int, int]) -> None:
        self._integrator = Integrator(t0_s)
        if anchor is not None:
            self._integrator.add(anchor)
            if anchor.t_s >= t0_s:
                self.samples.append(anchor)
        self._work_start = work
        self.running = True

    def _add(self, sample: PowerSample) -> None:
        assert self._integrator is not None
        self._integrator.add(sample)
        self.samples.append(sample)

    def _finish(self, t1_s: float, work: Tuple[int, int], complete: bool = True) -> WindowResult:
        assert self._integrator is not None
        self.running = False
        result = self._integrator.result(
            t1_s, self.name, self.meter.source, self.meter.label, self.meter.total_rail,
            sample_passes=work[0] - self._work_start[0], bytes_read=work[1] - self._work_start[1],
            complete=complete)
        if complete:
            self._result = result
        return result

    def _fail(self, cause: BaseException, work: Tuple[int, int]) -> None:
        integ = self._integrator
        partial = None
        if integ is not None and integ.count > 0:
            partial = self._finish(integ.last_t_s, work, complete=False)
        self.running = False
        kept = len(self.samples)
        self.error = SensorLostError(
            "power source {!r} was lost during window {!r} ({}); kept {} sample(s){}. Check that the "
            "sensor/driver is still present, then reopen the meter".format(
                self.meter.source, self.name, cause, kept,
                ", partial energy {:.3f} J over {:.3f} s".format(partial.energy_j, partial.duration_s)
                if partial is not None else ""),
            window=self.name, samples=list(self.samples), partial=partial)
        self.error.__cause__ = cause

    # public API
    def start(self) -> "Window":
        self.meter._begin_window(self)
        return self

    def stop(self) -> WindowResult:
        """End the window; returns the result or raises :class:`SensorLostError`."""
        self.meter._end_window(self)
        if self.error is not None:
            raise self.error
        assert self._result is not None
        return self._result

    @property
    def result(self) -> WindowResult:
        if self.error is not None:
            raise self.error
        if self._result is None:
            raise MeterStateError("window {!r} is still running or never started; read .result after "
                                  "the `with` block".format(self.name))
        return self._result

    def __enter__(self) -> "Window":
        return self.start()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.stop()
            return
        try:  # the body failed: end the window but let the body's exception through
            self.stop()
        except MiroEdgeError as inner:
            logger.warning("window %r also failed: %s", self.name, inner)


# --------------------------------------------------------------------------- the meter
class PowerMeter:
    """Base class of every power source. Subclasses set ``name``, ``label``, ``fidelity``.

    Args:
        interval_s: sampling period of the background sampler (None: the backend default).
        clock: monotonic clock in seconds (inject a fake one in tests).
        background: run the sampler thread; without it only window edges and
            :meth:`sample_now` read the sensor (polling sources only).
        keep_samples: how many recent samples each window keeps.
        max_read_errors: consecutive failed reads after which the sensor counts as lost.
    """

    name = "base"
    label = MEASURED
    fidelity = 0
    default_interval_s = 0.1
    streaming = False

    def __init__(self, interval_s: Optional[float] = None, clock: Clock = time.monotonic,
                 background: bool = True, keep_samples: int = 10000, max_read_errors: int = 3) -> None:
        interval = self.default_interval_s if interval_s is None else float(interval_s)
        if not interval > 0:
            raise InputError("interval_s must be > 0, got {!r}".format(interval_s))
        if keep_samples < 1:
            raise InputError("keep_samples must be >= 1, got {!r}".format(keep_samples))
        self.interval_s = interval
        self.clock = clock
        self.background = background
        self.keep_samples = keep_samples
        self.max_read_errors = max_read_errors
        self.total_rail = None  # type: Optional[str]
        self._lock = threading.RLock()
        self._new_sample = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._thread = None  # type: Optional[threading.Thread]
        self._windows = []  # type: List[Window]
        self._latest = None  # type: Optional[PowerSample]
        self._samples_taken = 0
        self._error = None  # type: Optional[BaseException]
        self._is_open = False
        self._work_lock = threading.Lock()
        self._sample_passes = 0
        self._bytes_read = 0

    # ---------------------------------------------------------------- backend hooks
    @classmethod
    def probe(cls, root: str = "/", **options: Any) -> Optional[str]:
        """None when this source is usable here, else the reason it is not (for auto-detection)."""
        return None

    @property
    def source(self) -> str:
        """The name every figure carries."""
        return self.name

    def rails(self) -> List[str]:
        """Rail names this source reports (known after open)."""
        return []

    def _open_source(self) -> None:
        """Acquire the sensor; raise MeterUnavailableError if it cannot be read."""

    def _close_source(self) -> None:
        """Release the sensor."""

    def _poll(self, t_s: float) -> PowerSample:
        """Read one sample now (polling sources). Raise SensorLostError if the sensor is gone;
        OSError/ValueError count as transient read errors."""
        raise NotImplementedError

    def _run_stream(self) -> None:
        """Streaming sources: loop until ``self._stop`` is set, calling ``self._publish``."""
        raise NotImplementedError

    def _interrupt_stream(self) -> None:
        """Streaming sources: unblock ``_run_stream`` promptly (e.g. terminate a subprocess)."""

    # ---------------------------------------------------------------- lifecycle
    @property
    def is_open(self) -> bool:
        return self._is_open

    def open(self) -> "PowerMeter":
        """Open the source and start the sampler; opening an open meter does nothing."""
        if self._is_open:
            return self
        self._stop.clear()
        self._error = None
        self._open_source()
        self._is_open = True
        try:
            if self.streaming:
                self._start_thread(self._stream_main, "stream")
            elif self.background:
                self._start_thread(self._poll_main, "sampler")
        except BaseException:
            self.close()
            raise
        logger.info("power meter %s opened (%s, every %.3f s)", self.source, self.label, self.interval_s)
        return self

    def _start_thread(self, target: Callable[[], None], what: str) -> None:
        self._thread = threading.Thread(target=target, name="miro-edge-{}-{}".format(self.name, what),
                                        daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the sampler (within one sample period) and release the source."""
        if not self._is_open:
            return
        self._stop.set()
        if self.streaming:
            self._interrupt_stream()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=max(5.0, 5 * self.interval_s))
            if thread.is_alive():
                logger.warning("power sampler thread of %s did not stop in time", self.source)
        self._thread = None
        with self._lock:
            windows = list(self._windows)
            self._windows = []
            for w in windows:
                w._fail(MeterStateError("meter closed while the window was open"), self.work_done())
            self._new_sample.notify_all()
        try:
            self._close_source()
        finally:
            self._is_open = False
        logger.info("power meter %s closed", self.source)

    def __enter__(self) -> "PowerMeter":
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------- sampling
    def _poll_main(self) -> None:
        failures = 0
        next_t = time.monotonic()
        while not self._stop.is_set():
            try:
                self._sample_and_publish()
                failures = 0
            except SensorLostError as exc:
                self._fail(exc)
                return
            except (OSError, ValueError) as exc:
                failures += 1
                logger.warning("power source %s: read failed (%d/%d): %s", self.source, failures,
                               self.max_read_errors, exc)
                if failures >= self.max_read_errors:
                    self._fail(SensorLostError("{} consecutive read errors, last: {}".format(failures, exc)))
                    return
            next_t += self.interval_s
            now = time.monotonic()
            if next_t < now:  # fell behind (slow read or suspended): do not burst to catch up
                next_t = now
            self._stop.wait(next_t - now)

    def _stream_main(self) -> None:
        try:
            self._run_stream()
        except SensorLostError as exc:
            if not self._stop.is_set():
                self._fail(exc)
        except Exception as exc:  # a client library failed: treat the source as lost
            if not self._stop.is_set():
                self._fail(SensorLostError("{}: {}".format(type(exc).__name__, exc)))

    def _sample_and_publish(self) -> PowerSample:
        with self._lock:
            sample = self._poll(self.clock())
            self._publish(sample)
            return sample

    def _publish(self, sample: PowerSample) -> None:
        """Hand a sample to every open window (thread-safe; streaming backends call this)."""
        with self._lock:
            self._latest = sample
            self._samples_taken += 1
            for w in self._windows:
                w._add(sample)
            self._new_sample.notify_all()

    def _fail(self, exc: BaseException) -> None:
        logger.error("power source %s lost: %s", self.source, exc)
        with self._lock:
            self._error = exc
            windows = list(self._windows)
            self._windows = []
            for w in windows:
                w._fail(exc, self.work_done())
            self._new_sample.notify_all()

    def _check_usable(self) -> None:
        if not self._is_open:
            raise MeterStateError("power meter {} is not open; use `with meter:` or "
                                  "meter.open()".format(self.source))
        if self._error is not None:
            raise SensorLostError("power source {} was lost earlier ({}); reopen the meter".format(
                self.source, self._error))

    def sample_now(self) -> PowerSample:
        """Read the sensor now (polling sources) or return the latest sample (streaming)."""
        self._check_usable()
        if self.streaming:
            latest = self.latest()
            if latest is None:
                raise MeterStateError("{} has produced no sample yet".format(self.source))
            return latest
        return self._poll_or_fail()

    def _poll_or_fail(self) -> PowerSample:
        """Poll and publish one sample; a failing sensor marks the meter lost (every open window
        fails with it) and raises ``SensorLostError``."""
        try:
            return self._sample_and_publish()
        except (SensorLostError, OSError, ValueError) as exc:
            lost = _as_lost(exc)
            self._fail(lost)
            if lost is exc:
                raise
            raise lost from exc

    def latest(self) -> Optional[PowerSample]:
        with self._lock:
            return self._latest

    @property
    def samples_taken(self) -> int:
        return self._samples_taken

    def wait_sample(self, after_s: Optional[float], timeout_s: float) -> Optional[PowerSample]:
        """Block until a sample newer than ``after_s`` exists (None: any); None on timeout."""
        deadline = time.monotonic() + timeout_s
        with self._new_sample:
            while True:
                if self._error is not None:
                    self._check_usable()
                s = self._latest
                if s is not None and (after_s is None or s.t_s > after_s):
                    return s
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._is_open:
                    return None
                self._new_sample.wait(remaining)

    # ---------------------------------------------------------------- windows
    def window(self, name: str) -> Window:
        """A named measurement window (start it with ``with``)."""
        return Window(self, name, self.keep_samples)

    def _begin_window(self, w: Window) -> None:
        if w.running:
            raise MeterStateError("window {!r} is already running".format(w.name))
        self._check_usable()
        with self._lock:
            if self.streaming:
                w._begin(self.clock(), self._latest, self.work_done())
            else:
                sample = self._poll_or_fail()
                w._begin(sample.t_s, sample, self.work_done())
            self._windows.append(w)

    def _end_window(self, w: Window) -> None:
        with self._lock:
            if w not in self._windows:
                if w.error is not None or w._result is not None:
                    return  # already ended (failed, or stopped twice)
                raise MeterStateError("window {!r} was never started".format(w.name))
            if self.streaming:
                t1 = self.clock()
            else:
                try:
                    t1 = self._sample_and_publish().t_s
                except (SensorLostError, OSError, ValueError) as exc:
                    self._fail(_as_lost(exc))
                    return
            self._windows.remove(w)
            w._finish(t1, self.work_done())

    # ---------------------------------------------------------------- work counters
    def add_work(self, sample_passes: int = 0, bytes_read: int = 0) -> None:
        """Report training work (thread-safe, cheap). The trainer calls it with the samples that
        went through forward+backward; the swap worker and loaders with bytes read from the store.

        Measured meters only record it (windows report it, for calibration); the calibrated
        model turns it into estimated energy.
        """
        if sample_passes < 0 or bytes_read < 0:
            raise InputError("add_work: counts must be >= 0, got sample_passes={}, bytes_read={}".format(
                sample_passes, bytes_read))
        with self._work_lock:
            self._sample_passes += int(sample_passes)
            self._bytes_read += int(bytes_read)

    def work_done(self) -> Tuple[int, int]:
        """Cumulative ``(sample_passes, bytes_read)`` reported since the meter was created."""
        with self._work_lock:
            return self._sample_passes, self._bytes_read

    def __repr__(self) -> str:
        return "<{} source={} label={} interval_s={} open={}>".format(
            type(self).__name__, self.source, self.label, self.interval_s, self._is_open)


def _as_lost(exc: BaseException) -> SensorLostError:
    if isinstance(exc, SensorLostError):
        return exc
    return SensorLostError("reading the sensor failed: {}: {}".format(type(exc).__name__, exc))


def watch(meter: PowerMeter, count: Optional[int] = None, seconds: Optional[float] = None,
          timeout_s: Optional[float] = None) -> Iterator[PowerSample]:
    """Yield each new sample of an open meter until ``count`` samples or ``seconds`` elapsed.

    At least one of ``count``/``seconds`` is required so the loop always ends. Raises
    SensorLostError if the source is lost and MeterStateError if no sample arrives within
    ``timeout_s`` (default: 5 periods + 2 s).
    """
    if count is None and seconds is None:
        raise InputError("watch needs count or seconds so that it terminates")
    if count is not None and count < 1:
        raise InputError("count must be >= 1, got {}".format(count))
    if seconds is not None and seconds <= 0:
        raise InputError("seconds must be > 0, got {}".format(seconds))
    wait = timeout_s if timeout_s is not None else 5 * meter.interval_s + 2.0
    deadline = time.monotonic() + seconds if seconds is not None else None
    last = None  # type: Optional[float]
    produced = 0
    while True:
        budget = wait
        if deadline is not None:
            budget = min(budget, max(0.0, deadline - time.monotonic()))
        s = meter.wait_sample(last, budget)
        if s is None:
            if deadline is not None and time.monotonic() >= deadline:
                return
            raise MeterStateError("no power sample from {} within {:.1f} s".format(meter.source, wait))
        last = s.t_s
        if s.is_counter and not s.rails_w:
            continue  # a counter's first reading has no rate yet
        produced += 1
        yield s
        if count is not None and produced >= count:
            return
        if deadline is not None and time.monotonic() >= deadline:
            return
