"""The ``energy`` config section: which power source, how often, which model profile."""
import time
from dataclasses import dataclass
from typing import Optional

from miro_edge.config import field, require
from miro_edge.energy.meter import Clock, PowerMeter


@dataclass(frozen=True)
class MeterConfig:
    source: str = field("auto", help="power source: auto, ina3221, jtop, tegrastats, nvml, rapl or model")
    interval_ms: Optional[int] = field(None, help="sampling period in ms (default: the source's, 100 ms "
                                                  "for most, 500 ms for jtop)")
    profile: Optional[str] = field(None, help="energy-model profile for source=model (tx2, xavier_nx, "
                                              "generic_cpu, or a calibrated profile .json); default: detected")
    sysfs_root: str = field("/", help="prefix of /sys and /proc paths (a host /sys mounted elsewhere)")

    def __post_init__(self) -> None:
        from miro_edge.energy.detect import AUTO, meter_names
        names = meter_names()
        require(self.source == AUTO or self.source in names, "source",
                "unknown power source {!r}; choose auto or one of {}".format(self.source, ", ".join(names)))
        require(self.interval_ms is None or 1 <= self.interval_ms <= 60000, "interval_ms",
                "must be between 1 and 60000")
        require(bool(self.sysfs_root), "sysfs_root", "must not be empty")


def meter_from_config(cfg: MeterConfig, clock: Clock = time.monotonic) -> PowerMeter:
    """An unopened meter as the config says (use it with ``with``)."""
    from miro_edge.energy.detect import create_meter
    options = {"model": {"profile": cfg.profile}} if cfg.profile is not None else None
    return create_meter(cfg.source, root=cfg.sysfs_root,
                        interval_s=cfg.interval_ms / 1000.0 if cfg.interval_ms else None,
                        clock=clock, options=options)
