"""Shared benchmark plumbing: the --quick flag, medians, and the RESULT line convention.

Every benchmark measures its baseline in the same run and prints ratios; it ends with one
``RESULT <metric_name> <value>`` line per metric (see DEVELOPERS.md).
"""
import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, List, Optional, Sequence

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


# The continual-learning workloads the accuracy and controller benchmarks share: the task stream
# and the learner (20 epochs per task, one torch thread for steady timing on 2 cores). digits and
# BasicMotions saturate (almost any replay set-up reaches 0.97-0.99); glyphs (generated, see
# miro_edge/data/procedural.py) is the hard one where replay size matters; chirps is SET ASIDE:
# benchmarked and reported separately, never used to tune anything.
WORKLOADS = {
    "digits": {"data": {"dataset": "digits", "classes_per_task": 2}, "data_options": {},
               "train": {"model": "cnn2d", "width": 16, "epochs": 20, "lr": 0.05, "threads": 1},
               "shape": (1, 8, 8), "classes": 10},
    "basic_motions": {"data": {"dataset": "basic_motions", "classes_per_task": 2},
                      "data_options": {"window_length": 50, "window_stride": 10},
                      "train": {"model": "cnn1d", "width": 16, "epochs": 20, "lr": 0.02, "threads": 1},
                      "shape": (6, 50), "classes": 4},
    "glyphs": {"data": {"dataset": "glyphs", "classes_per_task": 2}, "data_options": {},
               "train": {"model": "cnn2d", "width": 16, "epochs": 20, "lr": 0.05, "threads": 1},
               "shape": (1, 12, 12), "classes": 10},
    "chirps": {"data": {"dataset": "chirps", "classes_per_task": 2}, "data_options": {},
               "train": {"model": "cnn1d", "width": 16, "epochs": 20, "lr": 0.02, "threads": 1},
               "shape": (3, 64), "classes": 8, "set_aside": True},
    # espeak-ng command words (`make keywords`), 32 log-mel bands x 51 frames per 1 s clip
    "keywords": {"data": {"dataset": "audio", "classes_per_task": 2},
                 "data_options": {"path": str(ROOT / ".cache" / "keywords"), "n_mels": 32, "hop_length": 320,
                                  "layout": "sequence"},
                 "train": {"model": "cnn1d", "width": 16, "epochs": 20, "lr": 0.02, "threads": 1},
                 "shape": (32, 51), "classes": 10},
}


def available(name: str) -> bool:
    """False for a workload whose generated data is missing (keywords before `make keywords`)."""
    path = WORKLOADS[name]["data_options"].get("path")
    return path is None or Path(str(path)).exists()


def session_raw(workload: dict, seed: int, memory: dict, **sections: object) -> dict:
    """A session config (as a dict for ``from_dict``) for ``workload`` at ``seed``."""
    raw = {"data": dict(workload["data"], seed=seed), "data_options": workload["data_options"],
           "train": dict(workload["train"], seed=seed), "memory": memory}
    raw.update(sections)
    return raw


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true",
                   help="same code path, fewer repeats; finishes within 2 minutes on 2 cores")
    return p


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def timed(fn: Callable[[], object], repeats: int) -> List[float]:
    """Wall-clock seconds of ``repeats`` calls of ``fn``."""
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def result(name: str, value: float, fmt: Optional[str] = None) -> None:
    """Print the machine-readable line; call once per metric at the end of the run."""
    text = format(value, fmt) if fmt else repr(float(value)) if isinstance(value, float) else str(value)
    print(f"RESULT {name} {text}", flush=True)
