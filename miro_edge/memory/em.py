"""Episodic memory (EM): a preallocated RAM arena of old samples, class-balanced.

Slots ``[0, len)`` hold samples; ``labels[i]`` and ``record_ids[i]`` (the store id, -1 if the
sample never came from the store) describe slot ``i``. One lock guards slot contents: a reader
(``gather``) and the swap worker (``write_slots``) never interleave inside a slot, so nobody sees
a torn sample. Resizing happens between tasks, when no swap worker is running.
"""
import threading
from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from miro_edge.errors import InputError
from miro_edge.memory.types import SampleSource


@dataclass(frozen=True)
class ResizeReport:
    """What ``resize``/``rebalance`` did: slots evicted (samples stay in the store) and refilled."""

    capacity_before: int
    capacity_after: int
    evicted: int
    refilled: int
    per_class: Dict[int, int]


# Slot or record ids: a list, or the int64 array the trainer's sampler draws.
Indices = Union[Sequence[int], np.ndarray]

def balanced_quota(capacity: int, labels: Sequence[int], available: Optional[Dict[int, int]] = None) -> Dict[int, int]:
    """Class-balanced slot quota: equal shares, remainder to the lowest labels; a class that has
    fewer samples ``available`` gives its unused share to the others."""
    labels = sorted(set(int(c) for c in labels))
    quota = {c: 0 for c in labels}
    if not labels or capacity <= 0:
        return quota
    limit = {c: (available or {}).get(c, capacity) if available is not None else capacity for c in labels}
    remaining = capacity
    open_classes = [c for c in labels if limit[c] > 0]
    while remaining > 0 and open_classes:
        share, extra = divmod(remaining, len(open_classes))
        progressed = 0
        for i, c in enumerate(open_classes):
            want = share + (1 if i < extra else 0)
            take = min(want, limit[c] - quota[c])
            quota[c] += take
            progressed += take
        remaining -= progressed
        open_classes = [c for c in open_classes if quota[c] < limit[c]]
        if progressed == 0:
            break
    return quota


