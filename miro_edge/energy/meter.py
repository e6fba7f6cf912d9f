"""The power-meter interface and its sampler thread.

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
from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Iterator, List, Optional, Tuple

from miro_edge.energy.records import MEASURED, MeterStateError, PowerSample, SensorLostError
from miro_edge.energy.window import Window
from miro_edge.energy.work import WorkCounter
from miro_edge.errors import InputError
from miro_edge.utils.registry import Registry

logger = logging.getLogger(__name__)

#: Name -> PowerMeter subclass. Filled by the backend modules imported by ``miro_edge.energy``.
METERS: Registry[PowerMeter] = Registry("power meter")

Clock = Callable[[], float]


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
            raise InputError(f"interval_s must be > 0, got {interval_s!r}")
        if keep_samples < 1:
            raise InputError(f"keep_samples must be >= 1, got {keep_samples!r}")
        self.interval_s = interval
        self.clock = clock
        self.background = background
        self.keep_samples = keep_samples
        self.max_read_errors = max_read_errors
        self.total_rail: Optional[str] = None
        self._lock = threading.RLock()
        self._new_sample = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._windows: List[Window] = []
        self._latest: Optional[PowerSample] = None
        self._samples_taken = 0
        self._error: Optional[BaseException] = None
        self._is_open = False
        self.work = WorkCounter()

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

    def open(self) -> PowerMeter:
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
        self._thread = threading.Thread(target=target, name=f"miro-edge-{self.name}-{what}",
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

    def __enter__(self) -> PowerMeter:
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
                    self._fail(SensorLostError(f"{failures} consecutive read errors, last: {exc}"))
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
                self._fail(SensorLostError(f"{type(exc).__name__}: {exc}"))

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
            raise MeterStateError(f"power meter {self.source} is not open; use `with meter:` or "
                                  "meter.open()")
        if self._error is not None:
            raise SensorLostError(f"power source {self.source} was lost earlier ({self._error}); reopen the meter")

    def sample_now(self) -> PowerSample:
        """Read the sensor now (polling sources) or return the latest sample (streaming)."""
        self._check_usable()
        if self.streaming:
            latest = self.latest()
            if latest is None:
                raise MeterStateError(f"{self.source} has produced no sample yet")
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
            raise MeterStateError(f"window {w.name!r} is already running")
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
                raise MeterStateError(f"window {w.name!r} was never started")
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

    def add_work(self, sample_passes: int = 0, bytes_read: int = 0, flops: float = 0.0) -> None:
        """Report training work (see :class:`~miro_edge.energy.work.WorkCounter`)."""
        self.work.add(sample_passes, bytes_read, flops)

    def work_done(self) -> Tuple[int, int, float]:
        """Cumulative ``(sample_passes, bytes_read, flops)`` reported since the meter was created."""
        return self.work.done()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} source={self.source} label={self.label} interval_s={self.interval_s} open={self._is_open}>"


def _as_lost(exc: BaseException) -> SensorLostError:
    if isinstance(exc, SensorLostError):
        return exc
    return SensorLostError(f"reading the sensor failed: {type(exc).__name__}: {exc}")


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
        raise InputError(f"count must be >= 1, got {count}")
    if seconds is not None and seconds <= 0:
        raise InputError(f"seconds must be > 0, got {seconds}")
    wait = timeout_s if timeout_s is not None else 5 * meter.interval_s + 2.0
    deadline = time.monotonic() + seconds if seconds is not None else None
    last: Optional[float] = None
    produced = 0
    while True:
        budget = wait
        if deadline is not None:
            budget = min(budget, max(0.0, deadline - time.monotonic()))
        s = meter.wait_sample(last, budget)
        if s is None:
            if deadline is not None and time.monotonic() >= deadline:
                return
            raise MeterStateError(f"no power sample from {meter.source} within {wait:.1f} s")
        last = s.t_s
        if s.is_counter and not s.rails_w:
            continue  # a counter's first reading has no rate yet
        produced += 1
        yield s
        if count is not None and produced >= count:
            return
        if deadline is not None and time.monotonic() >= deadline:
            return
