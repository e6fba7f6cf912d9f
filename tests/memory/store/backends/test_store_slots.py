"""What is specific to the ``slots`` backend: slot reuse only after commit, crashes between the
payload write and the commit, the per-process RAM index following other writers, and reads racing
slot reuse. The generic store suite (test_store*.py) also runs against this backend."""
import errno
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections import Counter
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from miro_fakes import readers_during

from miro_edge.errors import ConfigError, CorruptRecordError, StoreError, StoreFullError
from miro_edge.memory.store import SampleStore, StoreMetadataError, repair_store
from miro_edge.memory.store.backends import slots as store_slots
from miro_edge.memory.store.backends import slots_index

ROOT = Path(__file__).resolve().parents[4]


def _sample(i):
    """256 bytes all equal to ``i % 251``: a served record proves it is whole and belongs to its id."""
    return np.full(256, i % 251, np.uint8)


def _fill(s, start, n, labels=None, **kw):
    ids = range(start, start + n)
    return s.ingest_batch(np.stack([_sample(i) for i in ids]), labels or [i % 4 for i in ids], task_id=0, **kw)


def _check(samples):
    for r in samples:  # labels are id % 4 everywhere below, payloads _sample(id)
        assert r.label == r.record_id % 4, (r.record_id, r.label)
        np.testing.assert_array_equal(r.x, _sample(r.record_id))


def _index_state(path):
    """(record id -> slot, free slots) as committed in the index database."""
    conn = sqlite3.connect(str(path / store_slots.INDEX_NAME))
    try:
        used = {int(i): int(s) for i, s in conn.execute("SELECT id, slot FROM records")}
        free = {int(r[0]) for r in conn.execute("SELECT slot FROM free_slots")}
    finally:
        conn.close()
    return used, free


def test_freed_slots_are_reused_only_by_a_later_transaction(tmp_path):
    path = tmp_path / "s"
    with SampleStore(path, backend="slots", quota_samples=20, seed=0) as s:
        _fill(s, 0, 20)
        used0, free0 = _index_state(path)
        assert sorted(used0.values()) == list(range(20)) and not free0
        new = _fill(s, 20, 5)  # evicts 5 records in the same transaction
        used1, free1 = _index_state(path)
        freed = {used0[i] for i in set(used0) - set(used1)}
        assert len(freed) == 5 and free1 == freed  # free once committed ...
        assert {used1[i] for i in new} == set(range(20, 25))  # ... but not reused by the freeing transaction
        newer = _fill(s, 25, 5)
        used2, free2 = _index_state(path)
        assert {used2[i] for i in newer} == freed  # the next transaction reuses them
        assert free2 == {used1[i] for i in set(used1) - set(used2)}
        stride = s.settings()["slot_stride"]
        assert os.path.getsize(str(path / store_slots.SLOTS_NAME)) == 25 * stride
        assert s.verify().ok
        _check(s.read_many(sorted(used2)))


_CRASH_CHILD = textwrap.dedent("""
    import os, sys
    import numpy as np
    sys.path.insert(0, sys.argv[1])
    from miro_edge.memory.store.backends import slots as store_slots
    from miro_edge.memory.store import SampleStore
    s = SampleStore(sys.argv[2], backend="slots", quota_samples=30, seed=1)
    for i in range(0, 60, 6):  # every batch evicts and reuses the slots the previous commit freed
        s.ingest_batch(np.stack([np.full(256, j % 251, np.uint8) for j in range(i, i + 6)]),
                       [j % 4 for j in range(i, i + 6)], task_id=0)
        print(i + 6, flush=True)
    real = store_slots._datasync
    def crash(fd):
        real(fd)  # the next batch's payload is written and synced ...
        os._exit(7)  # ... and the process dies before its COMMIT
    store_slots._datasync = crash
    s.ingest_batch(np.stack([np.full(256, 250, np.uint8)] * 6), [0] * 6, task_id=0)
""")


