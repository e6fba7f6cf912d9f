"""``SampleStore.verify``: a full scan that checks every record and the class index against it."""
from typing import Dict, List, NamedTuple, Tuple

from miro_edge.memory.store.backends.base import SPLITS, ReadTxn, StoreBackend
from miro_edge.memory.store.draw import Decode
from miro_edge.memory.store.integrity import TASK_COUNTS, metadata_problems, task_counts


class VerifyReport(NamedTuple):
    """What ``SampleStore.verify`` found; ``ok`` when nothing is wrong."""

    records_checked: int
    corrupt_ids: List[int]
    problems: List[str]

    @property
    def ok(self) -> bool:
        return not self.corrupt_ids and not self.problems


def record_tallies(txn: ReadTxn, chunk: int = 4096) -> Tuple[Dict[Tuple[int, int], int], Dict[Tuple[int, int], int],
                                                           int, int]:
    """Count what the records themselves say, by a scan: ((split, label) -> records,
    (task id, split) -> records, payload + metadata bytes, highest id or -1)."""
    classes: Dict[Tuple[int, int], int] = {}
    tasks: Dict[Tuple[int, int], int] = {}
    nbytes, last = 0, -1
    while True:
        rows = txn.scan(last, chunk)
        if not rows:
            return classes, tasks, nbytes, last
        for raw in rows:
            classes[(raw.split, raw.label)] = classes.get((raw.split, raw.label), 0) + 1
            tasks[(raw.task_id, raw.split)] = tasks.get((raw.task_id, raw.split), 0) + 1
            nbytes += raw.nbytes
        last = rows[-1].record_id


def verify_records(backend: StoreBackend, decode: Decode, chunk: int = 4096) -> VerifyReport:
    """Scan every record: checksums, per-class counts and dense ordinals (RAM: O(classes)), and
    the metadata (seal, next id, byte and per-task counts, the backend's own) against them."""
    seen: Dict[Tuple[int, int], List[int]] = {}  # count, sum of ords, max ord
    tasks: Dict[Tuple[int, int], int] = {}
    corrupt: List[int] = []
    checked, last, nbytes = 0, -1, 0
    with backend.read() as txn:
        stored = txn.counts()
        info = txn.info()
        problems = metadata_problems(txn, info, None)
        while True:
            rows = txn.scan(last, chunk)
            if not rows:
                break
            good: set = set()
            bad: int = 0
            for start in range(0, len(rows), 64):  # small pieces: the decode buffer stays small
                decoded, failed = decode(rows[start:start + 64])
                good.update(sample.record_id for sample in decoded)
                bad += failed
            for raw in rows:
                checked += 1
                if bad and raw.record_id not in good:
                    corrupt.append(raw.record_id)
                    continue
                acc = seen.setdefault((raw.split, raw.label), [0, 0, -1])
                acc[0] += 1
                acc[1] += raw.ord
                acc[2] = max(acc[2], raw.ord)
                tasks[(raw.task_id, raw.split)] = tasks.get((raw.task_id, raw.split), 0) + 1
                nbytes += raw.nbytes
            last = rows[-1].record_id
        problems.extend(backend.problems(deep=True))
    for key in sorted(set(stored) | set(seen)):
        want = stored.get(key, 0)
        got, total, top = seen.get(key, [0, 0, -1])
        name = f"{SPLITS[key[0]] if 0 <= key[0] < len(SPLITS) else key[0]}/{key[1]}"
        if got != want and not corrupt:
            problems.append(f"class {name}: count says {want} but {got} records found")
        elif not corrupt and (top != want - 1 or total != want * (want - 1) // 2):
            problems.append(f"class {name}: ordinals are not dense 0..{want - 1}")
    if not corrupt:
        if TASK_COUNTS in info and task_counts(info) != {k: n for k, n in tasks.items() if n}:
            problems.append(f"per-task counts say {_tasks_text(task_counts(info))} but the records hold {_tasks_text(tasks)}")
        if int(info.get("data_bytes", "0")) != nbytes:
            problems.append("data_bytes says {} but the records hold {}".format(info.get("data_bytes"), nbytes))
    return VerifyReport(checked, corrupt, problems)


def _tasks_text(tally: Dict[Tuple[int, int], int]) -> str:
    return ", ".join(f"task {t} {SPLITS[s] if 0 <= s < len(SPLITS) else s} {n}"
                     for (t, s), n in sorted(tally.items()) if n) or "nothing"
