"""RAPL powercap backend on a fake /sys/class/powercap tree (wrap-around, sub-zones, permissions)."""
import pytest

from miro_edge.energy import MEASURED, MeterUnavailableError
from miro_edge.energy import rapl as rapl_mod
from miro_edge.energy.rapl import RaplMeter, discover_zones

RANGE_UJ = 262143328850  # a typical package max_energy_range_uj


def make_zone(root, zone, name, energy_uj, range_uj=RANGE_UJ):
    d = root / "sys/class/powercap" / zone
    d.mkdir(parents=True)
    (d / "name").write_text(name + "\n")
    (d / "energy_uj").write_text(f"{energy_uj}\n")
    (d / "max_energy_range_uj").write_text(f"{range_uj}\n")
    return d / "energy_uj"


def test_zones_and_total_without_psys(tmp_path):
    make_zone(tmp_path, "intel-rapl:0", "package-0", 0)
    make_zone(tmp_path, "intel-rapl:0:0", "core", 0)
    make_zone(tmp_path, "intel-rapl:0:1", "dram", 0)
    make_zone(tmp_path, "intel-rapl:1", "package-1", 0)
    (tmp_path / "sys/class/powercap/intel-rapl-mmio:0").mkdir()  # duplicate MMIO view: ignored
    zones = discover_zones(str(tmp_path))
    assert [z.rail for z in zones] == ["package-0", "package-0/core", "package-0/dram", "package-1"]
    assert rapl_mod.total_rails(zones) == (("package-0", "package-0/dram", "package-1"), None)


def test_psys_is_the_total_when_present(tmp_path):
    make_zone(tmp_path, "intel-rapl:0", "package-0", 0)
    make_zone(tmp_path, "intel-rapl:1", "psys", 0)
    assert rapl_mod.total_rails(discover_zones(str(tmp_path))) == (("psys",), "psys")


def test_energy_with_wrap_around(tmp_path, fake_clock):
    pkg = make_zone(tmp_path, "intel-rapl:0", "package-0", RANGE_UJ - 4_000_000)
    core = make_zone(tmp_path, "intel-rapl:0:0", "core", 10)
    with RaplMeter(root=str(tmp_path), clock=fake_clock, background=False) as meter:
        with meter.window("w") as w:
            fake_clock.advance(1.0)
            pkg.write_text(f"{RANGE_UJ - 1_000_000}\n")  # +3 J
            core.write_text(f"{10 + 2_000_000}\n")
            meter.sample_now()
            fake_clock.advance(1.0)
            pkg.write_text(f"{6_000_000}\n")  # wrapped: +1 J to the range, +6 J after
            core.write_text(f"{10 + 4_000_000}\n")
    r = w.result
    assert r.energy_j == pytest.approx(10.0)
    assert r.peak_w == pytest.approx(7.0)
    assert r.rails["package-0/core"].energy_j == pytest.approx(4.0)  # a part, not added to the total
    assert r.source == "rapl" and r.label == MEASURED


def test_permission_error_means_unavailable(tmp_path, monkeypatch):
    make_zone(tmp_path, "intel-rapl:0", "package-0", 0)

    def denied(path):
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(rapl_mod, "read_number", denied)
    reason = RaplMeter.probe(str(tmp_path))
    assert reason is not None and "root" in reason
    with pytest.raises(MeterUnavailableError, match="root"):
        RaplMeter(root=str(tmp_path)).open()


def test_no_zones(empty_root):
    assert "no RAPL zones" in RaplMeter.probe(empty_root)
