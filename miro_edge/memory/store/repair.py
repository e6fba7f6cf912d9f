"""Rebuild a damaged store from what survives, and say what is gone.

``repair_store`` reads the damaged store read-only (its metadata is not trusted: the layout comes
from the self-checking copy, counts are recounted), keeps every record that passes its checksum
under its original id, label, task, split and metadata, writes them into a fresh store of the same
backend next to it, and swaps the two directories. The damaged original is kept beside it
(``<name>.damaged-<time>``), so nothing is deleted; remove it once the report is acceptable.
"""
import logging
import os
import time
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

import numpy as np

from miro_edge.errors import CorruptRecordError, StoreError
from miro_edge.memory.store.backends.base import SPLITS, STORE_BACKENDS, RawRecord, ReadTxn, detect_backend
from miro_edge.memory.store.decode import decode_many
from miro_edge.memory.store.integrity import seal, task_counts_info
from miro_edge.memory.store.layout import layout_info, layout_nbytes, new_info, recover_layout
from miro_edge.memory.store.records import checksum
from miro_edge.utils.atomic import fsync_dir

logger = logging.getLogger(__name__)

_BATCH = 512


class RepairReport(NamedTuple):
    """What ``repair_store`` kept and lost; ``damaged_copy`` is where the original now lies."""

    kept: int
    lost_ids: List[int]            # records that were found but failed their checks
    unreadable: int                # rows the engine could not read at all
    claimed: int                   # records the damaged metadata said it held
    per_class_before: Dict[str, Dict[int, int]]   # split -> label -> records, by the damaged metadata
    per_class_after: Dict[str, Dict[int, int]]
    next_id: int
    damaged_copy: Optional[Path]

    @property
    def lost(self) -> int:
        """Records the store held (by its metadata, or as found) that the rebuilt one lacks."""
        return max(self.claimed - self.kept, len(self.lost_ids) + self.unreadable)


def _by_split(counts: Dict[Tuple[int, int], int]) -> Dict[str, Dict[int, int]]:
    out: Dict[str, Dict[int, int]] = {}
    for (split, label), n in sorted(counts.items()):
        if n and 0 <= split < len(SPLITS):
            out.setdefault(SPLITS[split], {})[label] = n
    return out


def _scan_all(txn: ReadTxn, limit_id: int) -> Tuple[List[RawRecord], int]:
    """Every row the engine can still read, stepping over damaged pages one id at a time."""
    rows: List[RawRecord] = []
    unreadable: int = 0
    last: int = -1
    while True:
        try:
            chunk = txn.scan(last, _BATCH)
        except CorruptRecordError:
            try:
                chunk = txn.scan(last, 1)
            except CorruptRecordError:
                unreadable += 1
                last += 1
                if last > limit_id:
                    return rows, unreadable
                continue
        if not chunk:
            return rows, unreadable
        rows.extend(chunk)
        last = chunk[-1].record_id


def _safe(read: Any, default: Any) -> Any:
    try:
        return read()
    except (StoreError, UnicodeDecodeError, ValueError) as exc:
        logger.warning("repair: %s", exc)
        return default


def repair_store(path: Any, backend_options: Optional[Dict[str, Any]] = None) -> RepairReport:
    """Rebuild the store at ``path`` from its intact records; see the module docstring."""
    path = Path(path)
    name = detect_backend(path, STORE_BACKENDS.names()) if path.is_dir() else None
    if name is None:
        raise StoreError(f"no sample store at {path} to repair")
    factory = STORE_BACKENDS.get(name)
    old = factory(path, False, dict(backend_options or {}), read_only=True)
    try:
        with old.read() as txn:
            info = _safe(txn.info, {})
            claimed_counts = _safe(txn.counts, {})
            layout = recover_layout(info)
            try:
                claimed_next = int(info.get("next_id", "0"))
            except ValueError:
                claimed_next = 0
            raws, unreadable = _scan_all(txn, max(claimed_next, 0) + (1 << 20))
            if layout is None and raws:
                raise StoreError(f"the layout (sample shape and dtype) of the store at {path} is damaged beyond "
                                 "recovery; its records cannot be decoded. Restore the store from a backup"
                                 )
            kept: List[RawRecord] = []
            lost_ids: List[int] = []
            shape, dtype = layout if layout is not None else ((), np.dtype(np.uint8))  # no layout: no records
            for raw in raws:
                good, _ = decode_many([raw], shape, dtype, layout_nbytes(shape, dtype), lambda rid: None)
                if good:
                    kept.append(raw._replace(payload=bytes(raw.payload),
                                             meta=None if raw.meta is None else bytes(raw.meta)))
                else:
                    lost_ids.append(raw.record_id)
    finally:
        old.close()
    tmp = path.with_name(path.name + ".repair-tmp")
    if tmp.exists():
        import shutil
        shutil.rmtree(str(tmp))
    tmp.mkdir(mode=0o700)
    new = factory(tmp, True, dict(backend_options or {}))
    next_id = max([claimed_next] + [r.record_id + 1 for r in kept])
    counts: Dict[Tuple[int, int], int] = {}
    tasks: Dict[Tuple[int, int], int] = {}
    try:
        data_bytes = 0
        for start in range(0, len(kept), _BATCH):
            rows = []
            for raw in kept[start:start + _BATCH]:
                key = (raw.split, raw.label)
                ordinal = counts.get(key, 0)
                counts[key] = ordinal + 1
                tasks[(raw.task_id, raw.split)] = tasks.get((raw.task_id, raw.split), 0) + 1
                data_bytes += raw.nbytes
                rows.append(RawRecord(raw.record_id, raw.split, raw.label, ordinal, raw.task_id,
                                      checksum(raw.record_id, raw.label, raw.task_id, raw.split, raw.meta,
                                               raw.payload), raw.meta, raw.payload))
            with new.write() as wtxn:
                wtxn.put_records(rows)
                for split, label in {(r.split, r.label) for r in rows}:
                    wtxn.set_count(split, label, counts[(split, label)])
        with new.write() as wtxn:
            fresh = new_info(name)
            for name_key in ("created_unix", "created_by"):
                if name_key in info:
                    fresh[name_key] = info[name_key]
            wtxn.put_info(fresh)
            if layout is not None:
                wtxn.put_info(layout_info(layout[0], np.dtype(layout[1])))
            wtxn.put_info(dict(task_counts_info(tasks), next_id=str(next_id), data_bytes=str(data_bytes),
                               repaired_unix=f"{time.time():.3f}"))
            seal(wtxn)
    finally:
        new.close()
    damaged = path.with_name("{}.damaged-{}".format(path.name, time.strftime("%Y%m%dT%H%M%S")))
    os.rename(str(path), str(damaged))
    os.rename(str(tmp), str(path))
    fsync_dir(path.parent)
    claimed = sum(claimed_counts.values()) if claimed_counts else len(raws)
    report = RepairReport(len(kept), lost_ids, unreadable, claimed, _by_split(claimed_counts), _by_split(counts),
                          next_id, damaged)
    logger.warning("repaired the store at %s: kept %d records, lost %d; the damaged original is at %s", path,
                   report.kept, report.lost, damaged)
    return report
