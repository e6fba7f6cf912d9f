"""Metadata that cannot lie (issue 9, items 4, 5, 7, 8): a damaged layout, next id, class count or
slot count is a clear error on open, never garbage samples, a UNIQUE-constraint message or an
overwritten record; stores open read-only; damage becomes one ``Error:`` line; ``repair`` rebuilds
a store from what survives; ``summary`` is what a resume compares with its state."""
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from store_edits import query, set_class_count, set_info, sql, unseal

from miro_edge.errors import StoreError
from miro_edge.memory.store import SampleStore, StoreMetadataError, repair_store
from miro_edge.memory.store.backends import slots_index

BACKENDS = ["sqlite", "lmdb", "slots"]
ROOT = Path(__file__).resolve().parents[3]


def _x(i):
    return (np.arange(12, dtype=np.float32).reshape(4, 3) + i).astype(np.float32)


def _make(path, backend, n=30, **kw):
    with SampleStore(path, backend=backend, seed=0, **kw) as s:
        for task in range(3):
            ids = range(task * n // 3, (task + 1) * n // 3)
            s.ingest_batch(np.stack([_x(i) for i in ids]), [i % 3 for i in ids], task_id=task,
                           splits=["val" if i % 5 == 0 else "train" for i in ids])
        return s.summary()


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "miro_edge"] + list(args), capture_output=True,
                          text=True, timeout=120, cwd=cwd)


def _one_error_line(out):
    lines = [ln for ln in out.stderr.strip().splitlines() if not ln.startswith("WARNING")]
    assert out.returncode == 1, (out.stdout, out.stderr)
    assert len(lines) == 1 and lines[0].startswith("Error:") and "Traceback" not in out.stderr, out.stderr
    return lines[0]