class EpisodicMemory:
    """Fixed-capacity, class-balanced replay memory backed by one contiguous tensor."""

    def __init__(self, capacity: int, sample_shape: Sequence[int], dtype: torch.dtype = torch.float32) -> None:
        if capacity < 0:
            raise InputError(f"EM capacity must be >= 0, got {capacity}")
        self.sample_shape = tuple(int(d) for d in sample_shape)
        self.dtype = dtype
        self._lock = threading.Lock()
        self._alloc(capacity)
        self._size = 0

    def _alloc(self, capacity: int) -> None:
        self.capacity = capacity
        self.data = torch.zeros((capacity,) + self.sample_shape, dtype=self.dtype)
        self.labels = torch.full((capacity,), -1, dtype=torch.long)
        self.record_ids = np.full(capacity, -1, dtype=np.int64)

    def __len__(self) -> int:
        return self._size

    @property
    def nbytes(self) -> int:
        return self.data.element_size() * self.data.nelement() + self.labels.nelement() * 8

    def class_counts(self) -> Dict[int, int]:
        labels, counts = np.unique(self.labels[: self._size].numpy(), return_counts=True)
        return {int(c): int(n) for c, n in zip(labels, counts)}

    def slots_of(self, label: int) -> np.ndarray:
        return np.flatnonzero(self.labels[: self._size].numpy() == label)

    # -- reading and swapping -------------------------------------------------------------
    def gather(self, slots: Indices) -> Tuple[torch.Tensor, torch.Tensor]:
        """Copy out the samples in ``slots`` (whole samples only, never torn by a swap)."""
        index = torch.as_tensor(np.asarray(slots, dtype=np.int64))
        with self._lock:
            return self.data.index_select(0, index), self.labels.index_select(0, index)

    def write_slots(self, slot_ids: Indices, xs: Sequence[np.ndarray],
                    labels: Indices, record_ids: Indices) -> int:
        """Replace whole slots (used by the swap worker); a slot only takes a same-class sample."""
        slots = np.asarray(slot_ids, dtype=np.int64)
        if len(slots) == 0:
            return 0
        batch = torch.from_numpy(np.ascontiguousarray(np.stack(xs), dtype=np.float32)).to(self.dtype)
        with self._lock:
            ok = (slots < self._size) & (self.labels.numpy()[np.minimum(slots, self.capacity - 1)]
                                         == np.asarray(labels, dtype=np.int64))
            keep = np.flatnonzero(ok)
            if len(keep):
                index = torch.from_numpy(slots[keep])
                self.data.index_copy_(0, index, batch.index_select(0, torch.from_numpy(keep)))
                self.record_ids[slots[keep]] = np.asarray(record_ids, dtype=np.int64)[keep]
        return int(len(keep))

    # -- filling and resizing --------------------------------------------------------------
    def _set(self, xs: np.ndarray, labels: np.ndarray, record_ids: np.ndarray) -> None:
        n = len(labels)
        if n > self.capacity:
            raise InputError(f"EM: {n} samples do not fit {self.capacity} slots")
        if n and tuple(xs.shape[1:]) != self.sample_shape:
            raise InputError(f"EM: sample shape {self.sample_shape} expected, got {tuple(xs.shape[1:])}")
        with self._lock:
            if n:
                self.data[:n].copy_(torch.from_numpy(np.ascontiguousarray(xs)).to(self.dtype))
            self.labels[:n] = torch.from_numpy(np.asarray(labels, dtype=np.int64))
            self.labels[n:] = -1
            self.record_ids[:n] = record_ids
            self.record_ids[n:] = -1
            self._size = n

    def restore(self, capacity: int, xs: np.ndarray, labels: np.ndarray, record_ids: np.ndarray) -> None:
        """Refill from saved contents (a resumed run re-reads its EM from the store by record id)."""
        with self._lock:
            self._alloc(capacity)
        self._set(xs, labels, record_ids)

    def snapshot(self) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        with self._lock:
            n = self._size
            return self.data[:n].numpy().copy(), self.labels[:n].numpy().copy(), self.record_ids[:n].copy()

    def rebalance(self, capacity: int, classes: Sequence[int], store: SampleSource,
                  rng: np.random.Generator) -> ResizeReport:
        """Resize to ``capacity`` slots, class-balanced over ``classes``.

        Shrinking evicts random slots of over-quota classes (their samples stay in the store);
        growing, or a new class, refills with a uniform random per-class draw from the store.
        """
        if capacity < 0:
            raise InputError(f"EM capacity must be >= 0, got {capacity}")
        before = self.capacity
        xs, labels, rids = self.snapshot()
        quota = balanced_quota(capacity, classes, store.class_counts())
        keep_x, keep_y, keep_r = [], [], []
        evicted = refilled = 0
        for label, want in quota.items():
            idx = np.flatnonzero(labels == label)
            if len(idx) > want:
                evicted += len(idx) - want
                idx = rng.choice(idx, size=want, replace=False)
            keep_x.append(xs[idx])
            keep_y.append(labels[idx])
            keep_r.append(rids[idx])
            missing = want - len(idx)
            if missing > 0:
                held = set(int(r) for r in rids[idx] if r >= 0)
                ids = [r for r in store.sample_ids(label, missing + len(held), rng) if r not in held][:missing]
                got = [s for s in store.read_many(ids) if s.label == label]
                if got:
                    keep_x.append(np.stack([s.x for s in got]).astype(np.float32, copy=False))
                    keep_y.append(np.full(len(got), label, dtype=np.int64))
                    keep_r.append(np.array([s.record_id for s in got], dtype=np.int64))
                    refilled += len(got)
        dropped = [c for c in np.unique(labels) if int(c) not in quota]
        evicted += int(sum((labels == c).sum() for c in dropped))
        new_x = np.concatenate(keep_x) if keep_x else np.zeros((0,) + self.sample_shape, np.float32)
        new_y = np.concatenate(keep_y) if keep_y else np.zeros(0, np.int64)
        new_r = np.concatenate(keep_r) if keep_r else np.zeros(0, np.int64)
        if capacity != self.capacity:
            with self._lock:
                self._alloc(capacity)
        self._set(new_x, new_y, new_r)
        return ResizeReport(before, capacity, evicted, refilled, self.class_counts())

    def resize(self, capacity: int, store: SampleSource, rng: np.random.Generator) -> ResizeReport:
        """Resize over the classes already held (see ``rebalance``)."""
        return self.rebalance(capacity, sorted(self.class_counts()), store, rng)
