"""Test doubles: a tiny in-RAM sample source for EM / swap unit tests (the real store has
its own tests), and small synthetic data."""
import threading
import time
from typing import Callable, Dict, List, Mapping, Sequence

import numpy as np

from miro_edge.errors import HardwareUnavailableError
from miro_edge.memory.types import StoredSample
from miro_edge.trt.cuda_mem import DeviceBuffer, DeviceMemory


class MemorySource:
    """In-RAM ``SampleSource`` with optional per-read latency (for congestion tests)."""

    def __init__(self, xs: np.ndarray, labels: np.ndarray, latency_s: float = 0.0) -> None:
        self.xs = np.asarray(xs, dtype=np.float32)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.sample_shape = self.xs.shape[1:]
        self.dtype = self.xs.dtype
        self.latency_s = latency_s
        self.reads = 0
        self._lock = threading.Lock()

    def class_counts(self, split: str = "train") -> Dict[int, int]:
        values, counts = np.unique(self.labels, return_counts=True)
        return {int(v): int(c) for v, c in zip(values, counts)}

    def sample_ids(self, label: int, n: int, rng: np.random.Generator, split: str = "train") -> List[int]:
        idx = np.flatnonzero(self.labels == label)
        return [int(i) for i in rng.choice(idx, size=min(n, len(idx)), replace=False)] if len(idx) else []

    def draw(self, counts: Mapping[int, int], rng: np.random.Generator, split: str = "train") -> List[StoredSample]:
        ids = [i for label, n in counts.items() for i in self.sample_ids(label, n, rng, split)]
        return self.read_many(ids) if ids else []

    def read_many(self, record_ids: Sequence[int]) -> List[StoredSample]:
        if self.latency_s:
            time.sleep(self.latency_s)
        with self._lock:
            self.reads += len(record_ids)
        return [StoredSample(int(i), self.xs[i].copy(), int(self.labels[i]), 0, "train", None) for i in record_ids]


def make_source(n_per_class: int = 20, classes: Sequence[int] = (0, 1, 2), shape=(1, 4, 4),
                seed: int = 0, latency_s: float = 0.0) -> MemorySource:
    """Samples whose every element equals ``label * 1000 + index``: torn or mislabelled data shows."""
    labels = np.repeat(np.asarray(classes), n_per_class)
    xs = np.empty((len(labels),) + tuple(shape), dtype=np.float32)
    for i, label in enumerate(labels):
        xs[i] = label * 1000 + i
    return MemorySource(xs, labels, latency_s)


def readers_during(checks: Sequence[Callable[[], None]], write: Callable[[], None]) -> List[BaseException]:
    """Call each of ``checks`` in a loop, each in its own thread, while ``write()`` runs in this
    one; return what the readers raised (an assertion in a thread would otherwise go unseen)."""
    errors: List[BaseException] = []
    stop = threading.Event()

    def reader(check: Callable[[], None]) -> None:
        try:
            while not stop.is_set():
                check()
        except Exception as exc:  # reported to the caller
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(check,)) for check in checks]
    for t in threads:
        t.start()
    try:
        write()
    finally:
        stop.set()
        for t in threads:
            t.join()
    return errors


class CountingMemory(DeviceMemory):
    """Device memory whose ``fail_at``-th allocation raises (as cudaMalloc does when out of memory)."""

    def __init__(self, fail_at=None):
        self.live, self.allocs, self.closed, self.fail_at = set(), 0, False, fail_at

    def alloc(self, nbytes):
        self.allocs += 1
        if self.allocs == self.fail_at:
            raise HardwareUnavailableError(f"out of device memory allocating {nbytes} bytes")
        buf = DeviceBuffer(ptr=0x1000 * self.allocs, nbytes=nbytes, handle=None)
        self.live.add(buf.ptr)
        return buf

    def free(self, buf):
        self.live.remove(buf.ptr)

    def close(self):
        self.closed = True
