"""INA3221 sysfs backend on fake TX2 (JetPack 4, IIO) and Xavier NX (JetPack 5, hwmon) trees."""
import time

import pytest
from energy_fakes import TX2_LAYOUT, make_nx_tree, make_tx2_tree, set_power

from miro_edge.energy import MEASURED, MeterStateError, MeterUnavailableError, SensorLostError
from miro_edge.energy.ina3221 import Ina3221Meter, discover_rails
from miro_edge.errors import MiroEdgeError

TX2_IDLE = {"VDD_IN": 5000, "VDD_SYS_CPU": 1200, "VDD_SYS_GPU": 300, "VDD_SYS_SOC": 700,
            "VDD_SYS_DDR": 400, "VDD_4V0_WIFI": 0}


def test_tx2_rails_discovered_by_label(tmp_path):
    make_tx2_tree(tmp_path, TX2_IDLE)
    rails = discover_rails(str(tmp_path))
    assert sorted(r.name for r in rails) == sorted(TX2_LAYOUT)
    assert all(r.power_path and r.power_path.endswith("_input") for r in rails)


def test_nx_rails_from_hwmon_skip_channel_7_and_any_hwmon_number(tmp_path):
    make_nx_tree(tmp_path, {"VDD_IN": 5000, "VDD_CPU_GPU_CV": 5000, "VDD_SOC": 5000},
                 {"VDD_IN": 1000, "VDD_CPU_GPU_CV": 300, "VDD_SOC": 200}, hwmon="hwmon3")
    rails = {r.name: r for r in discover_rails(str(tmp_path))}
    assert sorted(rails) == ["VDD_CPU_GPU_CV", "VDD_IN", "VDD_SOC"]
    assert rails["VDD_IN"].read_w() == pytest.approx(5.0)  # 5000 mV * 1000 mA / 1e6
    assert rails["VDD_SOC"].read_w() == pytest.approx(1.0)


def test_hwmon_of_another_chip_is_ignored(tmp_path):
    d = make_nx_tree(tmp_path, {"VDD_IN": 1, "VDD_CPU_GPU_CV": 1, "VDD_SOC": 1}, {"VDD_IN": 1, "VDD_CPU_GPU_CV": 1,
                                                                                 "VDD_SOC": 1})
    (d / "name").write_text("lm75\n")
    (d.parent.parent / "name").write_text("lm75\n")
    assert discover_rails(str(tmp_path)) == []


def test_total_is_vdd_in_never_the_sum(tmp_path, fake_clock):
    make_tx2_tree(tmp_path, TX2_IDLE)
    with Ina3221Meter(root=str(tmp_path), clock=fake_clock, background=False) as meter:
        s = meter.sample_now()
    assert meter.total_rail == "VDD_IN"
    assert s.total_w == pytest.approx(5.0)
    assert s.rails_w["VDD_SYS_CPU"] == pytest.approx(1.2)


def test_constant_5w_for_2s_is_10j_with_fake_clock(tmp_path, fake_clock):
    make_tx2_tree(tmp_path, TX2_IDLE)
    with Ina3221Meter(root=str(tmp_path), clock=fake_clock, background=False) as meter:
        with meter.window("const") as w:
            fake_clock.advance(1.0)
            meter.sample_now()
            fake_clock.advance(1.0)
    r = w.result
    assert r.energy_j == pytest.approx(10.0)
    assert r.mean_w == pytest.approx(5.0)
    assert r.duration_s == pytest.approx(2.0)
    assert r.sample_count == 3
    assert r.source == "ina3221" and r.label == MEASURED
    assert r.rails["VDD_SYS_CPU"].energy_j == pytest.approx(2.4)


def test_linear_ramp_on_vdd_in(tmp_path, fake_clock):
    files = make_tx2_tree(tmp_path, {"VDD_IN": 0})
    with Ina3221Meter(root=str(tmp_path), clock=fake_clock, background=False) as meter:
        with meter.window("ramp") as w:
            for step in range(1, 5):  # 0, 2.5, 5, 7.5, 10 W at t = 0, .5, 1, 1.5, 2 s
                fake_clock.advance(0.5)
                set_power(files["VDD_IN"], 2500 * step)
                if step < 4:
                    meter.sample_now()
    assert w.result.energy_j == pytest.approx(10.0)
    assert w.result.peak_w == pytest.approx(10.0)
    assert w.result.sample_count == 5