def test_crash_between_payload_write_and_commit_loses_nothing_acknowledged(tmp_path):
    path = tmp_path / "s"
    out = subprocess.run([sys.executable, "-c", _CRASH_CHILD, str(ROOT), str(path)], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 7, out.stderr
    assert out.stdout.split()[-1] == "60"
    data = (path / store_slots.SLOTS_NAME).read_bytes()
    assert bytes([250]) * 256 in data  # the unacknowledged batch reached the file, unreferenced
    with SampleStore(path, create=False) as s:
        assert len(s) == 30
        survivors = s.read_many(range(66))
        assert len(survivors) == 30 and all(r.record_id < 60 for r in survivors)
        _check(survivors)
        assert s.stats.corrupt_skipped == 0
        assert s.verify().ok
        assert s.ingest(_sample(60), 0, task_id=1) == 60  # the crashed batch consumed no id


@pytest.mark.parametrize("err,raises", [(errno.EIO, StoreError), (errno.ENOSPC, StoreFullError)])
def test_failed_payload_sync_rolls_back_everything(tmp_path, monkeypatch, err, raises):
    path = tmp_path / "s"
    with SampleStore(path, backend="slots", quota_samples=12) as s:
        _fill(s, 0, 12)

        def fail(fd):
            raise OSError(err, os.strerror(err))

        monkeypatch.setattr(store_slots, "_datasync", fail)
        with pytest.raises(raises):
            _fill(s, 12, 4)  # would evict 4 and write 4
        monkeypatch.undo()
        assert len(s) == 12 and sorted(r.record_id for r in s.read_many(range(16))) == list(range(12))
        assert s.draw({0: 3, 1: 3}, np.random.default_rng(0)) and s.stats.corrupt_skipped == 0
        assert _fill(s, 12, 4) == [12, 13, 14, 15]
        assert s.verify().ok
    with SampleStore(path) as s:
        assert len(s) == 12 and s.verify().ok
        _check(s.read_many(range(16)))


def test_ram_index_follows_another_instance(tmp_path):
    path = tmp_path / "s"
    rng = np.random.default_rng(0)
    with SampleStore(path, backend="slots", quota_samples=40) as a:
        _fill(a, 0, 4)  # b opens a store whose sample layout is fixed
    with SampleStore(path, quota_samples=40) as a, SampleStore(path, quota_samples=40) as b:
        _fill(a, 4, 36)
        assert len(b.draw({1: 10}, rng)) == 10  # b reloads: a committed
        loads = a._backend.index_loads
        _fill(b, 40, 20, labels=[i % 4 for i in range(40, 60)])  # b evicts 20 of the records a indexed
        got = a.draw({lab: 40 for lab in range(4)}, rng)
        assert sorted(r.record_id for r in got) == sorted(r.record_id for r in b.read_many(range(60)))
        assert a._backend.index_loads == loads + 1  # seen at once: b is in this process
        _check(got)
        assert a.sample_ids(3, 40, rng) and len(a.sample_ids(3, 40, rng)) == b.class_counts()[3]
        _fill(a, 60, 8)  # a's writer starts from b's commit, not from its own stale index
        assert len(b) == 40 and len(b.draw({lab: 40 for lab in range(4)}, rng)) == 40
        assert a.verify().ok and b.verify().ok
        assert a.stats.corrupt_skipped == 0 and a.stats.missing_skipped == 0
        assert b.stats.corrupt_skipped == 0 and b.stats.missing_skipped == 20  # read_many(range(60)): 20 evicted


_WRITER_CHILD = textwrap.dedent("""
    import sys, time
    import numpy as np
    sys.path.insert(0, sys.argv[1])
    from miro_edge.memory.store import SampleStore
    s = SampleStore(sys.argv[2], backend="slots", quota_samples=int(sys.argv[3]))
    start, stop = int(sys.argv[4]), time.monotonic() + float(sys.argv[5])
    i = start
    while i == start or time.monotonic() < stop:
        s.ingest_batch(np.stack([np.full(256, j % 251, np.uint8) for j in range(i, i + 4)]),
                       [j % 4 for j in range(i, i + 4)], task_id=0)
        i += 4
    print(i, flush=True)
""")


def _writer(path, quota, start, seconds):
    return subprocess.Popen([sys.executable, "-c", _WRITER_CHILD, str(ROOT), str(path), str(quota), str(start),
                             str(seconds)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)


def test_ram_index_follows_another_process(tmp_path):
    path = tmp_path / "s"
    with SampleStore(path, backend="slots", backend_options={"recheck_s": 0}) as s:
        _fill(s, 0, 8)
        rng = np.random.default_rng(0)
        with SampleStore(path) as lazy:  # the default recheck_s: other processes' commits within 1 ms
            assert len(s.draw({0: 10}, rng)) == 2 and len(lazy.draw({0: 10}, rng)) == 2
            proc = _writer(path, 1000, 8, 0)  # one batch of 4
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
            got = s.draw({0: 10, 1: 10}, rng)  # recheck_s=0: the very next read sees it
            assert sorted(r.record_id for r in got) == [0, 1, 4, 5, 8, 9]
            _check(got)
            time.sleep(0.01)
            assert sorted(r.record_id for r in lazy.draw({0: 10, 1: 10}, rng)) == [0, 1, 4, 5, 8, 9]


def test_reads_racing_slot_reuse_in_one_process_never_go_wrong(tmp_path):
    path = tmp_path / "s"
    with SampleStore(path, backend="slots", sample_shape=(256,), dtype=np.uint8, quota_samples=48) as s, \
            SampleStore(path) as other:
        _fill(s, 0, 48)
        reads = Counter()

        def reader(store, name, rng):
            got = store.draw({0: 3, 1: 2, 2: 4, 3: 1}, rng)
            assert Counter(r.label for r in got) == {0: 3, 1: 2, 2: 4, 3: 1}
            _check(got)
            ids = store.sample_ids(int(rng.integers(4)), 5, rng)
            _check(store.read_many(ids))
            reads[name] += len(got)

        def write():
            for i in range(48, 48 + 4 * 150, 4):  # every commit evicts 4 and reuses 4 slots
                _fill(s, i, 4)

        errors = readers_during([partial(reader, store, name, np.random.default_rng(seed))
                                 for store, name, seed in ((s, "same", 1), (s, "same2", 2), (other, "other", 3))],
                                write)
        assert not errors, errors
        assert min(reads.values()) > 0
        for st in (s.stats, other.stats):
            assert st.corrupt_skipped == 0  # no torn read: the slot lock is shared by both instances
        assert s.verify().ok


@pytest.mark.slow
def test_reads_racing_a_writer_process_serve_only_whole_records(tmp_path):
    path = tmp_path / "s"
    with SampleStore(path, backend="slots", quota_samples=64, backend_options={"recheck_s": 0}) as s:
        _fill(s, 0, 64)
        proc = _writer(path, 64, 64, 2.0)
        rng = np.random.default_rng(0)
        served = 0
        try:
            while proc.poll() is None:
                got = s.draw({0: 4, 1: 4, 2: 4, 3: 4}, rng)
                _check(got)  # a stale index or a reused slot never yields a wrong or torn record
                served += len(got)
        finally:
            out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert served > 0
        # torn reads across processes are possible: they fail the CRC and are skipped, never served
        assert s.stats.corrupt_skipped <= s.stats.records_read
        assert s.verify().ok and len(s) == 64


def _slot_offset(path, record_id):
    return _index_state(path)[0][record_id] * slots_index._stride(256)


def test_damaged_slots_are_never_served(tmp_path):
    path = tmp_path / "s"
    with SampleStore(path, backend="slots") as s:
        _fill(s, 0, 12, labels=[0] * 12)
    slots = path / store_slots.SLOTS_NAME
    with open(str(slots), "r+b") as f:
        f.seek(_slot_offset(path, 3) + 8)  # the label in record 3's slot header
        f.write(b"\x07")
        f.seek(_slot_offset(path, 5) + slots_index._HDR.size + 100)  # a payload byte of record 5
        f.write(b"\xff")
    with SampleStore(path) as s:
        got = s.draw({0: 12}, np.random.default_rng(0))
        assert sorted(r.record_id for r in got) == [0, 1, 2, 4, 6, 7, 8, 9, 10, 11]
        for r in got:
            np.testing.assert_array_equal(r.x, _sample(r.record_id))
        assert s.stats.corrupt_skipped == 2 and s.stats.missing_skipped == 0
        for rid in (3, 5):
            with pytest.raises(CorruptRecordError):
                s.read(rid)
        assert sorted(s.verify().corrupt_ids) == [3, 5]
    with open(str(slots), "r+b") as f:  # a file cut short: the last records are gone
        f.truncate(_slot_offset(path, 11) + 50)
    with pytest.raises(StoreMetadataError, match="cut short, 1 records lie past its end"):
        SampleStore(path)  # not a store that reports 12 records while one of them is gone
    report = repair_store(path)  # rebuilds from what survives: 3 and 5 fail their checks, 11 is cut off
    assert report.kept == 9 and sorted(report.lost_ids) == [3, 5, 11] and report.next_id == 12
    with SampleStore(path) as s:
        assert s.verify().ok and len(s) == 9
        assert [r.record_id for r in s.read_many([10, 11])] == [10]
        assert _fill(s, 12, 4, labels=[0] * 4) == [12, 13, 14, 15]
        got = s.draw({0: 20}, np.random.default_rng(1))
        assert len(got) == 13 and all(np.array_equal(r.x, _sample(r.record_id)) for r in got)


def test_ram_index_is_8_bytes_per_record_and_options(tmp_path):
    path = tmp_path / "s"
    with SampleStore(path, backend="slots") as s:
        _fill(s, 0, 100, metas=[{"i": i} if i % 10 == 0 else None for i in range(100)])
        idx = s._backend._index
        assert sum(a.nbytes for a in idx.classes.values()) == 8 * len(s) == 800
        assert all(not a.flags.writeable for a in idx.classes.values())
        got = s.draw({0: 25}, np.random.default_rng(0))
        assert {r.record_id: r.meta for r in got if r.meta} == {i: {"i": i} for i in range(0, 100, 20)}
        assert s.settings()["slot_stride"] == 296 and s.settings()["payload_file"] == "slots.bin"
    with SampleStore(path) as s:
        assert s._backend.index_loads == 1  # built once at open, from the database
    with pytest.raises(ConfigError, match="unknown slots store option.*recheck_s"):
        SampleStore(tmp_path / "t", backend="slots", backend_options={"cache_mb": 1})
    with SampleStore(tmp_path / "u", backend="slots", backend_options={"max_slot_bytes": 4096}) as s:
        _fill(s, 0, 8)
        with pytest.raises(StoreFullError, match="space"):
            _fill(s, 8, 8)
        assert len(s) == 8 and s.verify().ok
    (tmp_path / "u" / store_slots.SLOTS_NAME).unlink()
    with pytest.raises(StoreError, match="missing"):
        SampleStore(tmp_path / "u")
