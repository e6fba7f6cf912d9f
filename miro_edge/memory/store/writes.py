"""The write transactions of ``SampleStore`` past validation: appending a batch (after the
eviction its quotas ask for) and deleting records. Both keep the class ordinals dense, the
per-task counts and byte count exact, and end by sealing the metadata (``integrity.seal``)."""
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from miro_edge.memory.store.backends.base import RawRecord, WriteTxn
from miro_edge.memory.store.eviction import count_off, remove_ords
from miro_edge.memory.store.integrity import TASK_COUNTS, damaged_error, seal, task_counts, task_counts_info
from miro_edge.memory.store.records import checksum
from miro_edge.memory.store.verify import record_tallies

Tally = Dict[Tuple[int, int], int]  # (task id, split code) -> records


def task_tally(txn: WriteTxn, info: Mapping[str, str]) -> Tally:
    """Per-task counts; a store written before they existed is counted once, by a scan."""
    if TASK_COUNTS in info or int(info.get("next_id", "0")) == 0:
        return task_counts(info)
    return record_tallies(txn)[1]


def append_records(txn: WriteTxn, info: Mapping[str, str], payloads: Sequence[bytes], labs: List[int],
                   codes: List[int], metas_b: Sequence[Optional[bytes]], task: int, batch_bytes: int, path: Path,
                   make_room: Callable[[Tally], Tuple[int, int]]) -> Tuple[int, int, int]:
    """Append one batch under fresh ids; returns (first id, records evicted, bytes freed)."""
    n = len(payloads)
    first = int(info["next_id"])
    top = txn.max_record_id()
    if top is not None and first <= top:  # a damaged next id would reuse ids (and fail on UNIQUE)
        raise damaged_error(path, [f"next_id says {first} but record {top} exists"])
    data_bytes = int(info["data_bytes"])
    tally = task_tally(txn, info)
    evicted, freed = make_room(tally)
    counts: Dict[Tuple[int, int], int] = {}
    rows = []
    for i in range(n):
        key = (codes[i], labs[i])
        if key not in counts:
            counts[key] = txn.count(*key)
        rid = first + i
        rows.append(RawRecord(rid, codes[i], labs[i], counts[key], task,
                              checksum(rid, labs[i], task, codes[i], metas_b[i], payloads[i]), metas_b[i],
                              payloads[i]))
        counts[key] += 1
    txn.put_records(rows)
    for key, count in counts.items():
        txn.set_count(key[0], key[1], count)
    for code in set(codes):
        tally[(task, code)] = tally.get((task, code), 0) + codes.count(code)
    txn.put_info(dict(task_counts_info(tally), next_id=str(first + n),
                      data_bytes=str(data_bytes - freed + batch_bytes)))
    seal(txn)
    return first, evicted, freed


def delete_records(txn: WriteTxn, ids: Sequence[int], path: Path) -> int:
    """Delete records by id; returns how many existed."""
    groups: Dict[Tuple[int, int], List[int]] = {}
    for raw in txn.records(ids):
        if raw is not None:
            groups.setdefault((raw.split, raw.label), []).append(raw.ord)
    freed = removed = 0
    info = txn.info()
    tally = task_tally(txn, info)
    for key, ords in groups.items():
        gone = remove_ords(txn, key, txn.count(*key), ords, path)
        freed += sum(r.nbytes for r in gone)
        removed += len(gone)
        count_off(tally, gone)
    txn.put_info(dict(task_counts_info(tally), data_bytes=str(int(info["data_bytes"]) - freed)))
    seal(txn)
    return removed