def test_windows_nest_and_record_work(tmp_path, fake_clock):
    make_tx2_tree(tmp_path, TX2_IDLE)
    with Ina3221Meter(root=str(tmp_path), clock=fake_clock, background=False) as meter:
        with meter.window("task") as outer:
            fake_clock.advance(1.0)
            with meter.window("trial") as inner:
                meter.add_work(sample_passes=64, bytes_read=4096)
                fake_clock.advance(0.5)
            fake_clock.advance(1.0)
    assert outer.result.energy_j == pytest.approx(12.5)
    assert inner.result.energy_j == pytest.approx(2.5)
    assert (inner.result.sample_passes, inner.result.bytes_read) == (64, 4096)
    assert outer.result.sample_passes == 64


def test_background_sampler_runs_and_stops_within_one_period(tmp_path):
    make_tx2_tree(tmp_path, TX2_IDLE)
    meter = Ina3221Meter(root=str(tmp_path), interval_s=0.5)
    meter.open()
    deadline = time.monotonic() + 3.0
    while meter.samples_taken < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert meter.samples_taken >= 2
    thread = meter._thread
    t0 = time.monotonic()
    meter.close()
    assert time.monotonic() - t0 < 0.5
    assert thread is not None and not thread.is_alive()
    assert not meter.is_open


def test_background_samples_fill_window(tmp_path):
    make_tx2_tree(tmp_path, TX2_IDLE)
    with Ina3221Meter(root=str(tmp_path), interval_s=0.02) as meter:
        with meter.window("busy") as w:
            time.sleep(0.25)
    r = w.result
    assert r.sample_count >= 5
    assert r.mean_w == pytest.approx(5.0)
    assert r.energy_j == pytest.approx(5.0 * r.duration_s)


def test_sensor_removed_mid_window_raises_and_keeps_samples(tmp_path):
    files = make_tx2_tree(tmp_path, TX2_IDLE)
    with Ina3221Meter(root=str(tmp_path), interval_s=0.02) as meter:
        with pytest.raises(SensorLostError) as info:
            with meter.window("trial-3") as w:
                deadline = time.monotonic() + 3.0
                while len(w.samples) < 4 and time.monotonic() < deadline:
                    time.sleep(0.01)
                files["VDD_IN"].unlink()
                deadline = time.monotonic() + 3.0
                while w.error is None and time.monotonic() < deadline:
                    time.sleep(0.01)
        err = info.value
        assert isinstance(err, MiroEdgeError)
        assert "trial-3" in str(err) and "VDD_IN" in str(err)
        assert len(err.samples) >= 4 and err.samples == list(w.samples)
        assert err.partial is not None and not err.partial.complete
        assert err.partial.energy_j == pytest.approx(5.0 * err.partial.duration_s)
        with pytest.raises(SensorLostError):
            _ = w.result
        with pytest.raises(SensorLostError):  # the meter refuses new windows until reopened
            meter.window("next").start()


def test_sensor_removed_at_window_end_without_sampler(tmp_path, fake_clock):
    files = make_tx2_tree(tmp_path, TX2_IDLE)
    with Ina3221Meter(root=str(tmp_path), clock=fake_clock, background=False) as meter:
        w = meter.window("w").start()
        fake_clock.advance(1.0)
        meter.sample_now()
        files["VDD_SYS_GPU"].unlink()
        fake_clock.advance(1.0)
        with pytest.raises(SensorLostError) as info:
            w.stop()
    assert info.value.partial.energy_j == pytest.approx(5.0)
    assert len(info.value.samples) == 2


def test_open_without_sensor_names_the_fix(empty_root):
    with pytest.raises(MeterUnavailableError, match="--source"):
        Ina3221Meter(root=empty_root).open()


def test_window_misuse_is_an_error(tmp_path):
    make_tx2_tree(tmp_path, TX2_IDLE)
    meter = Ina3221Meter(root=str(tmp_path), background=False)
    with pytest.raises(MeterStateError):
        meter.window("closed").start()
    with meter:
        w = meter.window("w")
        with pytest.raises(MeterStateError):
            _ = w.result


def test_watch_requires_an_end_and_yields_new_samples(tmp_path):
    from miro_edge.energy import watch
    from miro_edge.errors import InputError
    make_tx2_tree(tmp_path, TX2_IDLE)
    with Ina3221Meter(root=str(tmp_path), interval_s=0.01) as meter:
        with pytest.raises(InputError):
            next(watch(meter))
        got = list(watch(meter, count=4))
    assert len(got) == 4
    assert all(b.t_s > a.t_s for a, b in zip(got, got[1:]))
