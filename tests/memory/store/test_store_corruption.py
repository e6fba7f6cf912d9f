"""Corruption campaign (issue 9 acceptance): every single-field corruption of a store's metadata
and every byte flip in its payloads is detected (a clear error, a counted-corrupt record, or a
``verify`` problem) and never served. The figures go to docs/store.md ("faults tried / detected /
served"); ``python tests/memory/store/test_store_corruption.py`` prints them."""
import shutil
import struct
import sys
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import numpy as np
import pytest

from miro_edge.errors import StoreError
from miro_edge.memory.store import SampleStore
from miro_edge.memory.store.backends import slots_index

sys.path.insert(0, str(Path(__file__).resolve().parent))
from store_edits import get_info, query, set_class_count, set_info, sql  # noqa: E402

N = 9
SHAPE = (4, 3)


def _x(i):
    return np.random.default_rng(i).standard_normal(SHAPE).astype(np.float32)


def _truth() -> Dict[int, tuple]:
    """What each record must come back as: (payload bytes, label, split, task, meta)."""
    return {i: (_x(i).tobytes(), i % 3, "val" if i == 4 else "train", 0, {"i": i} if i % 2 else None)
            for i in range(N)}


def _build(path: Path, backend: str) -> Dict[int, tuple]:
    truth = _truth()
    with SampleStore(path, backend=backend) as s:
        s.ingest_batch(np.stack([_x(i) for i in range(N)]), [truth[i][1] for i in range(N)], task_id=0,
                       splits=[truth[i][2] for i in range(N)], metas=[truth[i][4] for i in range(N)])
    return truth


def _flip_text(value: str) -> str:
    return value[:-1] + chr(ord(value[-1]) ^ 1) if value else "x"


def _metadata_faults(path: Path, backend: str) -> List[Tuple[str, Callable[[Path], None]]]:
    faults: List[Tuple[str, Callable[[Path], None]]] = []
    for key, value in sorted(get_info(path, backend).items()):
        faults.append((f"info {key} bit flip", lambda p, k=key, v=value: set_info(p, backend, k, _flip_text(v))))
        faults.append((f"info {key} removed", lambda p, k=key: set_info(p, backend, k, None)))
        if value.lstrip("-").isdigit():
            faults.append((f"info {key} - 1",
                           lambda p, k=key, v=value: set_info(p, backend, k, str(int(v) - 1))))
    counts: Dict[Tuple[int, int], int] = {}
    for _i, (_, label, split, _, _) in _truth().items():
        counts[(int(split == "val"), label)] = counts.get((int(split == "val"), label), 0) + 1
    for (split, label), count in sorted(counts.items()):
        for delta in (-1, 1):
            faults.append((f"class {split}/{label} count {delta:+d}",
                           lambda p, s=split, lab=label, c=count + delta: set_class_count(p, backend, s, lab, c)))
    if backend == "slots":
        for col in ("layout", "gen", "slot_count", "payload_bytes", "stride"):
            for delta in (-1, 1):
                faults.append((f"slot_file {col} {delta:+d}",
                               lambda p, c=col, d=delta: sql(p, backend, f"UPDATE slot_file SET {c}={c}+?",
                                                             (d,))))
        faults.append(("free list names an occupied slot",
                       lambda p: sql(p, backend, "INSERT INTO free_slots(slot, freed_gen) VALUES (3, 0)")))
    if backend in ("slots", "sqlite"):
        cols = {"split": 7, "label": 99, "ord": 50, "task_id": 5, "meta": "x'7b7d'"}
        cols.update({"slot": 40} if backend == "slots" else {"crc": "crc+1"})
        for col, value in cols.items():
            faults.append((f"record 3 {col} changed",
                           lambda p, c=col, v=value: sql(p, backend, f"UPDATE records SET {c}={v} WHERE id=3")))
    return faults


