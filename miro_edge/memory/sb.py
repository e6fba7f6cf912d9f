"""Stream buffer (SB): the current task's samples held in RAM for training.

Arrivals beyond ``capacity`` are reservoir-sampled, so the SB is a uniform sample of the task so
far whatever its length; every arrival is in the store regardless.
"""
from typing import Optional, Sequence, Tuple

import numpy as np
import torch

from miro_edge.errors import InputError


class StreamBuffer:
    """Reservoir of at most ``capacity`` (x, label) pairs of the current task."""

    def __init__(self, capacity: int, sample_shape: Sequence[int], rng: Optional[np.random.Generator] = None) -> None:
        if capacity < 1:
            raise InputError(f"SB capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.sample_shape = tuple(int(d) for d in sample_shape)
        self._rng = rng or np.random.default_rng(0)
        self.data = torch.zeros((capacity,) + self.sample_shape)
        self.labels = torch.full((capacity,), -1, dtype=torch.long)
        self._size = 0
        self.seen = 0

    def __len__(self) -> int:
        return self._size

    def clear(self) -> None:
        self._size = 0
        self.seen = 0
        self.labels.fill_(-1)

    def add(self, xs: np.ndarray, labels: np.ndarray) -> int:
        """Offer samples; returns how many were kept (reservoir sampling past capacity)."""
        if tuple(xs.shape[1:]) != self.sample_shape:
            raise InputError(f"SB: sample shape {self.sample_shape} expected, got {tuple(xs.shape[1:])}")
        kept = 0
        for x, y in zip(xs, labels):
            if self._size < self.capacity:
                slot = self._size
                self._size += 1
            else:
                j = int(self._rng.integers(0, self.seen + 1))
                slot = j if j < self.capacity else -1
            self.seen += 1
            if slot >= 0:
                self.data[slot] = torch.from_numpy(np.asarray(x, dtype=np.float32))
                self.labels[slot] = int(y)
                kept += 1
        return kept

    def tensors(self) -> Tuple[torch.Tensor, torch.Tensor]:
        return self.data[: self._size], self.labels[: self._size]

    def resize(self, capacity: int) -> int:
        """Change capacity; shrinking drops a uniform random subset. Returns samples dropped."""
        if capacity < 1:
            raise InputError(f"SB capacity must be >= 1, got {capacity}")
        n = self._size
        keep = np.sort(self._rng.choice(n, size=min(n, capacity), replace=False)) if n else np.zeros(0, np.int64)
        data = torch.zeros((capacity,) + self.sample_shape)
        labels = torch.full((capacity,), -1, dtype=torch.long)
        index = torch.as_tensor(keep, dtype=torch.long)
        data[: len(keep)] = self.data.index_select(0, index)
        labels[: len(keep)] = self.labels.index_select(0, index)
        self.data, self.labels, self.capacity, self._size = data, labels, capacity, len(keep)
        return n - len(keep)