@pytest.mark.parametrize("backend", BACKENDS)
def test_summary_counts_per_task_split_and_class(tmp_path, backend):
    summary = _make(tmp_path / "s", backend)
    assert summary.next_id == 30 and summary.records == 30 and summary.sealed
    assert summary.per_task == {0: {"train": 8, "val": 2}, 1: {"train": 8, "val": 2}, 2: {"train": 8, "val": 2}}
    assert summary.per_class == {"train": {0: 8, 1: 8, 2: 8}, "val": {0: 2, 1: 2, 2: 2}}
    assert summary.sample_shape == (4, 3) and summary.dtype == "<f4" and summary.data_bytes == 30 * 48
    with SampleStore(tmp_path / "s", quota_samples=24, seed=0) as s:  # eviction and delete keep them exact
        s.ingest_batch(np.stack([_x(i) for i in range(30, 33)]), [0, 1, 2], task_id=3)
        s.delete([1, 2])
        got = s.summary()
        assert got.records == len(s) == 22 and got.next_id == 33
        assert sum(n for splits in got.per_task.values() for n in splits.values()) == 22
        assert got.per_task[3] == {"train": 3}
        assert s.verify().ok  # verify recounts per-task counts and bytes from the records
        assert got.compare(next_id=33, per_task={3: {"train": 3}}) == []
        assert got.compare(next_id=40, per_task={3: {"train": 5, "val": 1}}) == [
            "next record id is 33, expected 40 (records were lost)",
            "task 3 has 3 train records, expected 5", "task 3 has 0 val records, expected 1"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_flipped_dtype_is_detected_and_repaired(tmp_path, backend):
    path = tmp_path / "s"
    _make(path, backend)
    set_info(path, backend, "dtype", ">f4")  # one flipped bit: every sample would decode as garbage
    with pytest.raises(StoreMetadataError, match="fails its checksum.*store verify .* --repair"):
        SampleStore(path)
    with pytest.raises(StoreMetadataError):
        SampleStore(path, read_only=True)
    report = repair_store(path)
    assert report.kept == 30 and report.lost == 0 and report.damaged_copy.is_dir()
    with SampleStore(path) as s:
        assert s.dtype == np.dtype("<f4") and s.verify().ok
        for r in s.read_many(range(30)):
            np.testing.assert_array_equal(r.x, _x(r.record_id))


@pytest.mark.parametrize("backend", BACKENDS)
def test_damaged_shape_and_class_count_are_detected(tmp_path, backend):
    path = tmp_path / "s"
    _make(path, backend)
    set_info(path, backend, "sample_shape", "[3, 4]")
    with pytest.raises(StoreMetadataError, match="fails its checksum"):
        SampleStore(path)
    unseal(path, backend)  # even without the seal: 12 floats either way, but [2, 4] is caught by size
    set_info(path, backend, "sample_shape", "[2, 4]")
    with pytest.raises(StoreMetadataError, match="32-byte samples but the records hold 48"):
        SampleStore(path)
    repair_store(path)
    with SampleStore(path) as s:
        assert s.sample_shape == (4, 3) and s.verify().ok
    set_class_count(path, backend, 0, 1, 5)
    with pytest.raises(StoreMetadataError, match="fails its checksum"):
        SampleStore(path)


@pytest.mark.parametrize("backend", BACKENDS)
def test_lowered_next_id_is_a_clear_error_not_a_unique_constraint(tmp_path, backend):
    path = tmp_path / "s"
    _make(path, backend)
    set_info(path, backend, "next_id", "20")
    with pytest.raises(StoreMetadataError, match="next_id says 20 but record 29 exists"):
        SampleStore(path)
    unseal(path, backend)  # a store written before the seal: open checks it, ingest checks it again
    with pytest.raises(StoreMetadataError, match="next_id says 20 but record 29 exists"):
        SampleStore(path)
    report = repair_store(path)
    assert report.next_id == 30 and report.kept == 30
    with SampleStore(path) as s:
        assert s.ingest(_x(30), 0, task_id=3) == 30


def test_lowered_slot_count_or_damaged_free_list_never_overwrites_a_record(tmp_path):
    path = tmp_path / "s"
    _make(path, "slots")
    sql(path, "slots", "UPDATE slot_file SET slot_count = slot_count - 3")
    with pytest.raises(StoreMetadataError, match="slot-file metadata .* fails its checksum"):
        SampleStore(path)
    unseal(path, "slots")
    with pytest.raises(StoreMetadataError, match="slot count says 27 but a record occupies slot 29"):
        SampleStore(path)
    sql(path, "slots", "UPDATE slot_file SET slot_count = slot_count + 3")
    slot_of_7 = query(path, "slots", "SELECT slot FROM records WHERE id=7")[0][0]
    sql(path, "slots", "INSERT INTO free_slots(slot, freed_gen) VALUES (?, 0)", (slot_of_7,))  # a lie
    with SampleStore(path) as s:
        with pytest.raises(StoreError, match=f"slot {slot_of_7}, which record 7 occupies"):
            s.ingest(_x(30), 0, task_id=3)
        assert "free list are occupied" in " ".join(s.verify().problems)
        for r in s.read_many(range(30)):  # nothing was overwritten
            np.testing.assert_array_equal(r.x, _x(r.record_id))
        assert len(s.read_many(range(30))) == 30


def test_truncated_slot_file_is_reported_not_counted(tmp_path):
    path = tmp_path / "s"
    _make(path, "slots")
    stride = slots_index._stride(48)
    with open(str(path / slots_index.SLOTS_NAME), "r+b") as f:
        f.truncate(15 * stride)  # half of slots.bin cut away
    line = _one_error_line(_cli("store", "summary", str(path)))
    assert f"slots.bin holds {15 * stride} bytes" in line and "15 records lie past its end" in line
    out = _cli("store", "verify", str(path), "--repair")
    assert out.returncode == 0, out.stderr
    assert "kept 15 records, lost 15" in out.stdout and "lost train" in out.stdout
    with SampleStore(path, read_only=True) as s:
        assert len(s) == 15 and s.verify().ok


def _readonly_mount(tmp_path):
    """A tmpfs that can be made read-only (real EROFS, unlike chmod for root); skip where not allowed."""
    mnt = tmp_path / "media"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)],
                      stderr=subprocess.DEVNULL).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs CAP_SYS_ADMIN); read-only media not simulated")
    return mnt


