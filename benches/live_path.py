"""Live path benchmark: engine-wrapper overhead, ORT vs PyTorch, and a paced run with hot swaps.

Part 1 (batch latency, cnn2d on 8x8 digits):
- engine_overhead_vs_ort: median per-frame latency of our OrtEngine.infer / a bare
  InferenceSession.run on the same model and session options, batch 1 (target <= 1.10);
- ort_vs_torch_bs1, ort_vs_torch_bs32: median ORT latency / PyTorch eager latency (< 1: ORT faster).
Part 2 (paced run): a 30 fps synthetic source for 60 s (--quick: 20 s, same code path) while a separate
process publishes 5 new versions to the registry; the loop hot-swaps each one in.
- dropped_frames: frames evicted or finished after the next frame was due (target 0);
- swap_p99_ratio: p99 frame latency during swaps / steady-state p99 (target <= 2).
ORT and torch use 1 intra-op thread: on a 2-core board the frame loop and the thread loading a new
version then each keep a core, instead of one inference fanning out over both.
"""
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import torch  # noqa: E402  (after _common puts the repo on sys.path)
from _common import ROOT, median, parser, result

from miro_edge.export.pipeline import export_checkpoint, publish_model  # noqa: E402
from miro_edge.infer.base import EngineOptions  # noqa: E402
from miro_edge.infer.live import LiveConfig, registry_live_loop  # noqa: E402
from miro_edge.infer.ort_engine import OrtEngine  # noqa: E402
from miro_edge.infer.sources import SyntheticSource  # noqa: E402
from miro_edge.model.architectures import create_model  # noqa: E402
from miro_edge.model.checkpoint import model_from_checkpoint, save_checkpoint  # noqa: E402
from miro_edge.registry.model_registry import ModelRegistry  # noqa: E402

SHAPE = (1, 8, 8)


