"""SampleStore under damage: flipped bytes on disk, a full disk, and a real kill -9 mid-ingest."""
import errno
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from miro_edge.errors import CorruptRecordError, StoreFullError
from miro_edge.memory.store import SampleStore
from miro_edge.memory.store.backends import lmdb as store_lmdb
from miro_edge.memory.store.backends import slots_write
from miro_edge.memory.store.backends import sqlite as store_sqlite

BACKENDS = ["sqlite", "lmdb", "slots"]
ROOT = Path(__file__).resolve().parents[3]


def _sample(i):
    """A 256-byte sample whose bytes are unique to record ``i`` (so a test can find it on disk)."""
    return np.random.default_rng(1000 + i).integers(0, 256, size=(256,), dtype=np.uint8)


def _flip_on_disk(path: Path, needle: bytes, offset: int) -> None:
    """Flip one byte inside every on-disk copy of ``needle`` (LMDB keeps stale copies in free pages)."""
    data = bytearray(path.read_bytes())
    at = data.find(needle)
    assert at >= 0, f"payload not found in {path}"
    while at >= 0:
        data[at + offset] ^= 0x5A
        at = data.find(needle, at + 1)
    with open(str(path), "r+b") as f:
        f.write(bytes(data))


@pytest.mark.parametrize("backend", BACKENDS)
def test_flipped_payload_byte_is_detected_skipped_and_counted(tmp_path, backend):
    path = tmp_path / "s"
    with SampleStore(path, backend=backend) as s:
        s.ingest_batch(np.stack([_sample(i) for i in range(20)]), [i % 2 for i in range(20)], task_id=0)
        db = [f for f in s.files() if f.name in ("samples.sqlite3", "data.mdb", "slots.bin")][0]
    _flip_on_disk(db, _sample(7).tobytes(), 100)  # closed: WAL checkpointed into the main file
    with SampleStore(path) as s:
        with pytest.raises(CorruptRecordError, match="record 7"):
            s.read(7)
        got = s.read_many([6, 7, 8])
        assert [r.record_id for r in got] == [6, 8]
        np.testing.assert_array_equal(got[1].x, _sample(8))
        assert s.stats.corrupt_skipped == 1
        report = s.verify()
        assert report.corrupt_ids == [7] and not report.ok
        assert s.delete(report.corrupt_ids) == 1
        assert s.verify().ok and len(s) == 19
        drawn = s.read_many(s.sample_ids(1, 10, np.random.default_rng(0)))
        assert len(drawn) == 9 and 7 not in [r.record_id for r in drawn]


@pytest.mark.parametrize("backend,db", [("sqlite", "samples.sqlite3"), ("slots", "slots-index.sqlite3")])
def test_tampered_label_fails_the_checksum(tmp_path, backend, db):
    path = tmp_path / "s"
    with SampleStore(path, backend=backend) as s:
        s.ingest_batch(np.stack([_sample(i) for i in range(4)]), [0, 1, 0, 1], task_id=0)
    conn = sqlite3.connect(str(path / db))  # slots: the index row then disagrees with the slot header
    conn.execute("UPDATE records SET label=5 WHERE id=2")  # what a bit flip in the label would do
    conn.commit()
    conn.close()
    with SampleStore(path) as s:
        with pytest.raises(CorruptRecordError):
            s.read(2)
        assert [r.record_id for r in s.read_many(range(4))] == [0, 1, 3]


def _fill_until_full(s, start=0):
    acked = []
    with pytest.raises(StoreFullError) as err:
        for i in range(start, start + 100000, 8):
            acked += s.ingest_batch(np.stack([_sample(j) for j in range(i, i + 8)]), [j % 3 for j in range(i, i + 8)],
                                    task_id=0)
    return acked, str(err.value)


@pytest.mark.parametrize("backend,options", [("sqlite", {"max_page_count": 40}),
                                             ("lmdb", {"map_size_bytes": 256 * 1024}),
                                             ("slots", {"max_page_count": 40}),  # the index fills up
                                             ("slots", {"max_slot_bytes": 64 * 1024})])  # the slot file does
def test_full_disk_keeps_every_acknowledged_sample(tmp_path, backend, options):
    path = tmp_path / "s"
    with SampleStore(path, backend=backend, backend_options=options) as s:
        acked, message = _fill_until_full(s)
        assert "full" in message and "nothing from this call was stored" in message
        assert len(acked) > 8 and len(s) == len(acked)
        assert s.verify().ok
    with SampleStore(path) as s:  # reopens cleanly, without the cap
        assert len(s) == len(acked)
        got = s.read_many(acked)
        assert len(got) == len(acked)
        for r in got:
            np.testing.assert_array_equal(r.x, _sample(r.record_id))
        assert s.ingest(_sample(999), 0, task_id=1) == len(acked)


@pytest.mark.parametrize("backend", BACKENDS)
def test_enospc_during_write_is_store_full(tmp_path, backend, monkeypatch):
    with SampleStore(tmp_path / "s", backend=backend) as s:
        s.ingest(_sample(0), 0, task_id=0)
        target = {"sqlite": store_sqlite._Txn, "lmdb": store_lmdb._Txn, "slots": slots_write._SlotTxn}[backend]

        def no_space(self, rows):
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(target, "put_records", no_space)
        with pytest.raises(StoreFullError, match="space"):
            s.ingest_batch(np.stack([_sample(1), _sample(2)]), [0, 1], task_id=0)
        monkeypatch.undo()
        assert len(s) == 1 and s.class_counts() == {0: 1}
        assert s.ingest(_sample(1), 1, task_id=0) == 1  # the failed call consumed nothing
        assert s.verify().ok


_CHILD = textwrap.dedent("""
    import sys
    import numpy as np
    sys.path.insert(0, sys.argv[1])
    from miro_edge.memory.store import SampleStore
    s = SampleStore(sys.argv[2], backend=sys.argv[3])
    i = 0
    while True:
        if i % 3 == 0:
            ids = s.ingest_batch(np.stack([np.full(512, (i + k) % 251, np.uint8) for k in range(4)]),
                                 [(i + k) % 5 for k in range(4)], task_id=0)
        else:
            ids = [s.ingest(np.full(512, i % 251, np.uint8), i % 5, task_id=0, meta={"i": i})]
        i += len(ids)
        sys.stdout.write(" ".join(str(r) for r in ids) + "\\n")
        sys.stdout.flush()
""")


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_kill_9_mid_ingest_loses_no_acknowledged_sample(tmp_path, backend):
    path = tmp_path / "s"
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(ROOT), str(path), backend],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    acked = []
    deadline = time.monotonic() + 60
    try:
        while len(acked) < 300 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            acked += [int(v) for v in line.split()]
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # mid-run: it is ingesting the next records right now
        proc.wait()
        proc.stdout.close()
        stderr = proc.stderr.read()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert len(acked) >= 300, stderr
    with SampleStore(path, create=False) as s:
        assert len(s) >= len(acked)
        got = {r.record_id: r for r in s.read_many(acked)}
        assert sorted(got) == sorted(acked)
        assert s.stats.corrupt_skipped == 0
        for _rid, r in got.items():  # the payload is whole and matches its label pattern
            assert r.x.shape == (512,) and len(set(r.x.tolist())) == 1
        report = s.verify()
        assert report.ok, report
        assert s.ingest(np.zeros(512, np.uint8), 0, task_id=1) >= len(acked)
