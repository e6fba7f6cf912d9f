"""The store's held-out validation slice: a class-balanced share of each class, never trained on.

On a device no test split exists; the update cycle validates (and the controller scores its
trials, and the canary compares models) on this slice.
"""
from typing import List

import numpy as np


def holdout_splits(labels: np.ndarray, fraction: float, rng: np.random.Generator) -> List[str]:
    """Class-balanced validation slice: ``fraction`` of each class marked "val" (at least one
    sample per class when the class has two or more and fraction > 0)."""
    splits = np.array(["train"] * len(labels), dtype=object)
    if fraction <= 0:
        return list(splits)
    for label in np.unique(labels):
        idx = np.flatnonzero(labels == label)
        n_val = min(len(idx) - 1, max(1, int(round(fraction * len(idx)))))
        if n_val > 0:
            splits[rng.choice(idx, size=n_val, replace=False)] = "val"
    return list(splits)
