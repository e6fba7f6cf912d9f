"""Typed records and the store interface that EM, the swap worker and the trainer rely on."""
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence

import numpy as np

try:  # Protocol is in typing from 3.8
    from typing import Protocol
except ImportError:  # pragma: no cover
    from typing_extensions import Protocol  # type: ignore


class StoredSample(NamedTuple):
    """One record read back from the store (checksum already verified)."""

    record_id: int
    x: np.ndarray
    label: int
    task_id: int
    split: str
    meta: Optional[Dict[str, Any]]


class SampleSource(Protocol):
    """What EM refill, the swap worker and validation need from a store.

    Implemented by ``miro_edge.memory.store.SampleStore``; tests may wrap it (e.g. to add latency).
    """

    sample_shape: Optional[tuple]
    dtype: Optional[np.dtype]

    def class_counts(self, split: str = "train") -> Dict[int, int]:
        """Records per label for ``split`` ("train" or "val")."""
        ...

    def sample_ids(self, label: int, n: int, rng: np.random.Generator, split: str = "train") -> List[int]:
        """Up to ``n`` distinct random record ids of ``label`` (uniform, not oldest-first)."""
        ...

    def read_many(self, record_ids: Sequence[int]) -> List[StoredSample]:
        """Read records; corrupt ones are skipped and counted, never returned."""
        ...

    def draw(self, counts: Mapping[int, int], rng: np.random.Generator, split: str = "train") -> List[StoredSample]:
        """Random records of several labels at once (``counts``: label -> how many), as
        ``sample_ids`` + ``read_many`` would give; the swap worker's one call per refill."""
        ...
