"""Fake sysfs trees reproducing the documented Jetson layouts, and a controllable clock.

A plain module (not conftest) so tests can import it by a name unique in the test suite."""
import os
from pathlib import Path
from typing import Dict


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, t: float = 100.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, dt: float) -> None:
        self.t += dt


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")
    return path


#: TX2 / JetPack 4 (ina3221x IIO driver): rail -> (device dir, channel)
TX2_LAYOUT = {
    "VDD_SYS_GPU": ("0-0040/iio:device0", 0), "VDD_SYS_SOC": ("0-0040/iio:device0", 1),
    "VDD_4V0_WIFI": ("0-0040/iio:device0", 2), "VDD_IN": ("0-0041/iio:device1", 0),
    "VDD_SYS_CPU": ("0-0041/iio:device1", 1), "VDD_SYS_DDR": ("0-0041/iio:device1", 2),
}


def make_tx2_tree(root: Path, power_mw: Dict[str, float]) -> Dict[str, Path]:
    """``root/sys/bus/i2c/drivers/ina3221x/...``; returns rail -> its in_powerN_input file."""
    files = {}
    base = root / "sys/bus/i2c/drivers/ina3221x"
    for rail, (device, ch) in TX2_LAYOUT.items():
        d = base / device
        write(d / f"rail_name_{ch}", rail)
        write(d / f"in_voltage{ch}_input", "5000")
        write(d / f"in_current{ch}_input", str(int(power_mw.get(rail, 0) / 5)))
        files[rail] = write(d / f"in_power{ch}_input", str(int(power_mw.get(rail, 0))))
    return files


def set_power(path: Path, mw: float) -> None:
    path.write_text(f"{int(round(mw))}\n")


#: Xavier NX / JetPack 5 (ina3221 hwmon driver): channel -> rail
NX_CHANNELS = {1: "VDD_IN", 2: "VDD_CPU_GPU_CV", 3: "VDD_SOC"}


def make_nx_tree(root: Path, volt_mv: Dict[str, float], curr_ma: Dict[str, float],
                 hwmon: str = "hwmon5") -> Path:
    """``root/sys/bus/i2c/devices/7-0040/hwmon/<hwmon>/``; channel 7 is the shunt-voltage sum."""
    dev = root / "sys/bus/i2c/devices/7-0040"
    write(dev / "name", "ina3221")
    d = dev / "hwmon" / hwmon
    write(d / "name", "ina3221")
    for ch, rail in NX_CHANNELS.items():
        write(d / f"in{ch}_label", rail)
        write(d / f"in{ch}_input", str(int(volt_mv[rail])))
        write(d / f"curr{ch}_input", str(int(curr_ma[rail])))
        write(d / f"in{ch + 3}_input", "12")  # shunt voltages, unlabelled
    write(d / "in7_label", "sum of shunt voltages")
    write(d / "in7_input", "40")
    write(d / "curr4_input", "0")
    return d


def chmod_x(path: Path) -> None:
    os.chmod(str(path), 0o755)
