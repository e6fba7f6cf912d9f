"""Labelled array sources and the registry of dataset adapters.

An adapter turns some data (a package's bundled set, an ``.npz`` file, a torch Dataset) into
an ``ArraySource``; everything downstream (streams, store, trainer) sees only arrays. Dataset
names appear only in their adapter modules.
"""
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np

from miro_edge.errors import InputError
from miro_edge.utils.registry import Registry


@dataclass(frozen=True)
class ArraySource:
    """Samples ``x`` (N, *input_shape) float32 with integer labels ``y`` (N,).

    ``groups`` (optional, N) marks samples cut from one recording (e.g. windows of one series):
    streams split train/test by group so windows of one recording never straddle the split.
    """

    name: str
    x: np.ndarray
    y: np.ndarray
    class_names: Tuple[str, ...] = ()
    groups: Optional[np.ndarray] = None
    info: Dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.x.ndim < 2:
            raise InputError(f"source {self.name}: x must be (N, ...) with at least 2 dims, got shape {self.x.shape}")
        if self.y.ndim != 1 or len(self.y) != len(self.x):
            raise InputError(f"source {self.name}: y must be 1-D with len(x)={len(self.x)} entries, got shape {self.y.shape}")
        if not np.issubdtype(self.y.dtype, np.integer):
            raise InputError(f"source {self.name}: labels must be integers, got dtype {self.y.dtype}; map class names to "
                             "ids first (see miro_edge.data.sources.encode_labels)")
        if self.groups is not None and len(self.groups) != len(self.x):
            raise InputError(f"source {self.name}: groups must have one entry per sample")

    @property
    def input_shape(self) -> Tuple[int, ...]:
        return tuple(int(d) for d in self.x.shape[1:])

    @property
    def num_classes(self) -> int:
        return int(len(np.unique(self.y)))


def encode_labels(labels: np.ndarray) -> Tuple[np.ndarray, Tuple[str, ...]]:
    """Map arbitrary label values to ids 0..K-1 in sorted order; returns ids and names."""
    names, ids = np.unique(np.asarray(labels), return_inverse=True)
    return ids.astype(np.int64), tuple(str(n) for n in names)


def sliding_windows(x: np.ndarray, length: int, stride: int) -> np.ndarray:
    """Cut (N, C, T) series into (N, W, C, length) windows; W = 1 + (T - length) // stride."""
    if x.ndim != 3:
        raise InputError(f"sliding_windows expects (N, channels, time), got shape {x.shape}")
    total = x.shape[-1]
    if not 0 < length <= total or stride <= 0:
        raise InputError(f"window length must be in 1..{total} and stride > 0, got length={length} stride={stride}")
    starts = range(0, total - length + 1, stride)
    return np.stack([x[:, :, s:s + length] for s in starts], axis=1)


def windowed_source(name: str, series: np.ndarray, labels: np.ndarray, class_names: Tuple[str, ...],
                    length: Optional[int], stride: Optional[int], info: Dict[str, Any]) -> ArraySource:
    """Build a source from (N, C, T) series, optionally cut into windows grouped by series."""
    series = np.asarray(series, dtype=np.float32)
    if length is None:
        return ArraySource(name, series, labels, class_names, None, info)
    win = sliding_windows(series, length, stride or length)
    n, w = win.shape[:2]
    return ArraySource(name, win.reshape((n * w,) + win.shape[2:]), np.repeat(labels, w), class_names,
                       np.repeat(np.arange(n), w), dict(info, window_length=length, window_stride=stride))


DATASETS: Registry[ArraySource] = Registry("dataset")


def load_source(name: str, **options: Any) -> ArraySource:
    """Load a registered dataset adapter by name (importing the built-in adapters first)."""
    import miro_edge.data.adapters  # noqa: F401  (registers the built-in adapters)
    factory: Callable[..., ArraySource] = DATASETS.get(name)
    try:
        return factory(**options)
    except TypeError as exc:
        raise InputError(f"dataset {name!r}: bad options {sorted(options)}: {exc}") from None
