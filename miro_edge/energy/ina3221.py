"""INA3221 power monitors read straight from sysfs (Jetson TX2 / JetPack 4, Xavier NX / JetPack 5).

Two driver layouts exist and rails are discovered by their labels, never by a fixed device
number:

* JetPack 4 (``ina3221x`` IIO driver): ``/sys/bus/i2c/drivers/ina3221x/<bus-addr>/iio:deviceN/``
  with ``rail_name_K`` and ``in_powerK_input`` (mW);
* JetPack 5 (mainline ``ina3221`` hwmon driver): ``/sys/bus/i2c/devices/<bus-addr>/hwmon/hwmonN/``
  with ``inK_label``, ``inK_input`` (mV) and ``currK_input`` (mA); power = mV x mA / 1000 (mW).
  Channel 7 ("sum of shunt voltages") and unconnected ("NC") channels are skipped.

The board total is ``VDD_IN`` (``POM_5V_IN`` on Nano-class boards); the other rails are parts
of it and are never added to it.
"""
import glob
import logging
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from miro_edge.energy.integrate import total_of
from miro_edge.energy.meter import METERS, PowerMeter
from miro_edge.energy.records import MeterUnavailableError, PowerSample, SensorLostError
from miro_edge.utils.sysfs import is_gone, read_number, read_optional, under

logger = logging.getLogger(__name__)

IIO_GLOB = "/sys/bus/i2c/drivers/ina3221x/*/iio:device*"
HWMON_GLOB = "/sys/bus/i2c/devices/*/hwmon/hwmon*"


@dataclass(frozen=True)
class Ina3221Rail:
    """Where one rail's reading lives: a power file (IIO, mW) or voltage+current files (hwmon)."""

    name: str
    power_path: Optional[str] = None
    voltage_path: Optional[str] = None
    current_path: Optional[str] = None

    def read_w(self) -> float:
        if self.power_path is not None:
            return read_number(self.power_path) / 1000.0
        assert self.voltage_path is not None and self.current_path is not None
        return read_number(self.voltage_path) * read_number(self.current_path) / 1e6


def _channel(filename: str, prefix: str, suffix: str) -> Optional[str]:
    if not (filename.startswith(prefix) and filename.endswith(suffix)):
        return None
    middle = filename[len(prefix):len(filename) - len(suffix)] if suffix else filename[len(prefix):]
    return middle if middle.isdigit() else None


def _iio_rails(directory: str) -> List[Ina3221Rail]:
    rails = []
    for entry in sorted(os.listdir(directory)):
        k = _channel(entry, "rail_name_", "")
        if k is None:
            continue
        label = read_optional(os.path.join(directory, entry))
        power = os.path.join(directory, f"in_power{k}_input")
        if label and os.path.exists(power):
            rails.append(Ina3221Rail(label, power_path=power))
    return rails


def _is_ina3221(hwmon_dir: str) -> bool:
    for name_file in (os.path.join(hwmon_dir, "name"),
                      os.path.join(os.path.dirname(os.path.dirname(hwmon_dir)), "name")):
        name = read_optional(name_file)
        if name is not None and "ina3221" in name:
            return True
    return False


def _skip_label(label: str) -> bool:
    low = label.lower()
    return "sum of shunt" in low or label.strip().upper() == "NC" or low.startswith("nc ")


def _hwmon_rails(directory: str) -> List[Ina3221Rail]:
    rails = []
    for entry in sorted(os.listdir(directory)):
        k = _channel(entry, "in", "_label")
        if k is None:
            continue
        label = read_optional(os.path.join(directory, entry))
        volt = os.path.join(directory, f"in{k}_input")
        curr = os.path.join(directory, f"curr{k}_input")
        if not label or _skip_label(label):
            logger.debug("ina3221: skipping channel %s of %s (%r)", k, directory, label)
            continue
        if not (os.path.exists(volt) and os.path.exists(curr)):
            logger.debug("ina3221: channel %s of %s has no voltage/current pair", k, directory)
            continue
        rails.append(Ina3221Rail(label, voltage_path=volt, current_path=curr))
    return rails


def discover_rails(root: str = "/") -> List[Ina3221Rail]:
    """Every INA3221 rail under ``root`` (IIO layout, then hwmon), labels made unique."""
    found: List[Ina3221Rail] = []
    seen_dirs = set()
    for directory in sorted(glob.glob(under(root, IIO_GLOB))):
        found.extend(_iio_rails(directory))
    for directory in sorted(glob.glob(under(root, HWMON_GLOB))):
        real = os.path.realpath(directory)
        if real in seen_dirs or not _is_ina3221(directory):
            continue
        seen_dirs.add(real)
        found.extend(_hwmon_rails(directory))
    unique: List[Ina3221Rail] = []
    names: set = set()
    for rail in found:
        name = rail.name
        n = 2
        while name in names:
            name = f"{rail.name}#{n}"
            n += 1
        names.add(name)
        unique.append(Ina3221Rail(name, rail.power_path, rail.voltage_path, rail.current_path))
    return unique


@METERS.register("ina3221")
class Ina3221Meter(PowerMeter):
    """Reads every INA3221 rail from sysfs each period (``root`` is injectable for tests)."""

    name = "ina3221"
    fidelity = 100
    default_interval_s = 0.1

    def __init__(self, root: str = "/", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.root = root
        self._rails: List[Ina3221Rail] = []

    @classmethod
    def probe(cls, root: str = "/", **options: Any) -> Optional[str]:
        rails = discover_rails(root)
        if not rails:
            return f"no INA3221 rails under {under(root, IIO_GLOB)} or {under(root, HWMON_GLOB)}"
        try:
            rails[0].read_w()
        except (OSError, ValueError) as exc:
            return f"INA3221 rail {rails[0].name} is not readable: {exc}"
        return None

    def rails(self) -> List[str]:
        return [r.name for r in self._rails]

    def _open_source(self) -> None:
        reason = self.probe(self.root)
        if reason is not None:
            raise MeterUnavailableError(f"{reason}; this source needs a Jetson with INA3221 monitors (JetPack 4 "
                                        "or 5); pick another with --source")
        self._rails = discover_rails(self.root)
        _, self.total_rail = total_of({r.name: 0.0 for r in self._rails})
        if self.total_rail is None:
            logger.warning("ina3221: no VDD_IN rail among %s; the total is the sum of the rails",
                           self.rails())

    def _poll(self, t_s: float) -> PowerSample:
        rails_w: Dict[str, float] = {}
        for rail in self._rails:
            try:
                rails_w[rail.name] = rail.read_w()
            except OSError as exc:
                if is_gone(exc):
                    raise SensorLostError("INA3221 rail {} disappeared ({}: {})".format(
                        rail.name, getattr(exc, "filename", ""), exc.strerror)) from exc
                raise
        total_w, _ = total_of(rails_w)
        return PowerSample(t_s, total_w, rails_w)

