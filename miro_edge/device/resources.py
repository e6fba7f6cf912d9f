"""What the controller needs to know about the device right now, as one typed snapshot.

:class:`ResourceMonitor` reads (every path under an injectable ``root``):

* available memory, honouring the cgroup limit (v2 ``memory.max``/``memory.current``, v1
  ``memory.limit_in_bytes``/``memory.usage_in_bytes``; reclaimable inactive page cache from
  ``memory.stat`` does not count as used) against ``/proc/meminfo`` ``MemAvailable``;
* I/O pressure: Linux PSI ``/proc/pressure/io`` ``some avg10`` (percent of time some task
  waited on I/O, as a fraction), else the busiest disk's utilisation from ``/proc/diskstats``
  between two reads;
* whether the device is on external power (``/sys/class/power_supply``; a device without a
  battery, like a Jetson dev kit or a desktop, counts as on power);
* the live path's load, published by the inference loop through a :class:`~miro_edge.device.load.LoadGauge`;
* this process's RSS (psutil).
"""
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import psutil

from miro_edge.device.load import LoadGauge, LoadReader
from miro_edge.utils.sysfs import read_optional, under

logger = logging.getLogger(__name__)

#: cgroup v1 reports "no limit" as a huge page-aligned number.
_UNLIMITED = 1 << 60
_EXTERNAL_TYPES = frozenset({"mains", "usb", "usb_c", "usb_pd", "usb_dcp", "usb_cdp", "usb_aca", "ups",
                             "wireless", "usb_pd_drp", "brickid"})


@dataclass(frozen=True)
class MemoryInfo:
    available_bytes: int
    limit_bytes: Optional[int]
    source: str  # "cgroup-v2", "cgroup-v1" or "meminfo"


@dataclass(frozen=True)
class ResourceSnapshot:
    """One reading of the device's resources (a frozen value the controller can keep)."""

    time_s: float
    mem_available_bytes: int
    mem_limit_bytes: Optional[int]
    mem_source: str
    io_pressure: Optional[float]
    io_pressure_source: str
    on_external_power: bool
    power_supply_source: str
    live_load: float
    rss_bytes: int

    @property
    def mem_available_mb(self) -> float:
        return self.mem_available_bytes / (1024.0 * 1024.0)


def _int_or_none(text: Optional[str]) -> Optional[int]:
    if text is None:
        return None
    try:
        return int(text.split()[0])
    except (ValueError, IndexError):
        return None


def read_meminfo_available(root: str = "/") -> Optional[int]:
    text = read_optional(under(root, "/proc/meminfo"))
    if text is None:
        return None
    for line in text.splitlines():
        if line.startswith("MemAvailable:"):
            parts = line.split()
            return int(parts[1]) * (1024 if len(parts) > 2 and parts[2].lower() == "kb" else 1)
    return None


def _stat_value(path: str, key: str) -> int:
    text = read_optional(path) or ""
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == key:
            try:
                return int(parts[1])
            except ValueError:
                return 0
    return 0


def _self_cgroups(root: str) -> Dict[str, str]:
    """controller -> cgroup path of this process ("" key for the v2 unified hierarchy)."""
    out: Dict[str, str] = {}
    text = read_optional(under(root, "/proc/self/cgroup")) or ""
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":
            out[""] = path
        for c in controllers.split(","):
            if c:
                out[c] = path
    return out


def _candidates(base: str, rel: Optional[str]) -> List[str]:
    dirs = []
    if rel and rel != "/":
        dirs.append(os.path.join(base, rel.lstrip("/")))
    dirs.append(base)
    return dirs


def read_cgroup_memory(root: str = "/") -> Optional[Tuple[int, int, str]]:
    """(limit, usage without inactive file cache, version) of this process's cgroup, or None."""
    cgroups = _self_cgroups(root)
    limit: Optional[int]
    v2_base = under(root, "/sys/fs/cgroup")
    for directory in _candidates(v2_base, cgroups.get("")):
        limit_text = read_optional(os.path.join(directory, "memory.max"))
        if limit_text is None:
            continue
        usage = _int_or_none(read_optional(os.path.join(directory, "memory.current")))
        if limit_text == "max" or usage is None:
            return None
        limit = int(limit_text)
        usage -= _stat_value(os.path.join(directory, "memory.stat"), "inactive_file")
        return limit, max(0, usage), "cgroup-v2"
    v1_base = under(root, "/sys/fs/cgroup/memory")
    for directory in _candidates(v1_base, cgroups.get("memory")):
        limit = _int_or_none(read_optional(os.path.join(directory, "memory.limit_in_bytes")))
        if limit is None:
            continue
        usage = _int_or_none(read_optional(os.path.join(directory, "memory.usage_in_bytes")))
        if limit >= _UNLIMITED or usage is None:
            return None
        usage -= _stat_value(os.path.join(directory, "memory.stat"), "total_inactive_file")
        return limit, max(0, usage), "cgroup-v1"
    return None


