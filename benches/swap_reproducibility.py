"""Run-to-run spread of one fixed config (same seed) in each swap mode.

digits, EM 50 (5 per class), swap ratio 1 (every replayed EM sample swapped from the store):
the set-up where the async worker's timing decides which stored samples are replayed. Each
mode runs the same config ``repeats`` times, alternating modes so both see the same load.
Metrics: <mode>_acc_spread = max - min final average accuracy over the repeats (deterministic:
target 0, the accuracy matrices identical), <mode>_identical_matrices = 1 when every repeat gave
the first one's matrix.
"""
import tempfile

import numpy as np
from _common import WORKLOADS, parser, result, session_raw

from miro_edge.config import from_dict
from miro_edge.session import SessionConfig, run_session

MODES = ("deterministic", "async")


def main() -> None:
    args = parser(__doc__).parse_args()
    repeats = 2 if args.quick else 4
    epochs = 10 if args.quick else 20
    ds = WORKLOADS["digits"]
    runs: dict = {m: [] for m in MODES}
    for _ in range(repeats):
        for mode in MODES:
            raw = session_raw(ds, 0, {"em_size": 50, "swap": {"swap_ratio": 1.0, "mode": mode}})
            raw["train"]["epochs"] = epochs
            with tempfile.TemporaryDirectory(prefix="miro-repro-") as tmp:
                res = run_session(from_dict(SessionConfig, raw), out_dir=tmp)
            runs[mode].append((res.final_average_accuracy, res.accuracy_matrix, res.train_seconds))
    for mode in MODES:
        accs = [r[0] for r in runs[mode]]
        same = all(r[1] == runs[mode][0][1] for r in runs[mode])
        print("{:13s} final acc {} (spread {:.4f}); matrices identical: {}; training {:.1f}s median".format(
            mode, " ".join(f"{a:.4f}" for a in accs), max(accs) - min(accs), same,
            float(np.median([r[2] for r in runs[mode]]))))
        result(f"{mode}_acc_spread", round(max(accs) - min(accs), 4))
        result(f"{mode}_identical_matrices", int(same))


if __name__ == "__main__":
    main()
