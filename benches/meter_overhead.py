"""Training throughput with the power sampler running at 10 Hz vs without it, in one run.

A small CNN (``create_model('cnn2d', (1, 8, 8), 10)``) trains on random data. Each repeat times
a fixed number of steps twice, once bare and once inside a measurement window of an open meter
sampling at 10 Hz (the trainer also reports its work with ``add_work`` every step, as it does in
the real loop); the order alternates between repeats so drift hits both sides. The meter is the
INA3221 sysfs backend reading a fake TX2 tree in a temp dir (real file reads, as on a Jetson,
without the i2c latency); ``--source model`` measures the calibrated model instead.

Metric: ``meter_throughput_ratio`` = median over repeats of (metered / bare throughput of the
same repeat), target >= 0.99. Pairing adjacent runs cancels the drift of a shared machine; the
ratio of the two medians is printed beside it.
"""
import tempfile
import time
from pathlib import Path

import _common  # noqa: F401  (puts the repository root on sys.path)
import torch
from _common import median, parser, result
from torch import nn

from miro_edge.energy import create_meter
from miro_edge.model.architectures import create_model

TX2_RAILS = {"0-0040/iio:device0": ("VDD_SYS_GPU", "VDD_SYS_SOC", "VDD_4V0_WIFI"),
             "0-0041/iio:device1": ("VDD_IN", "VDD_SYS_CPU", "VDD_SYS_DDR")}


def fake_tx2(root: Path) -> None:
    for device, rails in TX2_RAILS.items():
        d = root / "sys/bus/i2c/drivers/ina3221x" / device
        d.mkdir(parents=True)
        for ch, rail in enumerate(rails):
            (d / f"rail_name_{ch}").write_text(rail + "\n")
            (d / f"in_power{ch}_input").write_text(f"{1000 + 100 * ch}\n")


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--source", default="ina3221", choices=["ina3221", "model"])
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--steps", type=int, default=None, help="training steps per timed run")
    p.add_argument("--batch", type=int, default=64)
    args = p.parse_args()
    repeats = args.repeats or (15 if args.quick else 31)
    steps = args.steps or (60 if args.quick else 100)

    torch.manual_seed(0)
    model = create_model("cnn2d", (1, 8, 8), 10)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    xs = torch.randn(16, args.batch, 1, 8, 8)
    ys = torch.randint(0, 10, (16, args.batch))

    def train(n: int, meter=None) -> float:
        t0 = time.perf_counter()
        for i in range(n):
            x, y = xs[i % 16], ys[i % 16]
            opt.zero_grad()
            loss_fn(model(x), y).backward()
            opt.step()
            if meter is not None:
                meter.add_work(sample_passes=args.batch)
        return n * args.batch / (time.perf_counter() - t0)

    with tempfile.TemporaryDirectory() as tmp:
        fake_tx2(Path(tmp))
        meter = create_meter(args.source, root=tmp, interval_s=0.1)
        train(30)  # warm-up (allocator, kernels)
        bare, metered, samples = [], [], []
        with meter:
            for r in range(repeats):
                order = ("bare", "metered") if r % 2 == 0 else ("metered", "bare")
                for kind in order:
                    if kind == "bare":
                        bare.append(train(steps))
                    else:
                        with meter.window(f"repeat-{r}") as w:
                            metered.append(train(steps, meter))
                        samples.append(w.result.sample_count / w.result.duration_s)
    ratio = median([m / b for m, b in zip(metered, bare)])
    print(f"source {meter.source} ({meter.label}), {repeats} repeats x {steps} steps x batch {args.batch}, torch threads {torch.get_num_threads()}")
    print(f"bare     median {median(bare):.0f} samples/s  (min {min(bare):.0f}, max {max(bare):.0f})")
    print(f"metered  median {median(metered):.0f} samples/s  (min {min(metered):.0f}, max {max(metered):.0f})")
    print(f"sampler rate inside windows: median {median(samples):.1f} Hz")
    print(f"ratio of medians {median(metered) / median(bare):.4f}; median paired ratio {ratio:.4f} (target >= 0.99)")
    result("meter_throughput_ratio", round(ratio, 4))


if __name__ == "__main__":
    main()
