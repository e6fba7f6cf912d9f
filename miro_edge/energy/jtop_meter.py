"""Power rails from jetson-stats (``jtop``) when its service is running (``/run/jtop.sock``).

jtop is AGPL-3.0 and optional (extra ``jetson``); it is imported only when this meter opens.
In jtop 4.x ``jetson.power`` is ``{'rail': {name: {'volt', 'curr', 'power', 'avg', ...}},
'tot': {'power', 'avg', 'name'?}}`` with power in mW; the input rail (``VDD_IN``) is moved to
``tot`` (and named there), else ``tot`` is jtop's sum of rails. We integrate ``power``, never
``avg`` (a running mean of readings, not a time average).
"""
import logging
import os
from typing import Any, Callable, Dict, List, Mapping, Optional

from miro_edge.energy.meter import METERS, PowerMeter
from miro_edge.energy.records import MeterUnavailableError, PowerSample, SensorLostError
from miro_edge.errors import MissingDependencyError
from miro_edge.utils.optional import require
from miro_edge.utils.sysfs import under

logger = logging.getLogger(__name__)

JTOP_SOCKET = "/run/jtop.sock"


def sample_from_jtop(power: Mapping[str, Any], t_s: float) -> PowerSample:
    """Convert a jtop 4.x ``jetson.power`` dict into a sample (W)."""
    if not isinstance(power, Mapping) or "tot" not in power:
        raise SensorLostError(f"jtop returned power data in an unknown format ({type(power).__name__}); jetson-stats >= 4.2 "
                              "is required")
    rails_w: Dict[str, float] = {}
    for name, values in (power.get("rail") or {}).items():
        if isinstance(values, Mapping) and "power" in values:
            rails_w[str(name)] = float(values["power"]) / 1000.0
    tot = power["tot"]
    total_w = float(tot["power"]) / 1000.0
    tot_name = tot.get("name") if isinstance(tot, Mapping) else None
    if tot_name:
        rails_w[str(tot_name)] = total_w
    return PowerSample(t_s, total_w, rails_w)


def _default_client(interval_s: float) -> Any:
    module = require("jtop", "jetson", "the jtop power meter")
    return module.jtop(interval=interval_s)


@METERS.register("jtop")
class JtopMeter(PowerMeter):
    """Streams jtop power readings. ``client_factory(interval_s)`` is injectable for tests.

    The default period is 0.5 s: the jtop service serves every client at one rate, so asking
    it for 10 Hz would load the whole board; INA3221 sysfs (higher fidelity) samples faster.
    """

    name = "jtop"
    fidelity = 80
    default_interval_s = 0.5
    streaming = True

    def __init__(self, root: str = "/", client_factory: Optional[Callable[[float], Any]] = None,
                 **kwargs: Any) -> None:
        kwargs.pop("background", None)
        super().__init__(**kwargs)
        self.root = root
        self._factory = client_factory or _default_client
        self._client: Any = None
        self._rails: List[str] = []

    @classmethod
    def probe(cls, root: str = "/", **options: Any) -> Optional[str]:
        if options.get("client_factory") is not None:
            return None
        sock = under(root, JTOP_SOCKET)
        if not os.path.exists(sock):
            return f"jtop service not running ({sock} missing)"
        try:
            require("jtop", "jetson", "the jtop power meter")
        except MissingDependencyError as exc:
            return str(exc)
        return None

    def rails(self) -> List[str]:
        return list(self._rails)

    def _open_source(self) -> None:
        try:
            client = self._factory(self.interval_s)
            client.start()
        except MissingDependencyError:
            raise
        except Exception as exc:  # jtop raises its own JtopException types
            raise MeterUnavailableError(f"cannot connect to the jtop service ({exc}); check `systemctl status "
                                        f"jtop` and that {JTOP_SOCKET} is mounted into the container") from exc
        self._client = client
        first = sample_from_jtop(client.power, self.clock())
        self._rails = sorted(first.rails_w)
        tot = client.power.get("tot", {})
        self.total_rail = tot.get("name") if isinstance(tot, Mapping) else None
        self._publish(first)

    def _run_stream(self) -> None:
        client = self._client
        while not self._stop.is_set():
            if not client.ok():
                if self._stop.is_set():
                    return
                raise SensorLostError("the jtop client stopped (service gone?)")
            self._publish(sample_from_jtop(client.power, self.clock()))

    def _interrupt_stream(self) -> None:
        pass  # ok() returns within one jtop period; the loop then sees the stop flag

    def _close_source(self) -> None:
        client = self._client
        self._client = None
        if client is not None:
            try:
                client.close()
            except Exception as exc:  # closing must not mask the caller's error
                logger.warning("closing jtop failed: %s", exc)
