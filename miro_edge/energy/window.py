"""A named measurement window over a running meter: integrates the samples between its edges."""
import collections
import logging
from typing import TYPE_CHECKING, Any, Deque, Optional, Tuple

from miro_edge.energy.integrate import Integrator
from miro_edge.energy.records import MeterStateError, PowerSample, SensorLostError, WindowResult
from miro_edge.errors import MiroEdgeError

if TYPE_CHECKING:  # the meter owns its windows; a window only calls back into it
    from miro_edge.energy.meter import PowerMeter

logger = logging.getLogger(__name__)


class Window:
    """A named measurement window; use ``with meter.window("trial-3") as w:`` then ``w.result``.

    While it runs, ``samples`` holds the most recent samples it received. If the sensor is lost,
    leaving the block raises :class:`SensorLostError` (kept in ``error``; its ``partial`` and
    ``samples`` hold what was measured until then) and ``result`` re-raises it.
    """

    def __init__(self, meter: "PowerMeter", name: str, keep_samples: int) -> None:
        self.meter = meter
        self.name = name
        self.samples: Deque[PowerSample] = collections.deque(maxlen=keep_samples)
        self.error: Optional[SensorLostError] = None
        self._integrator: Optional[Integrator] = None
        self._result: Optional[WindowResult] = None
        self._work_start: Tuple[int, int, float] = (0, 0, 0.0)
        self.running = False

    # called by the meter under its lock
    def _begin(self, t0_s: float, anchor: Optional[PowerSample], work: Tuple[int, int, float]) -> None:
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

    def _finish(self, t1_s: float, work: Tuple[int, int, float], complete: bool = True) -> WindowResult:
        assert self._integrator is not None
        self.running = False
        result = self._integrator.result(
            t1_s, self.name, self.meter.source, self.meter.label, self.meter.total_rail,
            sample_passes=work[0] - self._work_start[0], bytes_read=work[1] - self._work_start[1],
            complete=complete, flops=work[2] - self._work_start[2])
        if complete:
            self._result = result
        return result

    def _fail(self, cause: BaseException, work: Tuple[int, int, float]) -> None:
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
                f", partial energy {partial.energy_j:.3f} J over {partial.duration_s:.3f} s"
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
            raise MeterStateError(f"window {self.name!r} is still running or never started; read .result after "
                                  "the `with` block")
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
