"""NVIDIA desktop/server GPUs: NVML's total-energy counter (``nvmlDeviceGetTotalEnergyConsumption``).

The counter is in millijoules since the driver loaded (Volta and newer). It covers the GPU
board only, not the host. NVML answers "not supported" on Jetson, where INA3221 is used.
Optional extra ``nvml`` (package nvidia-ml-py, module ``pynvml``), imported when the meter opens.
"""
import logging
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

from miro_edge.energy.counters import CounterTracker
from miro_edge.energy.meter import METERS, PowerMeter
from miro_edge.energy.records import MeterUnavailableError, PowerSample, SensorLostError
from miro_edge.errors import MissingDependencyError
from miro_edge.utils.optional import require
from miro_edge.utils.sysfs import under

logger = logging.getLogger(__name__)

DRIVER_FILE = "/proc/driver/nvidia/version"


def _load_nvml() -> Any:
    return require("pynvml", "nvml", "the NVML energy meter")


@METERS.register("nvml")
class NvmlMeter(PowerMeter):
    """Polls each GPU's energy counter. ``nvml`` (a pynvml-like module) is injectable for tests."""

    name = "nvml"
    fidelity = 50
    default_interval_s = 0.1

    def __init__(self, root: str = "/", device_indices: Optional[Sequence[int]] = None,
                 nvml: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.root = root
        self.device_indices = list(device_indices) if device_indices is not None else None
        self._nvml = nvml
        self._handles: List[Tuple[str, Any]] = []
        self._tracker = CounterTracker()
        self._total: Tuple[str, ...] = ()

    @classmethod
    def probe(cls, root: str = "/", nvml: Any = None, **options: Any) -> Optional[str]:
        if nvml is None:
            if not os.path.exists(under(root, DRIVER_FILE)):
                return f"no NVIDIA driver ({under(root, DRIVER_FILE)} missing)"
            try:
                nvml = _load_nvml()
            except MissingDependencyError as exc:
                return str(exc)
        try:
            nvml.nvmlInit()
        except Exception as exc:  # pynvml.NVMLError and friends
            return f"nvmlInit failed: {exc}"
        try:
            if nvml.nvmlDeviceGetCount() < 1:
                return "NVML sees no GPU"
            nvml.nvmlDeviceGetTotalEnergyConsumption(nvml.nvmlDeviceGetHandleByIndex(0))
        except Exception as exc:
            return f"GPU 0 has no total-energy counter (needs Volta or newer): {exc}"
        finally:
            try:
                nvml.nvmlShutdown()
            except Exception:  # pragma: no cover - shutdown failures are irrelevant to probing
                pass
        return None

    def rails(self) -> List[str]:
        return [name for name, _ in self._handles]

    def _open_source(self) -> None:
        nvml = self._nvml if self._nvml is not None else _load_nvml()
        try:
            nvml.nvmlInit()
            count = nvml.nvmlDeviceGetCount()
            indices = self.device_indices if self.device_indices is not None else list(range(count))
            self._handles = [(f"gpu{i}", nvml.nvmlDeviceGetHandleByIndex(i)) for i in indices]
            for _, handle in self._handles:
                nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
        except Exception as exc:
            raise MeterUnavailableError(f"NVML energy counter unavailable ({exc}); it needs an NVIDIA driver and "
                                        "a Volta-or-newer GPU") from exc
        if not self._handles:
            raise MeterUnavailableError("NVML sees no GPU; pick another source with --source")
        self._nvml = nvml
        self._total = tuple(name for name, _ in self._handles)
        self.total_rail = self._total[0] if len(self._total) == 1 else None
        self._tracker = CounterTracker()

    def _poll(self, t_s: float) -> PowerSample:
        raw: Dict[str, float] = {}
        for name, handle in self._handles:
            try:
                raw[name] = float(self._nvml.nvmlDeviceGetTotalEnergyConsumption(handle)) / 1000.0
            except Exception as exc:
                raise SensorLostError(f"NVML stopped answering for {name}: {exc}") from exc
        return self._tracker.sample(t_s, raw, self._total, self.latest())

    def _close_source(self) -> None:
        if self._nvml is not None and self._handles:
            try:
                self._nvml.nvmlShutdown()
            except Exception as exc:
                logger.warning("nvmlShutdown failed: %s", exc)
        self._handles = []
