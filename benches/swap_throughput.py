"""Training throughput with swapping (swap_ratio=1.0) vs none (0.0), one run.

Same model, data, EM and store; runs alternate to share the machine's noise. CarM measured
+71.6% training time for synchronous swapping; ours reads off the training thread.
``--mode deterministic`` (the default, what configs ship) applies each minibatch's swaps at a
fixed later step and makes the trainer wait for a late read; ``--mode async`` lets swaps land
whenever reads finish; ``--mode both`` measures the two in the same run, interleaved.
Metric: swap_throughput_ratio = median samples/s with swapping / without (target >= 0.95), per
mode; with ``both`` also deterministic_vs_async (median paired ratio of the two swapping runs).
"""
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _common import median, parser, result

from miro_edge.data import ClassIncrementalStream, load_source
from miro_edge.memory.em import EpisodicMemory
from miro_edge.memory.sb import StreamBuffer
from miro_edge.memory.store import SampleStore
from miro_edge.memory.swap import SwapConfig
from miro_edge.memory.swap_modes import create_swap_worker
from miro_edge.model.architectures import create_model
from miro_edge.train.callbacks import SwapCallback
from miro_edge.train.trainer import IncrementalTrainer, TrainConfig


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--mode", choices=("deterministic", "async", "both"), default="deterministic",
                   help="swap mode measured against no swapping")
    args = p.parse_args()
    modes = ("deterministic", "async") if args.mode == "both" else (args.mode,)
    repeats = 9 if args.quick else 25
    torch.manual_seed(0)
    stream = ClassIncrementalStream(load_source("digits"), 2, seed=0)
    tasks = list(stream)
    with tempfile.TemporaryDirectory() as tmp:
        with SampleStore(Path(tmp) / "store", sample_shape=stream.input_shape, dtype=np.float32) as store:
            for task in tasks[:-1]:
                store.ingest_batch(task.x_train, task.y_train, task.task_id)
            old_classes = [c for t in tasks[:-1] for c in t.classes]
            em = EpisodicMemory(0, stream.input_shape)
            em.rebalance(200, old_classes, store, np.random.default_rng(0))
            last = tasks[-1]
            sb = StreamBuffer(len(last.y_train), stream.input_shape)
            sb.add(last.x_train, last.y_train)
            config = TrainConfig(model="cnn2d", epochs=5, batch_size=32)  # default width 32
            runs = [("none", 0.0)] + [(m, 1.0) for m in modes]
            rates: dict = {name: [] for name, _ in runs}
            swaps = {m: 0 for m in modes}
            wait = {m: 0.0 for m in modes}
            for _ in range(repeats):
                for name, ratio in runs:
                    trainer = IncrementalTrainer(create_model("cnn2d", stream.input_shape, 10, config.width), config)
                    swap = SwapConfig(swap_ratio=ratio, max_backlog=256, mode="async" if name == "none" else name)
                    t0 = time.perf_counter()  # includes draining pending swaps at the end
                    with create_swap_worker(em, store, swap) as worker:
                        report = trainer.fit(last.task_id, sb, em, callbacks=[SwapCallback(worker)])
                    elapsed = time.perf_counter() - t0
                    rates[name].append(report.sample_passes / elapsed)
                    if ratio:
                        swaps[name] += worker.stats().swaps_done
                        wait[name] += worker.stats().wait_s
            base = median(rates["none"])
            print(f"no swapping : {base:8.0f} samples/s (median of {repeats})")
            for mode in modes:
                # each group ran back to back: the median of per-pair ratios cancels slow drifts in load
                ratio = median([b / a for a, b in zip(rates["none"], rates[mode])])
                print(f"swap ratio 1, {mode:13s}: {median(rates[mode]):8.0f} samples/s, {swaps[mode]} EM slots swapped, trainer waited {wait[mode]:.2f}s in "
                      f"all; ratio of medians {median(rates[mode]) / base:.3f}; median of paired ratios {ratio:.3f}")
                result("swap_throughput_ratio" if len(modes) == 1 else "swap_throughput_ratio_" + mode,
                       round(ratio, 4))
            if len(modes) == 2:
                result("deterministic_vs_async", round(median(
                    [d / a for d, a in zip(rates["deterministic"], rates["async"])]), 4))

if __name__ == "__main__":
    main()
