"""Calibrated energy model: estimates from time and reported work, profiles, and the NNLS fit."""
import threading

import numpy as np
import pytest
from energy_fakes import write

from miro_edge.energy import ESTIMATED, MEASURED, PROFILES, EnergyProfile, WindowResult, calibrate
from miro_edge.energy.model import ModelMeter, detect_profile, get_profile, load_profile, nnls, save_profile
from miro_edge.errors import ConfigError, InputError


def test_estimate_is_idle_times_time_plus_work(fake_clock):
    profile = EnergyProfile("t", idle_w=2.0, j_per_sample_pass=0.01, j_per_byte=1e-8)
    with ModelMeter(profile=profile, clock=fake_clock, background=False) as meter:
        meter.add_work(sample_passes=999)  # before the window: not charged to it
        with meter.window("trial") as w:
            fake_clock.advance(3.0)
            meter.add_work(sample_passes=500, bytes_read=100_000_000)
            meter.sample_now()
            fake_clock.advance(1.0)
    r = w.result
    assert r.energy_j == pytest.approx(2.0 * 4 + 0.01 * 500 + 1e-8 * 1e8)
    assert r.rails["idle"].energy_j == pytest.approx(8.0)
    assert r.rails["compute"].energy_j == pytest.approx(5.0)
    assert r.rails["io"].energy_j == pytest.approx(1.0)
    assert r.label == ESTIMATED and r.source == "model:t"
    assert all(f.label == ESTIMATED for f in r.figures())
    assert (r.sample_passes, r.bytes_read) == (500, 100_000_000)


def test_add_work_is_thread_safe():
    meter = ModelMeter(profile="tx2", background=False)

    def worker():
        for _ in range(2000):
            meter.add_work(sample_passes=1, bytes_read=3)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert meter.work_done() == (8000, 24000, 0.0)
    with pytest.raises(InputError):
        meter.add_work(sample_passes=-1)


def test_profiles_are_valid_data_and_detected_from_device_tree(tmp_path):
    assert {"tx2", "xavier_nx", "generic_cpu"} <= set(PROFILES)
    for p in PROFILES.values():
        assert p.idle_w > 0 and p.j_per_sample_pass > 0 and p.j_per_byte > 0 and p.note
    write(tmp_path / "proc/device-tree/model", "NVIDIA Jetson Xavier NX Developer Kit\x00")
    assert detect_profile(str(tmp_path)).name == "xavier_nx"
    assert detect_profile(str(tmp_path / "nothing")).name == "generic_cpu"
    with pytest.raises(ConfigError):
        EnergyProfile("bad", idle_w=-1.0, j_per_sample_pass=0.0, j_per_byte=0.0)
    with pytest.raises(ConfigError, match="unknown energy profile"):
        get_profile("tx3")


def test_profile_round_trip(tmp_path):
    p = EnergyProfile("cal", 1.5, 0.002, 3e-9, note="fitted")
    path = save_profile(p, tmp_path / "p.json")
    assert load_profile(path) == p
    assert get_profile(str(path)) == p


def window(duration, passes, nbytes, energy, label=MEASURED, name="w"):
    return WindowResult(name=name, source="ina3221", label=label, energy_j=energy, duration_s=duration,
                        mean_w=energy / duration, peak_w=0.0, sample_count=10, rails={}, total_rail="VDD_IN",
                        start_s=0.0, end_s=duration, sample_passes=passes, bytes_read=nbytes)


def test_calibrate_recovers_known_coefficients():
    true = EnergyProfile("true", idle_w=4.2, j_per_sample_pass=0.0035, j_per_byte=2e-8)
    rng = np.random.default_rng(0)
    windows = []
    for i in range(12):
        d, n, b = float(rng.uniform(1, 60)), int(rng.integers(0, 20000)), int(rng.integers(0, 10**9))
        windows.append(window(d, n, b, true.energy_j(d, n, b) * (1 + rng.normal(0, 0.002)), name=str(i)))
    cal = calibrate(windows)
    assert cal.profile.idle_w == pytest.approx(4.2, rel=0.02)
    assert cal.profile.j_per_sample_pass == pytest.approx(0.0035, rel=0.05)
    assert cal.profile.j_per_byte == pytest.approx(2e-8, rel=0.05)
    assert cal.windows == 12 and cal.rmse_j < 0.01 * cal.mean_energy_j


def test_calibrate_keeps_coefficients_non_negative_and_unobserved_from_base():
    # energy falls with work in this data: unconstrained least squares would give a negative slope
    windows = [window(10.0, 0, 0, 50.0), window(10.0, 1000, 0, 45.0), window(10.0, 2000, 0, 40.0)]
    cal = calibrate(windows, base="tx2")
    assert cal.profile.j_per_sample_pass == 0.0
    assert cal.profile.idle_w == pytest.approx(4.5)
    assert cal.profile.j_per_byte == PROFILES["tx2"].j_per_byte  # no reads in the data
    assert cal.fitted == ("idle_w", "j_per_sample_pass")


def test_calibrate_refuses_estimates_and_too_few_windows():
    with pytest.raises(InputError, match="measured"):
        calibrate([window(1, 1, 1, 1, label=ESTIMATED)])
    with pytest.raises(InputError, match="at least 2"):
        calibrate([window(1, 10, 0, 3)])


def test_nnls_matches_unconstrained_when_feasible():
    a = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    assert nnls(a, np.array([1.0, 2.0, 3.0])) == pytest.approx([1.0, 2.0])
    assert nnls(a, np.array([-1.0, 2.0, 1.0])) == pytest.approx([0.0, 1.5])
