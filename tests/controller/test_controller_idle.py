"""Idle-window policy and the batch-boundary gate."""
import datetime
import threading
import time
from dataclasses import dataclass

import pytest

from miro_edge.config import from_dict
from miro_edge.controller.idle import IdleGate, IdlePolicy, IdlePolicyConfig, in_window, parse_time_window
from miro_edge.errors import ConfigError


@dataclass(frozen=True)
class Snap:
    """Stands in for energy's ResourceSnapshot: the two fields read plus unrelated ones."""

    live_load: float
    on_external_power: bool
    gpu_util: float = 0.0


def at(hh, mm):
    return datetime.datetime(2024, 5, 1, hh, mm)


def test_load_threshold_is_inclusive():
    policy = IdlePolicy(IdlePolicyConfig(max_live_load=0.3))
    assert policy.allows(Snap(0.3, False)).allowed
    denied = policy.allows(Snap(0.31, True))
    assert not denied.allowed
    assert denied.reason == "training paused: live load 0.31 > 0.30"


def test_unknown_load_is_never_idle():
    policy = IdlePolicy(IdlePolicyConfig())
    assert not policy.allows(Snap(float("nan"), True)).allowed
    assert "live load unknown" in policy.allows(Snap(None, True)).reason  # type: ignore[arg-type]


def test_external_power_only_when_asked():
    assert IdlePolicy(IdlePolicyConfig()).allows(Snap(0.0, False)).allowed
    policy = IdlePolicy(IdlePolicyConfig(require_external_power=True))
    assert policy.allows(Snap(0.0, True)).allowed
    assert policy.allows(Snap(0.0, False)).reason == "training paused: on battery"
    assert not policy.allows(Snap(0.0, None)).allowed  # type: ignore[arg-type]


def test_time_window_crossing_midnight():
    start, end = parse_time_window("23:00-02:00")
    assert in_window(datetime.time(23, 0), start, end)
    assert in_window(datetime.time(1, 59), start, end)
    assert not in_window(datetime.time(2, 0), start, end)
    assert not in_window(datetime.time(12, 0), start, end)
    policy = IdlePolicy(IdlePolicyConfig(time_window="23:00-02:00"))
    assert policy.allows(Snap(0.0, True), now=at(0, 30)).allowed
    assert not policy.allows(Snap(0.0, True), now=datetime.time(22, 59)).allowed


def test_injected_clock_is_used_when_now_is_omitted():
    clock_value = [at(3, 0)]
    policy = IdlePolicy(IdlePolicyConfig(time_window="01:00-05:00"), clock=lambda: clock_value[0])
    assert policy.allows(Snap(0.0, True)).allowed
    clock_value[0] = at(5, 0)
    assert policy.allows(Snap(0.0, True)).reason == "training paused: 05:00 outside 01:00-05:00"


def test_every_unmet_condition_is_named():
    policy = IdlePolicy(IdlePolicyConfig(max_live_load=0.1, require_external_power=True,
                                         time_window="01:00-05:00"))
    decision = policy.allows(Snap(0.5, False), now=at(12, 0))
    assert decision.reason == ("training paused: live load 0.50 > 0.10; on battery; "
                               "12:00 outside 01:00-05:00")
    ok = policy.allows(Snap(0.05, True), now=at(2, 0))
    assert ok.allowed and ok.reason == ("training allowed: live load 0.05 <= 0.10; on external power; "
                                        "02:00 inside 01:00-05:00")


@pytest.mark.parametrize("text", ["0100-0500", "01:00", "25:00-02:00", "01:00-01:00", "a-b"])
def test_bad_time_windows_are_config_errors(text):
    with pytest.raises(ConfigError, match="time_window"):
        IdlePolicyConfig(time_window=text)


def test_config_from_dict():
    cfg = from_dict(IdlePolicyConfig, {"max_live_load": 0.5, "time_window": "22:30-06:00"})
    assert cfg.time_window == "22:30-06:00"
    with pytest.raises(ConfigError, match="max_live_load"):
        IdlePolicyConfig(max_live_load=1.5)


def sequence(*snaps):
    it = iter(snaps)
    last = [snaps[-1]]

    def snapshot():
        last[0] = next(it, last[0])
        return last[0]
    return snapshot


def test_gate_returns_at_once_when_allowed():
    gate = IdleGate(IdlePolicy(IdlePolicyConfig()), sequence(Snap(0.0, True)))
    result = gate.wait_until_allowed(threading.Event(), poll_s=10.0)
    assert result.allowed and result.polls == 1 and result.waited_s == 0.0
    assert gate.pauses == 0


def test_gate_waits_through_busy_snapshots_and_counts_the_pause():
    gate = IdleGate(IdlePolicy(IdlePolicyConfig()), sequence(Snap(0.9, True), Snap(0.8, True), Snap(0.0, True)))
    result = gate.wait_until_allowed(threading.Event(), poll_s=0.001, timeout_s=5.0)
    assert result.allowed and result.polls == 3
    assert gate.pauses == 1 and gate.paused_s >= 0.001
    gate.wait_until_allowed(threading.Event(), poll_s=0.001, timeout_s=5.0)
    assert gate.pauses == 1  # allowed at once: not a pause


def test_gate_times_out_instead_of_blocking_forever():
    gate = IdleGate(IdlePolicy(IdlePolicyConfig()), sequence(Snap(1.0, True)))
    t0 = time.monotonic()
    result = gate.wait_until_allowed(None, poll_s=0.01, timeout_s=0.05)
    assert not result.allowed and "timed out" in result.reason and "live load 1.00" in result.reason
    assert 0.04 <= time.monotonic() - t0 < 2.0
    with pytest.raises(ConfigError, match="block forever"):
        gate.wait_until_allowed(None, poll_s=0.01)
    with pytest.raises(ConfigError, match="poll_s"):
        gate.wait_until_allowed(threading.Event(), poll_s=0)


def test_gate_is_interrupted_by_the_stop_event():
    gate = IdleGate(IdlePolicy(IdlePolicyConfig()), sequence(Snap(1.0, True)))
    stop = threading.Event()
    timer = threading.Timer(0.05, stop.set)
    timer.start()
    t0 = time.monotonic()
    try:
        result = gate.wait_until_allowed(stop, poll_s=30.0)  # a long poll must not delay the stop
    finally:
        timer.cancel()
    assert not result.allowed and result.reason.startswith("stopped")
    assert time.monotonic() - t0 < 5.0
    stop_now = threading.Event()
    stop_now.set()
    assert not gate.wait_until_allowed(stop_now, poll_s=30.0).allowed
