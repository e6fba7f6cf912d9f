"""Energy that scales with the model: FLOPs counted from the layers, charged by the model meter,
and fitted by ``calibrate`` (library and ``miro-edge calibrate`` in a subprocess)."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from energy_fakes import make_tx2_tree, set_power
from torch import nn

from miro_edge.energy import MEASURED, EnergyProfile, WindowResult, calibrate
from miro_edge.energy.ina3221 import Ina3221Meter
from miro_edge.energy.model import ModelMeter, load_profile
from miro_edge.energy.window_records import read_windows
from miro_edge.memory.em import EpisodicMemory
from miro_edge.memory.sb import StreamBuffer
from miro_edge.model.architectures import create_model
from miro_edge.train.callbacks import WorkCounterCallback
from miro_edge.train.flops import count_flops
from miro_edge.train.trainer import IncrementalTrainer, TrainConfig


def test_flops_match_a_hand_count_and_leave_the_model_as_it_was():
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 8 * 8, 10))
    model.train()
    stats = model[1].running_mean.clone()
    count = count_flops(model, (1, 8, 8))
    conv = 2 * (4 * 8 * 8) * 9 * 1 + 4 * 8 * 8
    linear = 2 * 10 * 256 + 10
    assert count.forward_flops == conv + linear and count.layers == 2
    assert count.train_flops == 3 * (conv + linear)
    assert model.training and torch.equal(model[1].running_mean, stats)


def fit_energy(width: int, passes_out: list) -> float:
    """Compute-rail joules per sample pass of a real fit of cnn2d at ``width`` on the model meter."""
    torch.manual_seed(0)
    shape = (1, 8, 8)
    model = create_model("cnn2d", shape, 2, width)
    sb = StreamBuffer(64, shape, np.random.default_rng(0))
    rng = np.random.default_rng(0)
    sb.add(rng.random((64,) + shape, dtype=np.float32), rng.integers(0, 2, 64))
    profile = EnergyProfile("t", idle_w=0.0, j_per_sample_pass=0.01, j_per_byte=0.0, j_per_gflop=1.0)
    with ModelMeter(profile=profile, background=False) as meter:
        with meter.window("fit") as w:
            report = IncrementalTrainer(model, TrainConfig(epochs=2, batch_size=16)).fit(
                0, sb, EpisodicMemory(0, shape), callbacks=[WorkCounterCallback(meter.add_work)])
    passes_out.append(report.sample_passes)
    assert w.result.sample_passes == report.sample_passes == 128
    assert w.result.flops == pytest.approx(128 * count_flops(model, shape).train_flops)
    return w.result.rails["compute"].energy_j / report.sample_passes


def test_a_wider_model_is_charged_more_per_sample_pass():
    passes: list = []
    narrow, wide = fit_energy(8, passes), fit_energy(32, passes)
    assert passes[0] == passes[1]
    assert wide > narrow * 1.5  # cnn2d's FLOPs grow about with width squared
    flops_narrow = count_flops(create_model("cnn2d", (1, 8, 8), 2, 8), (1, 8, 8)).train_flops
    assert narrow == pytest.approx(0.01 + flops_narrow / 1e9, rel=1e-6)


TRUE = EnergyProfile("true", idle_w=3.1, j_per_sample_pass=0.004, j_per_byte=2e-8, j_per_gflop=0.35)


def synthetic_windows(seed: int = 0, noise: float = 0.002) -> list:
    """Idle, training at three model sizes (FLOPs per pass differ) and store-read windows."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(16):
        d = float(rng.uniform(2, 60))
        per_pass = [0.0, 1.6e6, 6.3e6, 32e6][i % 4]  # every fourth window idle
        n = 0 if per_pass == 0 else int(rng.integers(1000, 30000))
        b = int(rng.integers(0, 5 * 10 ** 8)) if i % 3 == 0 else 0
        e = TRUE.energy_j(d, n, b, n * per_pass) * (1 + rng.normal(0, noise))
        out.append(WindowResult(name=f"w{i}", source="ina3221", label=MEASURED, energy_j=e, duration_s=d,
                                mean_w=e / d, peak_w=0.0, sample_count=10, rails={}, total_rail="VDD_IN",
                                start_s=0.0, end_s=d, sample_passes=n, bytes_read=b, flops=n * per_pass))
    return out


