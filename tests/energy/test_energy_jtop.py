"""jtop backend: conversion of a recorded ``jetson.power`` dict, a fake client stream, and a live test."""
import importlib.util
import os
import threading
import time

import pytest

from miro_edge.energy import MEASURED, SensorLostError
from miro_edge.energy.jtop_meter import JtopMeter, sample_from_jtop

# jetson.power as jtop 4.2 returns it on a Xavier NX (mW); VDD_IN moved to 'tot' with its name.
RECORDED_NX = {
    "rail": {
        "VDD_CPU_GPU_CV": {"volt": 5016, "curr": 602, "warn": 32760, "crit": 32760, "power": 3019,
                           "avg": 2210, "online": True, "type": "I2C", "status": "ok"},
        "VDD_SOC": {"volt": 5016, "curr": 297, "warn": 32760, "crit": 32760, "power": 1489,
                    "avg": 1402, "online": True, "type": "I2C", "status": "ok"},
    },
    "tot": {"volt": 5024, "curr": 1455, "warn": 32760, "crit": 32760, "power": 7310, "avg": 6102,
            "online": True, "type": "I2C", "status": "ok", "name": "VDD_IN"},
}
# A board without an input rail: jtop's 'tot' is its own sum and has no name.
RECORDED_SUM = {"rail": {"GPU": {"power": 1000, "avg": 900}, "CPU": {"power": 2000, "avg": 1800}},
                "tot": {"power": 3000, "avg": 2700}}


def test_recorded_dict_to_sample_uses_power_not_avg():
    s = sample_from_jtop(RECORDED_NX, 3.0)
    assert s.t_s == 3.0
    assert s.total_w == pytest.approx(7.310)
    assert s.rails_w == pytest.approx({"VDD_CPU_GPU_CV": 3.019, "VDD_SOC": 1.489, "VDD_IN": 7.310})


def test_dict_without_named_total():
    s = sample_from_jtop(RECORDED_SUM, 0.0)
    assert s.total_w == pytest.approx(3.0)
    assert "VDD_IN" not in s.rails_w


def test_jtop3_tuple_format_is_rejected_clearly():
    with pytest.raises(SensorLostError, match="4.2"):
        sample_from_jtop(({"cur": 1}, {}), 0.0)


class FakeJtop:
    """Shape of the jtop 4.x client: start/ok/close and a power dict that updates each period."""

    def __init__(self, interval, updates=None):
        self.interval = interval
        self.updates = updates
        self._n = 0
        self._running = False
        self._event = threading.Event()

    def start(self):
        self._running = True

    def ok(self):
        time.sleep(self.interval)
        self._n += 1
        if self.updates is not None and self._n > self.updates:
            return False
        return self._running

    @property
    def power(self):
        return RECORDED_NX

    def close(self):
        self._running = False


def test_stream_with_fake_client():
    with JtopMeter(client_factory=lambda interval: FakeJtop(interval), interval_s=0.02) as meter:
        assert meter.total_rail == "VDD_IN"
        with meter.window("w") as w:
            time.sleep(0.15)
    r = w.result
    assert r.source == "jtop" and r.label == MEASURED
    assert r.mean_w == pytest.approx(7.31)
    assert r.sample_count >= 3


def test_client_stopping_mid_window_is_sensor_lost():
    with JtopMeter(client_factory=lambda interval: FakeJtop(interval, updates=3), interval_s=0.02) as meter:
        with pytest.raises(SensorLostError):
            with meter.window("w") as w:
                deadline = time.monotonic() + 3.0
                while w.error is None and time.monotonic() < deadline:
                    time.sleep(0.01)


def test_probe_without_service(empty_root):
    assert "not running" in JtopMeter.probe(empty_root)


LIVE = os.path.exists("/run/jtop.sock") and importlib.util.find_spec("jtop") is not None


@pytest.mark.hardware
@pytest.mark.skipif(not LIVE, reason="needs a Jetson with the jtop service (/run/jtop.sock) and jetson-stats")
def test_live_jtop():
    with JtopMeter() as meter, meter.window("live") as w:
        time.sleep(1.5)
    assert w.result.energy_j > 0 and w.result.sample_count >= 2
