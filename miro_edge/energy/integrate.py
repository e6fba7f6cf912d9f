"""Energy from samples: trapezoidal integration of power curves, counter differences
interpolated at window edges, and which rail is the board's total."""
import collections
import logging
from typing import Dict, List, Mapping, Optional, Tuple

from miro_edge.energy.records import MEASURED, TOTAL_RAIL_NAMES, PowerSample, RailEnergy, WindowResult
from miro_edge.errors import InputError

logger = logging.getLogger(__name__)


class Integrator:
    """Integrates samples over ``[t0, t1]`` incrementally (constant memory).

    Feed samples in time order with :meth:`add`; samples before ``t0`` only anchor the curve.
    Between samples, power is linear (power sources) or constant (counter sources, the counter
    difference spread evenly). Before the first and after the last sample, power is held
    constant. :meth:`result` integrates up to ``t1``.
    """

    def __init__(self, t0_s: float) -> None:
        self.t0_s = t0_s
        self.prev: Optional[PowerSample] = None
        self.last_t_s = t0_s
        self.energy_j = 0.0
        self.rails_j: Dict[str, float] = collections.OrderedDict()
        self.peak_w: Optional[float] = None
        self.rails_peak_w: Dict[str, float] = {}
        self.count = 0
        self._head_s = 0.0  # counter sources: time between t0 and the first sample, unresolved
        self._last_rate: Optional[Tuple[float, Dict[str, float]]] = None

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
               complete: bool = True, flops: float = 0.0) -> WindowResult:
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
        rail_results: Dict[str, RailEnergy] = collections.OrderedDict()
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
            bytes_read=bytes_read, complete=complete, flops=flops)


def integrate(samples: List[PowerSample], t0_s: float, t1_s: float, source: str = "samples",
              label: str = MEASURED, total_rail: Optional[str] = None,
              name: str = "window") -> WindowResult:
    """Integrate time-ordered ``samples`` over ``[t0_s, t1_s]`` (same rules as windows)."""
    if t1_s < t0_s:
        raise InputError(f"integrate: t1_s ({t1_s}) is before t0_s ({t0_s})")
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
