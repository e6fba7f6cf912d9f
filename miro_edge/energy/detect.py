"""Pick the best power source available here, by fidelity, and open it.

Order (highest fidelity first): ``ina3221`` (sysfs, 10 Hz) > ``jtop`` > ``tegrastats`` >
``nvml`` > ``rapl`` > ``model`` (always available, ``estimated``). Each backend's ``probe``
says why it is not usable; :func:`probe_all` lists those reasons (``miro-edge meter --list``).
"""
import logging
import time
from dataclasses import dataclass
from typing import Any, List, Mapping, Optional

from miro_edge.energy.meter import METERS, Clock, PowerMeter

logger = logging.getLogger(__name__)

AUTO = "auto"


@dataclass(frozen=True)
class Probe:
    """Whether one backend can run here, and why not."""

    name: str
    fidelity: int
    label: str
    available: bool
    reason: str


def meter_names() -> List[str]:
    """Registered backends, best first."""
    return sorted(METERS.names(), key=lambda n: -METERS.get(n).fidelity)  # type: ignore[attr-defined]


def probe_all(root: str = "/", options: Optional[Mapping[str, Mapping[str, Any]]] = None) -> List[Probe]:
    """Probe every backend (best first); ``options[name]`` are that backend's constructor options."""
    out = []
    for name in meter_names():
        cls = METERS.get(name)
        try:
            reason = cls.probe(root, **dict((options or {}).get(name, {})))  # type: ignore[attr-defined]
        except Exception as exc:  # a probe must never break detection
            reason = f"probe failed: {type(exc).__name__}: {exc}"
        out.append(Probe(name, cls.fidelity, cls.label, reason is None, reason or ""))  # type: ignore[attr-defined]
    return out


def create_meter(name: str = AUTO, root: str = "/", interval_s: Optional[float] = None,
                 clock: Clock = time.monotonic, background: bool = True,
                 options: Optional[Mapping[str, Mapping[str, Any]]] = None) -> PowerMeter:
    """Build (not open) the meter ``name``, or the best available one for ``"auto"``."""
    chosen = name
    if name == AUTO:
        probes = probe_all(root, options)
        chosen = next(p.name for p in probes if p.available)
        for p in probes:
            if p.name == chosen:
                break
            logger.info("power source %s skipped: %s", p.name, p.reason)
        logger.info("power source auto-detected: %s", chosen)
    extra = dict((options or {}).get(chosen, {}))
    return METERS.create(chosen, root=root, interval_s=interval_s, clock=clock, background=background,
                         **extra)


def open_meter(name: str = AUTO, root: str = "/", interval_s: Optional[float] = None,
               clock: Clock = time.monotonic, background: bool = True,
               options: Optional[Mapping[str, Mapping[str, Any]]] = None) -> PowerMeter:
    """Open the meter ``name`` (or the best available, ``"auto"``) with its sampler running.

    Like ``open()`` for files: use it in a ``with`` statement so it is closed::

        with open_meter() as meter, meter.window("trial-3") as w:
            train()
        print(w.result.energy_j, w.result.source, w.result.label)

    ``root`` prefixes every sysfs/procfs path (tests, or a host ``/sys`` mounted elsewhere);
    ``options`` maps a backend name to extra constructor arguments, e.g.
    ``{"tegrastats": {"command": [...]}, "model": {"profile": "tx2"}}``.
    """
    return create_meter(name, root, interval_s, clock, background, options).open()
