"""What a power meter produces: samples, figures, per-rail energy and window results, with the
``measured``/``estimated`` label every figure carries, and the meter errors."""
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional

from miro_edge.errors import HardwareUnavailableError, MiroEdgeError

MEASURED = "measured"
ESTIMATED = "estimated"

#: Rails that carry the whole module/board input; the other rails are parts of it, never added.
TOTAL_RAIL_NAMES = ("VDD_IN", "POM_5V_IN")


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
        return f"{self.name} {self.value:.3f} {self.unit} ({self.source}, {self.label})"


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
    kept after a sensor loss. ``sample_passes``/``bytes_read``/``flops`` are the work reported through
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
    flops: float = 0.0

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
            out.append(Figure(f"energy[{rail}]", self.rails[rail].energy_j, "J",
                              self.source, self.label))
        return out

    def to_dict(self) -> Dict[str, Any]:
        """A flat, JSON-ready record (units in the key names) for the recorder."""
        return {
            "window": self.name, "source": self.source, "label": self.label,
            "energy_j": self.energy_j, "duration_s": self.duration_s, "mean_w": self.mean_w,
            "peak_w": self.peak_w, "sample_count": self.sample_count,
            "total_rail": self.total_rail, "complete": self.complete,
            "sample_passes": self.sample_passes, "bytes_read": self.bytes_read, "flops": self.flops,
            "rails": {name: {"energy_j": r.energy_j, "mean_w": r.mean_w, "peak_w": r.peak_w}
                      for name, r in sorted(self.rails.items())},
        }