def _payload_faults(path: Path, backend: str) -> List[Tuple[str, Callable[[Path], None]]]:
    """One flipped byte at every offset of record 5's payload (and, for slots, of its slot header)."""
    nbytes = int(np.prod(SHAPE)) * 4
    faults: List[Tuple[str, Callable[[Path], None]]] = []
    if backend == "slots":
        slot = query(path, backend, "SELECT slot FROM records WHERE id=5")[0][0]
        start = slot * slots_index._stride(nbytes)

        def flip(p, at):
            with open(str(p / slots_index.SLOTS_NAME), "r+b") as f:
                f.seek(at)
                byte = f.read(1)
                f.seek(at)
                f.write(bytes([byte[0] ^ 0x10]))
        for k in range(slots_index._HDR.size + nbytes):
            what = "payload" if k >= slots_index._HDR.size else "slot header"
            faults.append((f"{what} byte {k} flipped", lambda p, at=start + k: flip(p, at)))
    elif backend == "sqlite":
        for k in range(nbytes):
            faults.append((f"payload byte {k} flipped", lambda p, k=k: _flip_sqlite(p, k)))
    else:
        for k in range(nbytes):
            faults.append((f"payload byte {k} flipped", lambda p, k=k: _flip_lmdb(p, k, nbytes)))
    return faults


def _flip_sqlite(path: Path, k: int) -> None:
    blob = bytearray(query(path, "sqlite", "SELECT payload FROM records WHERE id=5")[0][0])
    blob[k] ^= 0x10
    sql(path, "sqlite", "UPDATE records SET payload=? WHERE id=5", (bytes(blob),))


def _flip_lmdb(path: Path, k: int, nbytes: int) -> None:
    import lmdb

    env = lmdb.open(str(path), max_dbs=4, subdir=True)
    try:
        with env.begin(write=True) as txn:
            db = env.open_db(b"records", txn=txn, create=False)
            key = struct.pack(">Q", 5)
            value = bytearray(txn.get(key, db=db))
            value[len(value) - nbytes + k] ^= 0x10
            txn.put(key, bytes(value), db=db)
    finally:
        env.close()


def _outcome(path: Path, original: Dict[int, tuple]) -> Tuple[bool, bool]:
    """(detected, served): served means a sample differing from what was ingested came back."""
    try:
        store = SampleStore(path)
    except StoreError as exc:
        assert str(path) in str(exc)  # a clear error names the store
        return True, False
    served = detected = False
    with store:
        got = store.read_many(list(range(N)))
        got += store.draw({0: N, 1: N, 2: N}, np.random.default_rng(0))
        got += store.draw({0: N, 1: N, 2: N}, np.random.default_rng(1), split="val")
        for r in got:
            if (r.x.tobytes(), r.label, r.split, r.task_id, r.meta) != original.get(r.record_id):
                served = True
        report = store.verify()
        detected = bool(store.stats.corrupt_skipped or store.stats.missing_skipped or not report.ok)
        if not detected:  # a damage that only shows when writing (free list, slot count)
            try:
                store.ingest_batch(np.stack([_x(100), _x(101)]), [0, 1], task_id=1)
            except StoreError:
                detected = True
    return detected, served


def campaign(root: Path, backend: str) -> Dict[str, List[str]]:
    clean = root / "clean"
    original = _build(clean, backend)
    result: Dict[str, List[str]] = {"tried": [], "detected": [], "served": [], "missed": []}
    for kind, faults in (("metadata", _metadata_faults(clean, backend)), ("payload", _payload_faults(clean, backend))):
        for name, damage in faults:
            case = root / "case"
            if case.exists():
                shutil.rmtree(str(case))
            shutil.copytree(str(clean), str(case))
            damage(case)
            detected, served = _outcome(case, original)
            label = f"{kind}: {name}"
            result["tried"].append(label)
            if detected:
                result["detected"].append(label)
            else:
                result["missed"].append(label)
            if served:
                result["served"].append(label)
    return result


@pytest.mark.parametrize("backend", ["slots", "sqlite", "lmdb"])
def test_every_single_field_corruption_is_detected_never_served(tmp_path, backend):
    result = campaign(tmp_path, backend)
    assert len(result["tried"]) >= 60
    assert result["served"] == [] and result["missed"] == [], {k: v for k, v in result.items() if k != "tried"}


if __name__ == "__main__":
    import tempfile

    for name in ("slots", "sqlite", "lmdb"):
        with tempfile.TemporaryDirectory() as tmp:
            res = campaign(Path(tmp), name)
            meta = [t for t in res["tried"] if t.startswith("metadata")]
            print("{:<7} faults tried {} (metadata {}, payload {}) / detected {} / served {}; missed: {}".format(
                name, len(res["tried"]), len(meta), len(res["tried"]) - len(meta), len(res["detected"]),
                len(res["served"]), res["missed"] or "none"))
