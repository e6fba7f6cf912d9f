"""Linux powercap RAPL energy counters (``/sys/class/powercap/intel-rapl:*/energy_uj``).

Each zone has ``name`` (``package-0``, ``core``, ``uncore``, ``dram``, ``psys``), ``energy_uj``
(a counter in microjoules) and ``max_energy_range_uj`` (where it wraps to 0). Sub-zones
(``intel-rapl:0:0``) are parts of their package and are reported as rails ``package-0/core``.
The total is ``psys`` (whole platform) when present, else the packages plus any ``dram`` zones.

Since Linux 5.10 ``energy_uj`` is readable by root only: detection reports that case as
unavailable, with the fix.
"""
import glob
import logging
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from miro_edge.energy.counters import CounterTracker
from miro_edge.energy.meter import METERS, PowerMeter
from miro_edge.energy.records import MeterUnavailableError, PowerSample, SensorLostError
from miro_edge.utils.sysfs import is_gone, read_number, read_optional, under

logger = logging.getLogger(__name__)

POWERCAP_DIR = "/sys/class/powercap"


@dataclass(frozen=True)
class RaplZone:
    rail: str
    energy_path: str
    range_uj: Optional[float]
    top_level: bool
    kind: str


def discover_zones(root: str = "/") -> List[RaplZone]:
    """RAPL zones under ``root`` with rail names that say which package they belong to."""
    base = under(root, POWERCAP_DIR)
    entries = sorted(glob.glob(os.path.join(base, "intel-rapl:*")))
    names: Dict[str, str] = {}
    for path in entries:
        names[os.path.basename(path)] = read_optional(os.path.join(path, "name")) or os.path.basename(path)
    zones = []
    for path in entries:
        zone_id = os.path.basename(path)
        energy = os.path.join(path, "energy_uj")
        if not os.path.exists(energy):
            continue
        parts = zone_id.split(":")
        kind = names[zone_id]
        top = len(parts) == 2
        rail = kind if top else "{}/{}".format(names.get(":".join(parts[:2]), ":".join(parts[:2])), kind)
        rng = read_optional(os.path.join(path, "max_energy_range_uj"))
        zones.append(RaplZone(rail, energy, float(rng) if rng else None, top, kind))
    return zones


def total_rails(zones: List[RaplZone]) -> Tuple[Tuple[str, ...], Optional[str]]:
    """Rails summed into the total, and the single total rail when there is one (psys)."""
    psys = [z.rail for z in zones if z.top_level and z.kind == "psys"]
    if psys:
        return (psys[0],), psys[0]
    chosen = tuple(z.rail for z in zones if (z.top_level and z.kind != "psys") or z.kind == "dram")
    return chosen, None


@METERS.register("rapl")
class RaplMeter(PowerMeter):
    """Reads RAPL counters each period (wrap-aware). ``root`` is injectable for tests."""

    name = "rapl"
    fidelity = 40
    default_interval_s = 0.1

    def __init__(self, root: str = "/", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.root = root
        self._zones: List[RaplZone] = []
        self._total: Tuple[str, ...] = ()
        self._tracker = CounterTracker()

    @classmethod
    def probe(cls, root: str = "/", **options: Any) -> Optional[str]:
        zones = discover_zones(root)
        if not zones:
            return f"no RAPL zones under {under(root, POWERCAP_DIR)}"
        try:
            read_number(zones[0].energy_path)
        except PermissionError:
            return (f"{zones[0].energy_path} is readable by root only (Linux >= 5.10); run as root or add a udev rule that makes "
                    "energy_uj readable")
        except (OSError, ValueError) as exc:
            return f"cannot read {zones[0].energy_path}: {exc}"
        return None

    def rails(self) -> List[str]:
        return [z.rail for z in self._zones]

    def _open_source(self) -> None:
        reason = self.probe(self.root)
        if reason is not None:
            raise MeterUnavailableError(f"{reason}; RAPL exists on x86 Linux with the powercap driver")
        self._zones = discover_zones(self.root)
        self._total, self.total_rail = total_rails(self._zones)
        self._tracker = CounterTracker({z.rail: z.range_uj / 1e6 for z in self._zones if z.range_uj})

    def _poll(self, t_s: float) -> PowerSample:
        raw: Dict[str, float] = {}
        for zone in self._zones:
            try:
                raw[zone.rail] = read_number(zone.energy_path) / 1e6
            except OSError as exc:
                if is_gone(exc):
                    raise SensorLostError(f"RAPL zone {zone.rail} disappeared ({exc})") from exc
                raise
        return self._tracker.sample(t_s, raw, self._total, self.latest())
