"""Shared logic of cumulative energy-counter sources (RAPL, NVML, the calibrated model)."""
from typing import Dict, Mapping, Optional, Tuple

from miro_edge.energy.records import PowerSample


class CounterTracker:
    """Turns raw per-rail counters (which may wrap) into cumulative joules since the first read.

    ``wrap_j[name]`` is the counter's range in joules (RAPL ``max_energy_range_uj``); a raw value
    lower than the previous one is a wrap when the range is known, else a reset (counted as 0).
    """

    def __init__(self, wrap_j: Optional[Mapping[str, float]] = None) -> None:
        self.wrap_j = dict(wrap_j or {})
        self._raw: Dict[str, float] = {}
        self._cum: Dict[str, float] = {}
        self._last_t: Optional[float] = None
        self.wraps = 0
        self.resets = 0

    def update(self, raw_j: Mapping[str, float]) -> Dict[str, float]:
        for name, value in raw_j.items():
            before = self._raw.get(name)
            if before is None:
                self._cum[name] = 0.0
            else:
                delta = value - before
                if delta < 0:
                    span = self.wrap_j.get(name)
                    if span:
                        delta += span
                        self.wraps += 1
                    else:
                        delta = 0.0
                        self.resets += 1
                self._cum[name] += delta
            self._raw[name] = value
        return dict(self._cum)

    def sample(self, t_s: float, raw_j: Mapping[str, float], total_names: Tuple[str, ...],
               previous: Optional[PowerSample]) -> PowerSample:
        """A counter sample; the total is the sum of ``total_names`` (non-overlapping rails)."""
        cum = self.update(raw_j)
        total_j = float(sum(cum[n] for n in total_names if n in cum))
        rails_w: Dict[str, float] = {}
        total_w = 0.0
        if previous is not None and previous.rails_j is not None and t_s > previous.t_s:
            dt = t_s - previous.t_s
            rails_w = {k: (v - previous.rails_j.get(k, v)) / dt for k, v in cum.items()}
            total_w = (total_j - float(previous.total_j or 0.0)) / dt
        return PowerSample(t_s, total_w, rails_w, total_j=total_j, rails_j=cum)