def _unmount(mnt):
    if subprocess.run(["umount", str(mnt)], stderr=subprocess.DEVNULL).returncode != 0:
        subprocess.run(["umount", "-l", str(mnt)])
        raise AssertionError(f"a file on {mnt} was left open (the mount stayed busy)")


@pytest.mark.parametrize("backend", BACKENDS)
def test_status_and_reads_work_on_read_only_media(tmp_path, backend):
    mnt = _readonly_mount(tmp_path)
    try:
        _make(mnt / "store", backend)
        if backend == "slots":  # a workspace whose store status reads
            assert _cli("init", str(mnt / "ws")).returncode == 0
            _make(mnt / "ws" / "store", backend)
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        with SampleStore(mnt / "store", read_only=True) as s:
            assert s.verify().ok and len(s.draw({0: 5, 1: 5}, np.random.default_rng(0))) == 10
            with pytest.raises(StoreError, match="read-only"):
                s.ingest(_x(0), 0, task_id=0)
        out = _cli("store", "verify", str(mnt / "store"))
        assert out.returncode == 0 and "checked        30 records" in out.stdout and "ok" in out.stdout, out.stderr
        out = _cli("store", "summary", str(mnt / "store"))
        assert out.returncode == 0 and "records        30 (1440 bytes); next id 30" in out.stdout, out.stderr
        if backend == "slots":
            out = _cli("status", str(mnt / "ws"))
            assert out.returncode == 0, out.stderr
            assert "class 0           8 train      2 held out" in out.stdout, out.stdout
    finally:
        _unmount(mnt)


def test_writing_to_read_only_media_is_one_error_line(tmp_path):
    mnt = _readonly_mount(tmp_path)
    try:
        _make(mnt / "store", "slots")
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        with pytest.raises(StoreError, match="not writable|read-only"):
            SampleStore(mnt / "store")
        config = tmp_path / "c.yaml"
        config.write_text("data: {dataset: digits, classes_per_task: 5, seed: 0}\ntrain: {model: cnn2d, width: 8, "
                          "epochs: 1}\n")
        line = _one_error_line(_cli("run", "--config", str(config), "--out", str(mnt / "run")))
        assert "Read-only file system" in line and str(mnt / "run") in line and "writable storage" in line
    finally:
        _unmount(mnt)


@pytest.mark.parametrize("backend", ["sqlite", "slots"])
def test_malformed_database_is_one_error_line(tmp_path, backend):
    path = tmp_path / "s"
    _make(path, backend)
    db = path / {"sqlite": "samples.sqlite3", "slots": "slots-index.sqlite3"}[backend]
    data = bytearray(db.read_bytes())
    at = data.index(b"created_by")  # a flipped byte inside a text value: not UTF-8 any more
    data[at + 2] = 0xFF
    flipped = tmp_path / "flipped"
    shutil.copytree(str(path), str(flipped))
    (flipped / db.name).write_bytes(bytes(data))
    for args in (["store", "summary", str(flipped)], ["store", "verify", str(flipped)]):
        line = _one_error_line(_cli(*args))
        assert str(flipped) in line and "--repair" in line
    data = bytearray(db.read_bytes())
    at = data.index(b"CREATE TABLE")  # a damaged schema
    data[at:at + 12] = b"CREATE TABXE"
    (flipped / db.name).write_bytes(bytes(data))
    line = _one_error_line(_cli("store", "summary", str(flipped)))
    assert "malformed" in line and str(flipped) in line


def test_status_reports_a_damaged_store_in_one_line(tmp_path):
    assert _cli("init", str(tmp_path / "ws")).returncode == 0
    _make(tmp_path / "ws" / "store", "slots")
    set_info(tmp_path / "ws" / "store", "slots", "dtype", ">f4")
    line = _one_error_line(_cli("status", str(tmp_path / "ws")))
    assert "is damaged" in line and "store verify {} --repair".format(tmp_path / "ws" / "store") in line
