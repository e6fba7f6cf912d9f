"""ResourceMonitor on fake /proc and /sys trees: cgroup limits, PSI, diskstats, power supply, load."""
import dataclasses
import threading

import pytest
from energy_fakes import FakeClock, write

from miro_edge.device import LoadGauge, ResourceMonitor, ResourceSnapshot
from miro_edge.device.resources import read_memory, read_power_supply
from miro_edge.errors import InputError

GIB = 1024 ** 3


def meminfo(root, available_kb):
    write(root / "proc/meminfo", "MemTotal:        7846000 kB\nMemFree:          500000 kB\n"
                                 f"MemAvailable:    {available_kb} kB\nBuffers:           1000 kB")


def test_meminfo_only(tmp_path):
    meminfo(tmp_path, 2 * 1024 * 1024)
    m = read_memory(str(tmp_path))
    assert (m.available_bytes, m.limit_bytes, m.source) == (2 * GIB, None, "meminfo")


def test_cgroup_v2_limit_wins_when_tighter(tmp_path):
    meminfo(tmp_path, 6 * 1024 * 1024)
    write(tmp_path / "proc/self/cgroup", "0::/docker/abc")
    cg = tmp_path / "sys/fs/cgroup/docker/abc"
    write(cg / "memory.max", str(2 * GIB))
    write(cg / "memory.current", str(GIB + 256 * 1024 ** 2))
    write(cg / "memory.stat", f"anon 100\nfile 300000000\ninactive_file {256 * 1024 ** 2}\nactive_file 5")
    m = read_memory(str(tmp_path))
    assert m.source == "cgroup-v2" and m.limit_bytes == 2 * GIB
    assert m.available_bytes == GIB  # 2 GiB - (1.25 GiB used - 0.25 GiB reclaimable cache)


def test_cgroup_v2_unlimited_falls_back_to_meminfo(tmp_path):
    meminfo(tmp_path, 1024 * 1024)
    write(tmp_path / "proc/self/cgroup", "0::/")
    write(tmp_path / "sys/fs/cgroup/memory.max", "max")
    write(tmp_path / "sys/fs/cgroup/memory.current", "12345")
    assert read_memory(str(tmp_path)).source == "meminfo"


def test_cgroup_v1(tmp_path):
    meminfo(tmp_path, 6 * 1024 * 1024)
    write(tmp_path / "proc/self/cgroup", "12:memory:/\n11:cpu,cpuacct:/")
    write(tmp_path / "sys/fs/cgroup/memory/memory.limit_in_bytes", str(3 * GIB))
    write(tmp_path / "sys/fs/cgroup/memory/memory.usage_in_bytes", str(2 * GIB))
    m = read_memory(str(tmp_path))
    assert (m.available_bytes, m.source) == (GIB, "cgroup-v1")
    write(tmp_path / "sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712")  # no limit
    assert read_memory(str(tmp_path)).source == "meminfo"


def test_psi_io_pressure(tmp_path):
    meminfo(tmp_path, 1024)
    write(tmp_path / "proc/pressure/io", "some avg10=12.50 avg60=3.00 avg300=1.00 total=123\n"
                                         "full avg10=10.00 avg60=2.00 avg300=0.50 total=100")
    snap = ResourceMonitor(root=str(tmp_path)).snapshot()
    assert snap.io_pressure == pytest.approx(0.125)
    assert snap.io_pressure_source == "psi-some-avg10"


def diskstats(root, io_ms_sda, io_ms_part):
    write(root / "proc/diskstats",
          f"   8       0 sda 100 0 800 50 20 0 160 40 0 {io_ms_sda} 90 0 0 0 0\n"
          f"   8       1 sda1 90 0 700 45 20 0 160 40 0 {io_ms_part} 85 0 0 0 0\n"
          "   7       0 loop0 5 0 10 1 0 0 0 0 0 9999 1 0 0 0 0")


def test_diskstats_utilisation_between_two_reads(tmp_path):
    meminfo(tmp_path, 1024)
    (tmp_path / "sys/block/sda").mkdir(parents=True)
    (tmp_path / "sys/block/loop0").mkdir(parents=True)
    clock = FakeClock(10.0)
    diskstats(tmp_path, 1000, 1000)
    mon = ResourceMonitor(root=str(tmp_path), clock=clock)
    clock.advance(2.0)
    diskstats(tmp_path, 1500, 9000)  # sda busy 500 ms of 2000 ms; the partition is not a disk
    snap = mon.snapshot()
    assert snap.io_pressure == pytest.approx(0.25)
    assert snap.io_pressure_source == "diskstats-util"


def test_power_supply_states(tmp_path):
    assert read_power_supply(str(tmp_path)) == (True, "no-power-supply-info")
    base = tmp_path / "sys/class/power_supply"
    write(base / "usb/type", "USB")
    write(base / "usb/online", "0")
    assert read_power_supply(str(tmp_path)) == (True, "no-battery")  # a Jetson dev kit
    write(base / "BAT0/type", "Battery")
    write(base / "AC/type", "Mains")
    write(base / "AC/online", "0")
    assert read_power_supply(str(tmp_path)) == (False, "battery")
    write(base / "AC/online", "1")
    assert read_power_supply(str(tmp_path)) == (True, "mains-online")


def test_load_gauge_and_snapshot(tmp_path):
    meminfo(tmp_path, 1024 * 1024)
    gauge = LoadGauge()
    mon = ResourceMonitor(root=str(tmp_path), gauge=gauge)
    assert mon.snapshot().live_load == 0.0
    threads = [threading.Thread(target=lambda v=v: [gauge.set(v) for _ in range(500)]) for v in (0.2, 0.4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    snap = mon.snapshot()
    assert snap.live_load in (0.2, 0.4)
    assert isinstance(snap, ResourceSnapshot) and snap.rss_bytes > 1024 * 1024
    assert snap.mem_available_mb == pytest.approx(1024.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        snap.live_load = 1.0  # type: ignore[misc]  # frozen
    gauge.set(3.0)
    assert gauge.get() == 1.0
    with pytest.raises(InputError):
        gauge.set(float("nan"))


def test_real_host_snapshot_is_sane():
    snap = ResourceMonitor().snapshot()
    assert snap.mem_available_bytes > 0
    assert snap.io_pressure is None or 0.0 <= snap.io_pressure <= 1.0
