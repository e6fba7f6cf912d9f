"""Integration rules (trapezoid over power, counter differences) against hand-computed integrals."""
import pytest

from miro_edge.energy import MEASURED, PowerSample, integrate
from miro_edge.energy.integrate import Integrator, total_of
from miro_edge.errors import InputError


def power(t, w, **rails):
    return PowerSample(t, w, dict(rails))


def test_constant_5w_for_2s_is_10j():
    r = integrate([power(0.0, 5.0), power(1.0, 5.0), power(2.0, 5.0)], 0.0, 2.0, source="x")
    assert r.energy_j == pytest.approx(10.0)
    assert r.mean_w == pytest.approx(5.0)
    assert r.peak_w == pytest.approx(5.0)
    assert r.duration_s == pytest.approx(2.0)
    assert r.sample_count == 3
    assert r.source == "x" and r.label == MEASURED


def test_linear_ramp_is_trapezoid_exact():
    # 0 W -> 10 W over 2 s: integral = 10 J, sampled unevenly
    samples = [power(t, 5.0 * t) for t in (0.0, 0.3, 1.1, 2.0)]
    r = integrate(samples, 0.0, 2.0)
    assert r.energy_j == pytest.approx(10.0)
    assert r.peak_w == pytest.approx(10.0)


def test_window_edges_interpolate_inside_segments():
    # ramp p = 5 t sampled at 0, 1, 2; window [0.5, 1.5]: integral of 5t = 2.5*(1.5^2-0.5^2) = 5 J
    samples = [power(t, 5.0 * t) for t in (0.0, 1.0, 2.0)]
    r = integrate(samples, 0.5, 1.5)
    assert r.energy_j == pytest.approx(5.0)
    # the edges are interpolated (2.5 W and 7.5 W); only the real sample at t=1 is counted
    assert r.peak_w == pytest.approx(7.5)
    assert r.sample_count == 1


def test_tail_and_head_are_held_constant():
    r = integrate([power(1.0, 4.0)], 0.0, 3.0)
    assert r.energy_j == pytest.approx(12.0)


def test_per_rail_breakdown_and_total_rail():
    samples = [power(t, 6.0, VDD_IN=6.0, VDD_CPU_GPU_CV=2.0, VDD_SOC=1.0) for t in (0.0, 1.0, 2.0)]
    total_w, rail = total_of(samples[0].rails_w)
    assert (total_w, rail) == (6.0, "VDD_IN")  # never VDD_IN + the others
    r = integrate(samples, 0.0, 2.0, total_rail="VDD_IN")
    assert r.energy_j == pytest.approx(12.0)
    assert r.rails["VDD_CPU_GPU_CV"].energy_j == pytest.approx(4.0)
    assert r.rails["VDD_SOC"].mean_w == pytest.approx(1.0)
    assert r.total_rail == "VDD_IN"
    names = [f.name for f in r.figures()]
    assert "energy[VDD_SOC]" in names
    assert all(f.unit in ("J", "s", "W") for f in r.figures())


def counter(t, j, w=0.0):
    return PowerSample(t, w, {"pkg": w}, total_j=j, rails_j={"pkg": j})


def test_counter_source_uses_differences_and_interpolates_edges():
    # 3 W for 0..2 s then 7 W for 2..4 s as a cumulative counter
    samples = [counter(0.0, 0.0), counter(2.0, 6.0), counter(4.0, 20.0)]
    assert integrate(samples, 0.0, 4.0).energy_j == pytest.approx(20.0)
    r = integrate(samples, 1.0, 3.0)
    assert r.energy_j == pytest.approx(3.0 + 7.0)
    assert r.peak_w == pytest.approx(7.0)
    assert r.rails["pkg"].energy_j == pytest.approx(10.0)


def test_counter_head_before_first_sample_uses_first_rate():
    acc = Integrator(0.0)
    acc.add(counter(1.0, 100.0))
    acc.add(counter(2.0, 102.0))
    assert acc.result(2.0, "w", "rapl", MEASURED, None).energy_j == pytest.approx(4.0)


def test_integrate_rejects_reversed_window():
    with pytest.raises(InputError):
        integrate([], 2.0, 1.0)


def test_result_to_dict_carries_units_source_and_label():
    d = integrate([power(0.0, 2.0), power(1.0, 2.0)], 0.0, 1.0, source="ina3221").to_dict()
    assert d["energy_j"] == pytest.approx(2.0)
    assert d["source"] == "ina3221" and d["label"] == "measured"
    assert set(d) >= {"mean_w", "peak_w", "duration_s", "sample_count", "rails", "complete"}