def make_checkpoint(path: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    model = create_model("cnn2d", SHAPE, 10).eval()
    return save_checkpoint(path, model, "cnn2d", SHAPE, metrics={"val_accuracy": 0.9}, task_id=seed)


def per_call(fn, n: int) -> list:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def part1(work: Path, rounds: int, calls: int) -> dict:
    import onnxruntime as ort

    ckpt = make_checkpoint(work / "bench.pt", 0)
    onnx_path = export_checkpoint(ckpt, work / "bench", run_parity=True).onnx.path
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    bare = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
    engine = OrtEngine({"model.onnx": onnx_path}, EngineOptions(intra_op_threads=1)).open()
    torch.set_num_threads(1)
    model = model_from_checkpoint(ckpt)
    rng = np.random.default_rng(0)
    x1 = rng.standard_normal((1,) + SHAPE).astype(np.float32)
    x32 = rng.standard_normal((32,) + SHAPE).astype(np.float32)

    def torch_call(x):
        with torch.inference_mode():
            return model(torch.from_numpy(x)).numpy()

    times = {"bare": [], "wrapper": [], "ort1": [], "torch1": [], "ort32": [], "torch32": []}
    for fn in (lambda: bare.run(None, {"input": x1}), lambda: engine.infer(x1), lambda: torch_call(x1)):
        per_call(fn, 50)  # warm-up
    for _ in range(rounds):  # interleaved so machine noise hits every variant alike
        times["bare"] += per_call(lambda: bare.run(None, {"input": x1}), calls)
        times["wrapper"] += per_call(lambda: engine.infer(x1), calls)
        times["torch1"] += per_call(lambda: torch_call(x1), calls)
        times["ort32"] += per_call(lambda: engine.infer(x32), calls // 4)
        times["torch32"] += per_call(lambda: torch_call(x32), calls // 4)
    times["ort1"] = times["wrapper"]
    med = {k: median(v) * 1e6 for k, v in times.items()}
    print("median latency (us): bare ORT {bare:.1f}, engine wrapper {wrapper:.1f}, torch bs1 {torch1:.1f}, "
          "ORT bs32 {ort32:.1f}, torch bs32 {torch32:.1f}".format(**med))
    engine.close()
    return {"engine_overhead_vs_ort": med["wrapper"] / med["bare"], "ort_vs_torch_bs1": med["ort1"] / med["torch1"],
            "ort_vs_torch_bs32": med["ort32"] / med["torch32"]}


PUBLISHER = textwrap.dedent("""
    import sys, time, json
    from miro_edge.registry.model_registry import ModelRegistry
    root, start, times, pairs = sys.argv[1], float(sys.argv[2]), json.loads(sys.argv[3]), json.loads(sys.argv[4])
    reg = ModelRegistry(root)
    print("ready", flush=True)
    for at, (onnx_path, ckpt) in zip(times, pairs):
        delay = start + at - time.time()
        if delay > 0:
            time.sleep(delay)
        r = reg.publish({"model.onnx": onnx_path, "checkpoint.pt": ckpt}, metrics={"val_accuracy": 0.9})
        print("published", r.version, flush=True)
""")


def part2(work: Path, duration_s: float, swaps: int, fps: float) -> dict:
    import json

    reg = ModelRegistry(work / "registry")
    pairs = []
    for seed in range(swaps + 1):
        ckpt = make_checkpoint(work / f"v{seed}.pt", seed)
        pairs.append((str(export_checkpoint(ckpt, work / f"v{seed}", run_parity=False).onnx.path), str(ckpt)))
    publish_model(reg, pairs[0][0], pairs[0][1], run_parity=False)
    start = time.time() + 2.0
    times = [duration_s * (i + 0.5) / swaps for i in range(swaps)]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-c", PUBLISHER, str(reg.root), str(start), json.dumps(times),
                             json.dumps(pairs[1:])], env=env, stdout=subprocess.PIPE)
    assert proc.stdout.readline().startswith(b"ready")
    loop = registry_live_loop(str(reg.root), SyntheticSource(SHAPE, fps=fps), "onnxruntime",
                              EngineOptions(intra_op_threads=1, warmup_iterations=3), LiveConfig(poll_every_frames=15))
    with loop:
        time.sleep(max(0.0, start - time.time()))
        stats = loop.run(duration_s=duration_s + 1.0)
    proc.wait(timeout=30)
    print("live: {frames} frames in {duration_s:.1f} s ({fps:.1f} fps), p50 {latency_p50_ms:.3f} ms, "
          "steady p99 {steady_p99_ms:.3f} ms, swap p99 {swap_p99_ms:.3f} ms over {swap_frames} frames, "
          "max {latency_max_ms:.3f} ms, dropped {dropped} (queue {dropped_queue}, late {late}), swaps {swaps}, "
          "load ms {swap_load_ms}".format(**stats.as_dict()))
    if stats.swaps != swaps:
        print(f"WARNING: expected {swaps} swaps, saw {stats.swaps}")
    ratio = stats.swap_p99_ms / stats.steady_p99_ms if stats.steady_p99_ms > 0 else float("nan")
    return {"dropped_frames": stats.dropped, "swap_p99_ratio": ratio, "swaps": stats.swaps}


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    args = p.parse_args()
    duration = 20.0 if args.quick else 60.0
    rounds, calls = (5, 200) if args.quick else (15, 400)
    print("mode: {} (paced run {:.0f} s at 30 fps with 5 hot swaps; 1 intra-op thread)".format(
        "quick" if args.quick else "full", duration))
    with tempfile.TemporaryDirectory(prefix="miro-live-bench-") as tmp:
        work = Path(tmp)
        r1 = part1(work, rounds, calls)
        r2 = part2(work, duration, 5, 30.0)
    print("engine wrapper / bare ORT (bs1): {:.3f} (target <= 1.10)".format(r1["engine_overhead_vs_ort"]))
    print("ORT / torch eager: bs1 {:.3f}, bs32 {:.3f}".format(r1["ort_vs_torch_bs1"], r1["ort_vs_torch_bs32"]))
    print("dropped frames {} (target 0), swap p99 / steady p99 {:.3f} (target <= 2)".format(
        r2["dropped_frames"], r2["swap_p99_ratio"]))
    result("engine_overhead_vs_ort", r1["engine_overhead_vs_ort"], ".4f")
    result("ort_vs_torch_bs1", r1["ort_vs_torch_bs1"], ".4f")
    result("ort_vs_torch_bs32", r1["ort_vs_torch_bs32"], ".4f")
    result("dropped_frames", r2["dropped_frames"])
    result("swap_p99_ratio", r2["swap_p99_ratio"], ".4f")


if __name__ == "__main__":
    main()