def test_calibrate_recovers_four_known_coefficients_within_five_percent():
    cal = calibrate(synthetic_windows())
    for key in ("idle_w", "j_per_sample_pass", "j_per_gflop", "j_per_byte"):
        assert getattr(cal.profile, key) == pytest.approx(getattr(TRUE, key), rel=0.05), key
    assert cal.fitted == ("idle_w", "j_per_sample_pass", "j_per_gflop", "j_per_byte")


def test_one_model_only_is_charged_per_gflop():
    windows = [w for w in synthetic_windows(noise=0.0) if w.flops == w.sample_passes * 6.3e6]  # idle + one model
    cal = calibrate(windows)
    assert cal.profile.j_per_sample_pass == 0.0 and "j_per_sample_pass" not in cal.fitted
    train = next(w for w in windows if w.sample_passes)
    predicted = cal.profile.energy_j(train.duration_s, train.sample_passes, train.bytes_read, train.flops)
    assert predicted == pytest.approx(train.energy_j, rel=0.01)


def record_ina3221_windows(tmp_path, fake_clock) -> str:
    """Windows measured through the INA3221 meter on a fake TX2 sysfs tree: board power in each
    window follows TRUE for the work reported in it. Written as the recorder writes them."""
    files = make_tx2_tree(tmp_path / "board", {"VDD_IN": 0})
    path = tmp_path / "windows.jsonl"
    plan = [(10.0, 0, 0.0, 0), (20.0, 8000, 1.6e6, 0), (15.0, 12000, 6.3e6, 0), (30.0, 4000, 32e6, 0),
            (12.0, 20000, 1.6e6, 3 * 10 ** 8), (25.0, 6000, 32e6, 10 ** 8), (18.0, 9000, 6.3e6, 2 * 10 ** 8)]
    with Ina3221Meter(root=str(tmp_path / "board"), clock=fake_clock, background=False) as meter, \
            open(str(path), "w") as out:
        out.write(json.dumps({"kind": "session_start", "meter": "ina3221"}) + "\n")
        for i, (seconds, passes, per_pass, nbytes) in enumerate(plan):
            watts = TRUE.energy_j(seconds, passes, nbytes, passes * per_pass) / seconds
            set_power(files["VDD_IN"], 1000 * watts)
            meter.sample_now()
            with meter.window(f"w{i}") as w:
                meter.add_work(sample_passes=passes, bytes_read=nbytes, flops=passes * per_pass)
                fake_clock.advance(seconds)
            out.write(json.dumps(dict(w.result.to_dict(), kind="trial_window")) + "\n")
    return str(path)


def test_calibrate_cli_fits_recorded_ina3221_windows(tmp_path, fake_clock):
    windows = record_ina3221_windows(tmp_path, fake_clock)
    assert len(read_windows(windows)) == 7
    profile_path = tmp_path / "board.json"
    out = subprocess.run([sys.executable, "-m", "miro_edge", "calibrate", "--windows", windows,
                          "--out", str(profile_path), "--name", "my-tx2"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "fitted on 7 measured windows (source ina3221)" in out.stdout
    profile = load_profile(profile_path)
    assert profile.name == "my-tx2"
    for key in ("idle_w", "j_per_sample_pass", "j_per_gflop", "j_per_byte"):
        assert getattr(profile, key) == pytest.approx(getattr(TRUE, key), rel=0.05), key


def test_calibrate_cli_refuses_estimated_windows_with_one_error_line(tmp_path):
    path = tmp_path / "results.jsonl"
    record = {"kind": "trial_window", "window": "trial-0", "source": "model:generic_cpu", "label": "estimated",
              "energy_j": 12.0, "duration_s": 1.0, "sample_passes": 10, "bytes_read": 0}
    path.write_text(json.dumps(record) + "\n")
    out = subprocess.run([sys.executable, "-m", "miro_edge", "calibrate", "--windows", str(path),
                          "--out", str(tmp_path / "p.json")], capture_output=True, text=True)
    assert out.returncode == 1
    assert out.stderr.strip().startswith("Error:") and "estimates: trial-0" in out.stderr
    assert not (tmp_path / "p.json").exists()
