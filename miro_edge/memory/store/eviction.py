"""Class-balanced eviction: how many records each class gives up, and removing them while
keeping every class's ordinals dense (``0 .. count-1``), which uniform draws rely on."""
import heapq
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from miro_edge.errors import StoreError
from miro_edge.memory.store.backends.base import RawRecord, WriteTxn
from miro_edge.memory.store.draw import distinct_ints


def make_room(txn: WriteTxn, quota_samples: Optional[int], quota_bytes: Optional[int], rng: np.random.Generator,
              labels: List[int], codes: List[int], batch_bytes: int, data_bytes: int,
              path: Path, tally: Optional[Dict[Tuple[int, int], int]] = None) -> Tuple[int, int]:
    """Evict existing records class-balanced until the batch fits the quotas; return (count, bytes).

    ``tally`` ((task id, split) -> records) is decreased by what is evicted."""
    if quota_samples is None and quota_bytes is None:
        return 0, 0
    counts = {k: c for k, c in txn.counts().items() if c > 0}
    incoming: Dict[Tuple[int, int], int] = {}
    for key in zip(codes, labels):
        incoming[key] = incoming.get(key, 0) + 1
    total = sum(counts.values())
    evicted = freed = 0
    while total > 0:
        k = 0
        if quota_samples is not None:
            k = max(k, total + len(labels) - quota_samples)
        if quota_bytes is not None:
            excess = data_bytes - freed + batch_bytes - quota_bytes
            if excess > 0:
                per_record = max(1, (data_bytes - freed) // total)
                k = max(k, -(-excess // per_record))
        if k <= 0:
            break
        plan = _water_fill(counts, incoming, min(k, total))
        for key, m in plan.items():
            removed = remove_random(txn, key, counts[key], m, rng, path)
            counts[key] -= m
            freed += sum(r.nbytes for r in removed)
            if tally is not None:
                count_off(tally, removed)
        evicted += sum(plan.values())
        total -= sum(plan.values())
    return evicted, freed


def count_off(tally: Dict[Tuple[int, int], int], removed: Sequence[RawRecord]) -> None:
    """Take removed records off a (task id, split) -> records tally."""
    for rec in removed:
        key = (rec.task_id, rec.split)
        tally[key] = tally.get(key, 0) - 1


def remove_random(txn: WriteTxn, key: Tuple[int, int], count: int, m: int, rng: np.random.Generator,
                  path: Path) -> List[RawRecord]:
    """Delete ``m`` uniformly random records of one class."""
    ords = distinct_ints(rng, count, m) if m < count else list(range(count))
    return remove_ords(txn, key, count, ords, path)


def _water_fill(counts: Mapping[Tuple[int, int], int], incoming: Mapping[Tuple[int, int], int],
                k: int) -> Dict[Tuple[int, int], int]:
    """How many existing records to evict per class: always from the currently largest class.

    Size counts what the class will hold after the incoming batch; only existing records
    (``counts``) can be evicted. Ties go to the lower (split, label).
    """
    heap = [(-(c + incoming.get(key, 0)), key) for key, c in counts.items() if c > 0]
    heapq.heapify(heap)
    left = dict(counts)
    plan: Dict[Tuple[int, int], int] = {}
    while k > 0 and heap:
        size, key = heapq.heappop(heap)
        plan[key] = plan.get(key, 0) + 1
        left[key] -= 1
        k -= 1
        if left[key] > 0:
            heapq.heappush(heap, (size + 1, key))
    return plan


def remove_ords(txn: WriteTxn, key: Tuple[int, int], count: int, ords: Sequence[int], path: Path) -> List[RawRecord]:
    """Delete the records at ``ords`` of one class and keep its ordinals dense.

    The class's last surviving ordinals move into the holes, so ordinals stay ``0 .. count-m-1``.
    """
    split, label = key
    dead = sorted(set(int(o) for o in ords))
    dead_ids = txn.ids_at(split, label, dead)
    keep = count - len(dead)
    dead_set = set(dead)
    movers = [o for o in range(keep, count) if o not in dead_set]
    mover_ids = txn.ids_at(split, label, movers)
    if any(i is None for i in dead_ids) or any(i is None for i in mover_ids):
        raise StoreError(f"the class index of the store at {path} is damaged (class {key} has holes); run "
                         "SampleStore.verify() and restore from a backup")
    removed = []
    for rid in dead_ids:
        rec = txn.delete_record(rid)  # type: ignore[arg-type]
        if rec is not None:
            removed.append(rec)
    holes = [o for o in dead if o < keep]
    for hole, old, rid in zip(holes, movers, mover_ids):
        txn.move(rid, split, label, old, hole)  # type: ignore[arg-type]
    txn.set_count(split, label, keep)
    return removed
