"""tegrastats parsing (JetPack 4, 5, 6 line formats) and the streaming subprocess meter."""
import sys
import textwrap
import time

import pytest

from miro_edge.energy import MEASURED, PowerSample, SensorLostError, integrate
from miro_edge.energy.tegrastats import TegrastatsMeter, parse_line

# Recorded-style lines, one per generation (field sets as each JetPack prints them).
JP4_TX2 = ("RAM 2102/7846MB (lfb 1102x4MB) SWAP 0/3923MB (cached 0MB) CPU [12%@2035,off,off,9%@2035,"
           "7%@2035,10%@2035] EMC_FREQ 4%@1866 GR3D_FREQ 31%@1300 APE 150 PLL@43.5C MCPU@43.5C "
           "PMIC@100C Tboard@38C GPU@40.5C BCPU@43.5C thermal@42.2C Tdiode@40.5C VDD_SYS_GPU 1452/1188 "
           "VDD_SYS_SOC 915/882 VDD_4V0_WIFI 0/19 VDD_IN 5654/5003 VDD_SYS_CPU 762/711 VDD_SYS_DDR 1048/960")
JP5_NX = ("RAM 3012/7765MB (lfb 212x4MB) SWAP 0/3883MB (cached 0MB) CPU [23%@1420,18%@1420,20%@1420,"
          "17%@1420,off,off] EMC_FREQ 0%@1600 GR3D_FREQ 45%@1109 NVDEC off NVDLA0 off NVDLA1 off "
          "VIC_FREQ 115 APE 150 AUX@39C CPU@41.5C thermal@40.35C AO@38.5C GPU@40C PMIC@50C "
          "VDD_IN 7313mW/6102mW VDD_CPU_GPU_CV 3021mW/2511mW VDD_SOC 1490mW/1402mW")
JP6_ORIN = ("11-07-2024 10:12:36 RAM 2547/7620MB (lfb 2x4MB) SWAP 0/3810MB (cached 0MB) CPU [8%@1510,"
            "4%@1510,2%@1510,3%@1510,0%@729,0%@729] GR3D_FREQ 12%@[1300,1300] cpu@47.5C soc2@45.1C "
            "soc0@46.2C gpu@45.9C tj@47.5C soc1@45.3C VDD_IN 5139mW/5139mW/5139mW "
            "VDD_CPU_GPU_CV 964mW/964mW/964mW VDD_SOC 1435mW/1435mW/1435mW")


def test_parse_jetpack4_values_without_unit():
    r = parse_line(JP4_TX2)
    assert r is not None and r.timestamp is None
    assert r.rails_mw == {"VDD_SYS_GPU": 1452, "VDD_SYS_SOC": 915, "VDD_4V0_WIFI": 0, "VDD_IN": 5654,
                          "VDD_SYS_CPU": 762, "VDD_SYS_DDR": 1048}
    s = r.to_sample(1.0)
    assert s.total_w == pytest.approx(5.654)  # VDD_IN, not the sum of all rails


def test_parse_jetpack5_mw_unit_uses_current_not_average():
    r = parse_line(JP5_NX)
    assert r.rails_mw == {"VDD_IN": 7313, "VDD_CPU_GPU_CV": 3021, "VDD_SOC": 1490}


def test_parse_jetpack6_timestamp_and_three_values():
    r = parse_line(JP6_ORIN)
    assert r.timestamp == "11-07-2024 10:12:36"
    assert r.rails_mw == {"VDD_IN": 5139, "VDD_CPU_GPU_CV": 964, "VDD_SOC": 1435}


def test_memory_fields_are_not_rails():
    r = parse_line(JP4_TX2)
    assert not {"RAM", "SWAP", "IRAM"} & set(r.rails_mw)
    assert parse_line("RAM 2102/7846MB (lfb 1102x4MB) SWAP 0/3923MB (cached 0MB) IRAM 0/252kB(lfb 252kB)") is None


def test_nano_style_total_rail():
    r = parse_line("RAM 1/2MB POM_5V_IN 3008/3008 POM_5V_GPU 0/0 POM_5V_CPU 571/571")
    assert r.to_sample(0.0).total_w == pytest.approx(3.008)


def test_parsed_lines_integrate_to_hand_computed_energy():
    # 1 s apart: VDD_IN 5.654 W then 7.313 W -> trapezoid (5.654 + 7.313) / 2
    a = parse_line(JP4_TX2).to_sample(0.0)
    b = parse_line(JP5_NX).to_sample(1.0)
    r = integrate([a, PowerSample(b.t_s, b.total_w, {})], 0.0, 1.0)
    assert r.energy_j == pytest.approx((5.654 + 7.313) / 2)


def _script(tmp_path, lines, exit_after=True, status=0):
    path = tmp_path / "fake_tegrastats.py"
    path.write_text(textwrap.dedent("""
        import sys, time
        args = sys.argv[1:]
        assert args[0] == "--interval", args
        period = int(args[1]) / 1000.0
        lines = {lines!r}
        with open({log!r}, "w") as log:
            log.write(" ".join(args))
        i = 0
        while True:
            print(lines[i % len(lines)], flush=True)
            i += 1
            if {exit_after!r} and i >= len(lines):
                sys.exit({status})
            time.sleep(period)
    """).format(lines=lines, log=str(tmp_path / "args.txt"), exit_after=exit_after, status=status))
    return [sys.executable, str(path)]


def test_stream_from_subprocess_and_interval_flag(tmp_path):
    cmd = _script(tmp_path, [JP5_NX, "some line without rails", JP6_ORIN], exit_after=False)
    with TegrastatsMeter(command=cmd, interval_s=0.02) as meter:
        assert meter.wait_sample(None, 5.0) is not None
        with meter.window("w") as w:
            deadline = time.monotonic() + 5.0
            while len(w.samples) < 4 and time.monotonic() < deadline:
                time.sleep(0.01)
        assert meter.rails() == ["VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"]
        proc = meter._proc
    assert (tmp_path / "args.txt").read_text() == "--interval 20"
    assert proc.poll() is not None  # the subprocess is gone after close
    r = w.result
    assert r.source == "tegrastats" and r.label == MEASURED and r.total_rail == "VDD_IN"
    assert r.sample_count >= 4
    assert 5.1 * r.duration_s <= r.energy_j <= 7.4 * r.duration_s


def test_close_stops_the_stream_promptly(tmp_path):
    cmd = _script(tmp_path, [JP4_TX2], exit_after=False)
    meter = TegrastatsMeter(command=cmd, interval_s=0.2).open()
    assert meter.wait_sample(None, 5.0) is not None
    t0 = time.monotonic()
    meter.close()
    assert time.monotonic() - t0 < 1.0


def test_tegrastats_dying_mid_window_is_sensor_lost(tmp_path):
    cmd = _script(tmp_path, [JP4_TX2] * 10, exit_after=True, status=3)
    with TegrastatsMeter(command=cmd, interval_s=0.03) as meter:
        assert meter.wait_sample(None, 5.0) is not None
        with pytest.raises(SensorLostError, match="status 3") as info:
            with meter.window("w") as w:
                deadline = time.monotonic() + 5.0
                while w.error is None and time.monotonic() < deadline:
                    time.sleep(0.01)
    assert len(info.value.samples) >= 1


def test_missing_binary_is_unavailable(empty_root):
    assert "not found" in TegrastatsMeter.probe(empty_root)
