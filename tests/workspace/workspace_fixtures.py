"""Real data for the workspace tests: scikit-learn's digits as 1x8x8 images with word labels."""
from pathlib import Path
from typing import Sequence, Tuple

import numpy as np

NAMES = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])


def digits() -> Tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.images / 16.0).astype(np.float32)[:, None], d.target.astype(np.int64)


def write_npz(path: Path, x: np.ndarray, y: np.ndarray, classes: Sequence[int], limit: int = 0) -> int:
    """An .npz of the given digit classes with word labels; returns how many samples."""
    mask = np.isin(y, list(classes))
    xs, ys = x[mask], NAMES[y[mask]]
    if limit:
        xs, ys = xs[:limit], ys[:limit]
    np.savez(path, x=xs, y=ys)
    return len(ys)
