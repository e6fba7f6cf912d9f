"""NVML backend: counter logic with a fake pynvml module, and a live test on a real NVIDIA GPU."""
import importlib.util
import os
import time

import pytest

from miro_edge.energy import MEASURED, MeterUnavailableError, SensorLostError
from miro_edge.energy.nvml import NvmlMeter


class FakeNvml:
    """The handful of pynvml calls the meter uses; energy counters in mJ."""

    def __init__(self, energy_mj, fail_after=None, supported=True):
        self.energy_mj = list(energy_mj)
        self.fail_after = fail_after
        self.supported = supported
        self.calls = 0
        self.shutdowns = 0

    def nvmlInit(self):
        pass

    def nvmlShutdown(self):
        self.shutdowns += 1

    def nvmlDeviceGetCount(self):
        return len(self.energy_mj)

    def nvmlDeviceGetHandleByIndex(self, i):
        return i

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        if not self.supported:
            raise RuntimeError("NVML_ERROR_NOT_SUPPORTED")
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise RuntimeError("NVML_ERROR_GPU_IS_LOST")
        return self.energy_mj[handle]


def test_counters_in_mj_become_joules(fake_clock):
    nvml = FakeNvml([1_000_000, 5_000_000])  # counters since driver load: only differences count
    with NvmlMeter(nvml=nvml, clock=fake_clock, background=False) as meter:
        with meter.window("w") as w:
            fake_clock.advance(2.0)
            nvml.energy_mj[0] += 300_000  # 150 W on gpu0 for 2 s
            nvml.energy_mj[1] += 100_000  # 50 W on gpu1
    r = w.result
    assert r.energy_j == pytest.approx(400.0)
    assert r.rails["gpu0"].energy_j == pytest.approx(300.0)
    assert r.mean_w == pytest.approx(200.0)
    assert r.source == "nvml" and r.label == MEASURED and r.total_rail is None
    assert nvml.shutdowns == 1


def test_unsupported_gpu_is_unavailable():
    with pytest.raises(MeterUnavailableError, match="Volta"):
        NvmlMeter(nvml=FakeNvml([0], supported=False)).open()
    assert "Volta" in NvmlMeter.probe("/", nvml=FakeNvml([0], supported=False))


def test_gpu_lost_ends_window_with_error(fake_clock):
    nvml = FakeNvml([0], fail_after=2)  # open and window start succeed
    with NvmlMeter(nvml=nvml, clock=fake_clock, background=False) as meter:
        w = meter.window("w").start()
        fake_clock.advance(1.0)
        with pytest.raises(SensorLostError, match="GPU_IS_LOST"):
            w.stop()


def test_probe_without_driver(empty_root):
    assert "no NVIDIA driver" in NvmlMeter.probe(empty_root)


LIVE = os.path.exists("/proc/driver/nvidia/version") and importlib.util.find_spec("pynvml") is not None


@pytest.mark.hardware
@pytest.mark.skipif(not LIVE, reason="needs an NVIDIA driver, a Volta-or-newer GPU and nvidia-ml-py")
def test_live_nvml():
    reason = NvmlMeter.probe()
    if reason is not None:
        pytest.skip(reason)
    with NvmlMeter() as meter, meter.window("live") as w:
        time.sleep(1.0)
    assert w.result.energy_j > 0 and w.result.mean_w > 1.0
