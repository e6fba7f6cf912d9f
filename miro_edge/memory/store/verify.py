"""``SampleStore.verify``: a full scan that checks every record and the class index against it."""
from typing import Dict, List, NamedTuple, Tuple

from miro_edge.memory.store.backends.base import SPLITS, StoreBackend
from miro_edge.memory.store.draw import Decode


class VerifyReport(NamedTuple):
    """What ``SampleStore.verify`` found; ``ok`` when nothing is wrong."""

    records_checked: int
    corrupt_ids: List[int]
    problems: List[str]

    @property
    def ok(self) -> bool:
        return not self.corrupt_ids and not self.problems


def verify_records(backend: StoreBackend, decode: Decode, chunk: int = 4096) -> VerifyReport:
    """Scan every record: checksums, per-class counts and dense ordinals (RAM: O(classes))."""
    seen = {}  # type: Dict[Tuple[int, int], List[int]]  # count, sum of ords, max ord
    corrupt = []  # type: List[int]
    checked, last = 0, -1
    with backend.read() as txn:
        stored = txn.counts()
        while True:
            rows = txn.scan(last, chunk)
            if not rows:
                break
            good, bad = set(), 0  # type: set, int
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
            last = rows[-1].record_id
    problems = []
    for key in sorted(set(stored) | set(seen)):
        want = stored.get(key, 0)
        got, total, top = seen.get(key, [0, 0, -1])
        name = "{}/{}".format(SPLITS[key[0]] if 0 <= key[0] < len(SPLITS) else key[0], key[1])
        if got != want and not corrupt:
            problems.append("class {}: count says {} but {} records found".format(name, want, got))
        elif not corrupt and (top != want - 1 or total != want * (want - 1) // 2):
            problems.append("class {}: ordinals are not dense 0..{}".format(name, want - 1))
    return VerifyReport(checked, corrupt, problems)