def read_memory(root: str = "/") -> MemoryInfo:
    """Available memory: the smaller of MemAvailable and the cgroup's headroom."""
    meminfo = read_meminfo_available(root)
    cgroup = read_cgroup_memory(root)
    if meminfo is None:
        meminfo = int(psutil.virtual_memory().available) if root == "/" else 0
    if cgroup is None:
        return MemoryInfo(meminfo, None, "meminfo")
    limit, usage, version = cgroup
    headroom = max(0, limit - usage)
    if headroom < meminfo:
        return MemoryInfo(headroom, limit, version)
    return MemoryInfo(meminfo, limit, "meminfo")


def read_psi_io(root: str = "/") -> Optional[float]:
    """PSI ``some avg10`` for I/O as a fraction (0.25 = some task stalled on I/O 25% of the time)."""
    text = read_optional(under(root, "/proc/pressure/io"))
    if not text:
        return None
    for line in text.splitlines():
        if line.startswith("some "):
            for token in line.split()[1:]:
                if token.startswith("avg10="):
                    try:
                        return float(token[len("avg10="):]) / 100.0
                    except ValueError:
                        return None
    return None


def read_diskstats(root: str = "/") -> Dict[str, int]:
    """Milliseconds spent doing I/O (field 10 of the stats) per whole disk."""
    text = read_optional(under(root, "/proc/diskstats")) or ""
    block = under(root, "/sys/block")
    has_block = os.path.isdir(block)
    out: Dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 13:
            continue
        name = parts[2]
        if name.startswith(("loop", "ram", "zram", "fd")):
            continue
        if has_block and not os.path.exists(os.path.join(block, name)):
            continue  # a partition: its disk is counted
        try:
            out[name] = int(parts[12])
        except ValueError:
            continue
    return out


def read_power_supply(root: str = "/") -> Tuple[bool, str]:
    """(on external power, why): mains/USB online, on battery, or no battery at all."""
    base = under(root, "/sys/class/power_supply")
    try:
        names = sorted(os.listdir(base))
    except OSError:
        return True, "no-power-supply-info"
    has_battery = False
    for name in names:
        kind = (read_optional(os.path.join(base, name, "type")) or "").lower()
        if kind == "battery":
            has_battery = True
            continue
        if kind in _EXTERNAL_TYPES and read_optional(os.path.join(base, name, "online")) == "1":
            return True, f"{kind}-online"
    if has_battery:
        return False, "battery"
    return True, "no-battery"


class ResourceMonitor:
    """Reads a :class:`ResourceSnapshot` on demand (no thread); ``root`` is injectable for tests.

    I/O utilisation from ``/proc/diskstats`` needs two reads: the first is taken when the monitor
    is created; each snapshot compares with the previous read (at least ``min_io_interval_s``
    apart, else the last value is reused).
    """

    def __init__(self, root: str = "/", gauge: Optional[LoadReader] = None, pid: Optional[int] = None,
                 clock: Callable[[], float] = time.monotonic, min_io_interval_s: float = 0.05) -> None:
        self.root = root
        self.gauge = gauge if gauge is not None else LoadGauge()
        self.clock = clock
        self.min_io_interval_s = min_io_interval_s
        self._process = psutil.Process(pid)
        self._lock = threading.Lock()
        self._disk_prev: Tuple[float, Dict[str, int]] = (clock(), read_diskstats(root))
        self._disk_util: Optional[float] = None

    def _disk_utilisation(self, now: float) -> Optional[float]:
        with self._lock:
            t_prev, prev = self._disk_prev
            if now - t_prev < self.min_io_interval_s:
                return self._disk_util
            cur = read_diskstats(self.root)
            self._disk_prev = (now, cur)
            common = [d for d in cur if d in prev]
            if not common:
                self._disk_util = None
                return None
            elapsed_ms = (now - t_prev) * 1000.0
            busiest = max(max(0, cur[d] - prev[d]) for d in common)
            self._disk_util = min(1.0, busiest / elapsed_ms) if elapsed_ms > 0 else 0.0
            return self._disk_util

    def snapshot(self) -> ResourceSnapshot:
        now = self.clock()
        mem = read_memory(self.root)
        psi = read_psi_io(self.root)
        io: Optional[float]
        if psi is not None:
            io, io_source = psi, "psi-some-avg10"
        else:
            io = self._disk_utilisation(now)
            io_source = "diskstats-util" if io is not None else "none"
        on_power, supply = read_power_supply(self.root)
        try:
            rss = int(self._process.memory_info().rss)
        except psutil.Error:
            rss = 0
        return ResourceSnapshot(time_s=now, mem_available_bytes=int(mem.available_bytes),
                                mem_limit_bytes=mem.limit_bytes, mem_source=mem.source,
                                io_pressure=io, io_pressure_source=io_source,
                                on_external_power=on_power, power_supply_source=supply,
                                live_load=self.gauge.get(), rss_bytes=rss)

