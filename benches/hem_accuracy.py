"""HEM accuracy acceptance: final average accuracy of four memory set-ups, mean over seeds.

Per data set (digits: 5 tasks x 2 classes, images; BasicMotions: 2 tasks x 2 activities, IMU;
glyphs: 5 tasks x 2 classes, generated images where replay size matters; chirps, the set-aside
generated series, only with ``--set-aside``), swaps in the default deterministic mode:
- no replay (EM 0): the forgetting floor;
- EM of 5 samples per class, swap_ratio 0 (plain experience replay);
- the same EM with swap_ratio 1.0 and every sample in the store (HEM);
  (BasicMotions also at 2 samples per class: at 5 per class both reach the ceiling)
- all data in RAM (EM = every old sample): the ceiling.
Runs use one torch thread (steady timing on a shared 2-core box).
Metrics per data set: ``<ds>_acc_<setup>``, and ``<ds>_swap_gain`` (HEM minus plain replay, points
of accuracy as a fraction).
"""
import tempfile
import time

import numpy as np
from _common import WORKLOADS, parser, result, session_raw

from miro_edge.config import from_dict
from miro_edge.session import SessionConfig, run_session

DATASETS = {"digits": dict(WORKLOADS["digits"], em_per_class=[5]),
            "basic_motions": dict(WORKLOADS["basic_motions"], em_per_class=[5, 2]),
            "glyphs": dict(WORKLOADS["glyphs"], em_per_class=[5, 40]),
            "chirps": dict(WORKLOADS["chirps"], em_per_class=[5, 40])}

def setups(per_class_sizes: list) -> dict:
    """no replay, then plain replay and HEM for each EM size (samples per class), then the ceiling."""
    out = {"no_replay": {"em_size": 0, "swap": {"swap_ratio": 0.0}}}
    for i, per in enumerate(per_class_sizes):
        tag = "em" if i == 0 else f"em{per}"
        out[tag + "_swap0"] = {"em_per_class": per, "swap": {"swap_ratio": 0.0}}
        out[tag + "_swap1"] = {"em_per_class": per, "swap": {"swap_ratio": 1.0}}
    out["all_in_ram"] = {"em_size": None, "swap": {"swap_ratio": 0.0}}
    return out


def config_for(ds: dict, setup: dict, seed: int) -> SessionConfig:
    memory = {k: v for k, v in setup.items() if k != "em_per_class"}
    if "em_per_class" in setup:
        memory["em_size"] = setup["em_per_class"] * ds["classes"]
    return from_dict(SessionConfig, session_raw(ds, seed, memory))


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--set-aside", action="store_true", help="also run the set-aside workload (chirps)")
    p.add_argument("--workloads", default=None, help="comma-separated subset (default: all shipped)")
    args = p.parse_args()
    seeds = [0] if args.quick else [0, 1, 2]
    metrics = {}
    names = args.workloads.split(",") if args.workloads else [
        n for n, ds in DATASETS.items() if args.set_aside or not ds.get("set_aside")]
    for name in names:
        ds = DATASETS[name]
        print(f"\n{name} (seeds {seeds}):")
        means = {}
        for setup_name, setup in setups(ds["em_per_class"]).items():
            accs, secs = [], []
            for seed in seeds:
                with tempfile.TemporaryDirectory() as tmp:
                    t0 = time.perf_counter()
                    res = run_session(config_for(ds, setup, seed), out_dir=tmp)
                    secs.append(time.perf_counter() - t0)
                accs.append(res.final_average_accuracy)
            means[setup_name] = float(np.mean(accs))
            print(f"  {setup_name:<11} final avg acc {means[setup_name]:.3f} (+/- {float(np.std(accs)):.3f})  {float(np.mean(secs)):.1f}s/run")
            metrics[f"{name}_acc_{setup_name}"] = means[setup_name]
        for key in [k for k in means if k.endswith("_swap1")]:
            gain = key[: -len("_swap1")]
            metrics["{}_{}swap_gain".format(name, "" if gain == "em" else gain + "_")] = means[key] - means[gain + "_swap0"]
    for key, value in metrics.items():
        result(key, round(value, 4))


if __name__ == "__main__":
    main()
