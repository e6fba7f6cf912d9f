"""SampleStore behaviour on both backends: layout, validation, draws, quotas, persistence."""
import os
import stat
import subprocess
import sys
from functools import partial

import numpy as np
import pytest
from miro_fakes import readers_during

from miro_edge.errors import ConfigError, InputError, StoreError, StoreFullError
from miro_edge.memory import store as store_mod
from miro_edge.memory.store import (
    RecordNotFoundError,
    SampleStore,
    StoreConfig,
    StoreVersionError,
    distinct_ints,
)
from miro_edge.memory.store.backends import slots as slots_mod
from miro_edge.memory.store.integrity import seal
from miro_edge.memory.types import SampleSource

BACKENDS = ["sqlite", "lmdb", "slots"]


def _x(i, shape=(4, 3), dtype=np.float32):
    return np.full(shape, i, dtype=dtype)


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


def test_roundtrip_ids_are_arrival_indices(tmp_path, backend):
    with SampleStore(tmp_path / "s", backend=backend) as s:
        assert s.ingest(_x(0), 3, task_id=0) == 0
        ids = s.ingest_batch(np.stack([_x(i) for i in range(1, 6)]), [1, 1, 2, 2, 3], task_id=1,
                             splits=["train", "val", "train", "train", "val"],
                             metas=[{"src": "cam"}, None, {"k": [1, 2]}, None, None])
        assert ids == [1, 2, 3, 4, 5]
        assert len(s) == 6
        assert s.class_counts() == {1: 1, 2: 2, 3: 1}
        assert s.class_counts("val") == {1: 1, 3: 1}
        assert s.labels() == [1, 2, 3]
        r = s.read(3)
        assert r.record_id == 3 and r.label == 2 and r.task_id == 1 and r.split == "train"
        assert r.meta == {"k": [1, 2]}
        np.testing.assert_array_equal(r.x, _x(3))
        assert r.x.dtype == np.float32 and r.x.flags.writeable
        got = s.read_many([5, 0, 2])
        assert [g.record_id for g in got] == [5, 0, 2]
        assert got[0].split == "val" and got[1].meta is None
        assert s.sample_shape == (4, 3) and s.dtype == np.float32
        assert s.data_bytes == 6 * 48 + len(b'{"src":"cam"}') + len(b'{"k":[1,2]}')
        assert s.size_bytes() > s.data_bytes
        with pytest.raises(RecordNotFoundError, match="record 99"):
            s.read(99)
        for name in ("sample_shape", "dtype"):  # the SampleSource protocol
            assert name in SampleSource.__annotations__ and hasattr(s, name)
        for name in ("class_counts", "sample_ids", "read_many"):
            assert hasattr(SampleSource, name) and callable(getattr(s, name))


def test_reopen_keeps_layout_counts_and_next_id(tmp_path, backend):
    path = tmp_path / "s"
    with SampleStore(path, backend=backend) as s:
        s.ingest_batch(np.stack([_x(i) for i in range(10)]), [i % 3 for i in range(10)], task_id=0)
    with SampleStore(path, create=False) as s:  # backend detected from the files
        assert s.backend_name == backend
        assert s.class_counts() == {0: 4, 1: 3, 2: 3}
        assert s.sample_shape == (4, 3) and s.dtype == np.float32
        assert s.ingest(_x(10), 0, task_id=1) == 10
        with pytest.raises(InputError, match=r"\(4, 3\)"):
            s.ingest(np.zeros((3, 4), np.float32), 0, task_id=1)
    with pytest.raises(InputError, match="holds samples of shape"):
        SampleStore(path, sample_shape=(2, 2), dtype=np.float32)


def test_wrong_shape_or_dtype_stores_nothing(tmp_path, backend):
    with SampleStore(tmp_path / "s", backend=backend, sample_shape=(4, 3), dtype="float32") as s:
        with pytest.raises(InputError) as err:
            s.ingest(np.zeros((4, 3), np.float64), 1, task_id=0)
        assert "float64" in str(err.value) and "float32" in str(err.value)
        batch = [_x(0), _x(1), np.zeros((4, 4), np.float32)]
        with pytest.raises(InputError, match=r"sample 2 have shape \(4, 4\)"):
            s.ingest_batch(batch, [0, 1, 2], task_id=0)
        with pytest.raises(InputError, match=r"shape \(3, 4\)"):
            s.ingest_batch(np.zeros((2, 3, 4), np.float32), [0, 1], task_id=0)
        assert len(s) == 0
        assert s.ingest(_x(0), 1, task_id=0) == 0  # no id was consumed by the failures


@pytest.mark.parametrize("bad", ["cat", 1.5, True, None, np.float32(2.0), np.bool_(True)])
def test_non_integer_labels_are_refused(tmp_path, bad):
    with SampleStore(tmp_path / "s", backend="sqlite") as s:
        with pytest.raises(InputError, match="label of sample 1 must be an integer"):
            s.ingest_batch([_x(0), _x(1)], [0, bad], task_id=0)
        assert len(s) == 0
        assert s.ingest(_x(0), np.int16(4), task_id=np.int64(2)) == 0  # numpy integers are fine
        assert s.read(0).label == 4 and type(s.read(0).label) is int


def test_other_bad_inputs(tmp_path):
    with SampleStore(tmp_path / "s", backend="sqlite") as s:
        with pytest.raises(InputError, match="split"):
            s.ingest(_x(0), 1, task_id=0, split="test")
        with pytest.raises(InputError, match="task_id"):
            s.ingest(_x(0), 1, task_id=-1)
        with pytest.raises(InputError, match="JSON"):
            s.ingest(_x(0), 1, task_id=0, meta={"f": object()})
        with pytest.raises(InputError, match="2 samples but 1 labels"):
            s.ingest_batch([_x(0), _x(1)], [1], task_id=0)
        with pytest.raises(InputError, match="numeric"):
            s.ingest(np.array(["a", "b"]), 1, task_id=0)
        assert len(s) == 0


def test_nonfinite_refused_unless_allowed(tmp_path):
    bad = _x(1)
    bad[2, 1] = np.nan
    with SampleStore(tmp_path / "a", backend="sqlite") as s:
        with pytest.raises(InputError, match="sample 1 contains NaN or inf.*allow_nonfinite"):
            s.ingest_batch(np.stack([_x(0), bad]), [0, 0], task_id=0)
        assert len(s) == 0
    with SampleStore(tmp_path / "b", backend="sqlite", allow_nonfinite=True) as s:
        s.ingest(bad, 0, task_id=0)
        assert np.isnan(s.read(0).x[2, 1])


def test_sample_ids_uniform_distinct_and_per_class(tmp_path, backend):
    with SampleStore(tmp_path / "s", backend=backend) as s:
        labels = [i % 2 for i in range(40)]
        s.ingest_batch(np.stack([_x(i) for i in range(40)]), labels, task_id=0)
        rng = np.random.default_rng(0)
        hits = np.zeros(40, int)
        for _ in range(2000):
            ids = s.sample_ids(1, 3, rng)
            assert len(set(ids)) == 3 and all(i % 2 == 1 for i in ids)
            hits[ids] += 1
        odd = hits[1::2]
        assert hits[0::2].sum() == 0
        # 6000 draws over 20 ids: expected 300 each; a uniform draw stays well inside +-25%
        assert odd.min() > 225 and odd.max() < 375
        assert sorted(s.sample_ids(0, 100, rng)) == list(range(0, 40, 2))
        assert s.sample_ids(7, 5, rng) == [] and s.sample_ids(0, 0, rng) == []
        assert s.sample_ids(0, 5, rng, split="val") == []
        firsts = [s.sample_ids(0, 1, rng)[0] for _ in range(50)]
        assert len(set(firsts)) > 10  # not always the oldest record


def test_distinct_ints_is_a_uniform_subset():
    rng = np.random.default_rng(1)
    for count, k in [(10, 10), (10, 3), (1000, 5), (7, 1)]:
        v = distinct_ints(rng, count, k)
        assert len(v) == k == len(set(v)) and all(0 <= x < count for x in v)
    hits = np.zeros(50, int)
    for _ in range(5000):
        hits[distinct_ints(rng, 50, 4)] += 1
    assert hits.min() > 300 and hits.max() < 500  # expected 400 each


def test_quota_samples_evicts_class_balanced_random(tmp_path, backend):
    with SampleStore(tmp_path / "s", backend=backend, quota_samples=60, seed=3) as s:
        # class 0 floods the store first, then classes 1 and 2 arrive
        s.ingest_batch(np.stack([_x(i) for i in range(50)]), [0] * 50, task_id=0)
        ids = s.ingest_batch(np.stack([_x(i) for i in range(50, 70)]), [1] * 10 + [2] * 10, task_id=1)
        assert len(s) == 60 and s.class_counts() == {0: 40, 1: 10, 2: 10}
        assert all(r.record_id in ids for r in s.read_many(ids))  # the new batch is never evicted
        s.ingest_batch(np.stack([_x(i) for i in range(70, 100)]), [3] * 30, task_id=2)
        counts = s.class_counts()
        assert sum(counts.values()) == 60 and counts[3] == 30
        assert counts[0] == 10 and counts[1] == counts[2] == 10  # evicted from the largest class
        survivors = s.sample_ids(0, 100, np.random.default_rng(0))
        assert len(survivors) == 10 and max(survivors) - min(survivors) > 10  # random, not oldest-first
        assert s.stats.evicted == 40
        assert s.verify().ok
        assert len(s.read_many(range(100))) == 60


def test_quota_bytes_and_oversized_batch(tmp_path, backend):
    with SampleStore(tmp_path / "s", backend=backend, quota_bytes=48 * 20) as s:
        for i in range(0, 40, 4):
            s.ingest_batch(np.stack([_x(j) for j in range(i, i + 4)]), [i % 3] * 4, task_id=0)
        assert s.data_bytes <= 48 * 20 and len(s) == 20
        assert s.verify().ok
        with pytest.raises(StoreFullError, match="quota_bytes"):
            s.ingest_batch(np.zeros((21, 4, 3), np.float32), [0] * 21, task_id=0)
        assert len(s) == 20


def test_delete_keeps_draws_dense(tmp_path, backend):
    with SampleStore(tmp_path / "s", backend=backend) as s:
        s.ingest_batch(np.stack([_x(i) for i in range(30)]), [0] * 30, task_id=0)
        assert s.delete([0, 5, 29, 29, 1000]) == 3
        assert s.class_counts() == {0: 27}
        assert s.verify().ok
        drawn = set(s.sample_ids(0, 27, np.random.default_rng(0)))
        assert drawn == set(range(30)) - {0, 5, 29}


def test_version_and_foreign_database_refused(tmp_path, backend):
    path = tmp_path / "s"
    with SampleStore(path, backend=backend) as s:
        s.ingest(_x(0), 0, task_id=0)
        with s._backend.write() as txn:  # what a future miro_edge would have written (sealed)
            txn.put_info({"format_version": "2"})
            seal(txn)
    with pytest.raises(StoreVersionError, match="format version 2.*upgrade miro_edge"):
        SampleStore(path)
    foreign = tmp_path / "f"
    with SampleStore(foreign, backend=backend) as s:
        with s._backend.write() as txn:  # a database of another program, consistent in itself
            txn.put_info({"format_version": "x"})
            seal(txn)
    with pytest.raises(StoreError, match="not a miro_edge sample store"):
        SampleStore(foreign)


def test_files_private_and_durability_settings(tmp_path, backend):
    path = tmp_path / "s"
    with SampleStore(path, backend=backend) as s:
        s.ingest(_x(0), 0, task_id=0)
        assert stat.S_IMODE(os.stat(str(path)).st_mode) == 0o700
        names = sorted(os.listdir(str(path)))
        assert len(names) >= 2  # sqlite: db, -wal, -shm; lmdb: data.mdb, lock.mdb
        for name in names:
            assert stat.S_IMODE(os.stat(str(path / name)).st_mode) == 0o600, name
        settings = s.settings()
    if backend in ("sqlite", "slots"):
        assert settings["journal_mode"] == "wal" and settings["synchronous"] == "FULL"
        if backend == "slots":
            assert settings["payload_synced_before_commit"] is True and settings["payload_sync"] == "fdatasync"
    else:
        assert settings["sync"] is True and settings["metasync"] is True and settings["map_async"] is False


def test_open_errors(tmp_path):
    with pytest.raises(StoreError, match="no sample store"):
        SampleStore(tmp_path / "missing", create=False)
    with SampleStore(tmp_path / "s", backend="sqlite") as s:
        s.ingest(_x(0), 0, task_id=0)
    with pytest.raises(ConfigError, match="uses backend 'sqlite'"):
        SampleStore(tmp_path / "s", backend="lmdb")
    with pytest.raises(ConfigError, match="unknown store backend"):
        SampleStore(tmp_path / "t", backend="rocksdb")
    with pytest.raises(ConfigError, match="unknown sqlite store option"):
        SampleStore(tmp_path / "u", backend="sqlite", backend_options={"cache_mb": 1})
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="not a directory"):
        SampleStore(tmp_path / "file")
    s = SampleStore(tmp_path / "s")
    s.close()
    with pytest.raises(StoreError, match="closed"):
        s.read(0)


def test_config_and_default_backend(tmp_path):
    with pytest.raises(ConfigError, match="backend"):
        StoreConfig(backend="nope")
    with pytest.raises(ConfigError, match="quota_samples"):
        StoreConfig(quota_samples=0)
    with SampleStore.from_config(tmp_path / "a", StoreConfig(quota_samples=5)) as s:
        assert s.backend_name == store_mod.DEFAULT_BACKEND == "slots" and s.quota_samples == 5
    with SampleStore(tmp_path / "old", backend="sqlite") as s:
        s.ingest(_x(0), 0, task_id=0)
    with SampleStore.from_config(tmp_path / "old", StoreConfig()) as s:  # an existing store keeps its backend
        assert s.backend_name == "sqlite" and len(s) == 1
    with SampleStore.from_config(tmp_path / "b", StoreConfig(backend="lmdb", quota_bytes=100)) as s:
        assert s.backend_name == "lmdb" and s.quota_bytes == 100


def test_import_does_not_load_lmdb():
    code = "import sys, miro_edge.memory.store; assert 'lmdb' not in sys.modules, 'lmdb imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_concurrent_readers_and_evicting_writer(tmp_path, backend):
    with SampleStore(tmp_path / "s", backend=backend, quota_samples=100) as s:
        s.ingest_batch(np.stack([_x(i) for i in range(100)]), [i % 4 for i in range(100)], task_id=0)

        def check(rng):
            for lab in range(4):
                ids = s.sample_ids(lab, 5, rng)
                assert len(set(ids)) == len(ids)
                for r in s.read_many(ids):
                    assert r.label == lab and r.x[0, 0] == r.x[3, 2]

        def write():
            for i in range(100, 300, 8):
                s.ingest_batch(np.stack([_x(j) for j in range(i, i + 8)]), [j % 4 for j in range(i, i + 8)],
                               task_id=1)

        errors = readers_during([partial(check, np.random.default_rng(seed)) for seed in (1, 2)], write)
        assert not errors, errors
        assert s.stats.corrupt_skipped == 0
        assert len(s) == 100 and s.verify().ok


@pytest.mark.parametrize("backend", ["sqlite", "slots"])  # LMDB opens an environment once per process
def test_an_instance_opened_empty_adopts_the_layout_another_instance_gives(tmp_path, backend):
    """Two instances open an empty store (e.g. a reader thread's and the ingesting app's); the first
    ingest of one fixes the layout: the other reads those records (never counted as corrupt), ingests
    samples of the same layout, and refuses others naming expected vs got, storing nothing."""
    path = tmp_path / "s"
    with SampleStore(path, backend=backend) as a, SampleStore(path, backend=backend) as b:
        ids = a.ingest_batch(np.ones((6, 2, 3), np.float32), [0, 0, 0, 1, 1, 1], task_id=0)
        got = b.draw({0: 3, 1: 3}, np.random.default_rng(0))
        assert sorted(s.record_id for s in got) == ids and b.stats.corrupt_skipped == 0
        assert b.sample_shape == (2, 3) and b.dtype == np.float32
        assert b.ingest(np.zeros((2, 3), np.float32), 2, task_id=1) == 6
        with pytest.raises(InputError, match=r"\(2, 3\)"):
            b.ingest(np.zeros((3, 3), np.float32), 2, task_id=1)
        assert len(a) == 7 and len(b) == 7


def _evict_inside_the_read(s, method, writes):
    """Wrap the read transaction's ``method`` so that, the first time it is called, an evicting
    ingest commits first: the exact interleaving a reader thread meets under load."""
    backend = s._backend
    real_read = backend.read
    state = {"left": writes, "next": 10_000}

    def read(snapshot=True):
        ctx = real_read(snapshot=snapshot)
        txn = ctx.__enter__()
        real = getattr(txn, method)

        def interleaved(*args, **kwargs):
            while state["left"] > 0:
                state["left"] -= 1
                i = state["next"]
                state["next"] += 8
                s.ingest_batch(np.stack([_x(j) for j in range(i, i + 8)]), [0] * 8, task_id=1)
            return real(*args, **kwargs)

        setattr(txn, method, interleaved)

        class _Ctx:
            def __enter__(self):
                return txn

            def __exit__(self, *exc):
                try:
                    delattr(txn, method)
                except AttributeError:
                    pass
                return ctx.__exit__(*exc)
        return _Ctx()

    backend.read = read


@pytest.mark.parametrize("method,call", [
    ("ids_at", lambda s, rng: s.sample_ids(0, 40, rng)),
    ("records_at_fractions", lambda s, rng: [r.record_id for r in s.draw({0: 40}, rng)]),
])
def test_a_read_never_mixes_two_states_of_the_store(tmp_path, backend, method, call):
    """An eviction that commits between a read's start and its record probes (forced here, met by
    reader threads on a loaded machine): the read sees one state of the store, before or after,
    never a mix, so no record id comes back twice and every id is of the asked class."""
    with SampleStore(tmp_path / "s", backend=backend, quota_samples=40) as s:
        s.ingest_batch(np.stack([_x(i) for i in range(40)]), [0] * 40, task_id=0)
        _evict_inside_the_read(s, method, writes=3)
        ids = call(s, np.random.default_rng(0))
        assert len(ids) == 40 and len(set(ids)) == 40, sorted(ids)
        assert all(r.label == 0 for r in s.read_many(ids))


@pytest.mark.stress
def test_stress_readers_and_evicting_writer_never_see_a_duplicate(tmp_path, backend, monkeypatch):
    """Readers asking for whole small classes while a writer evicts with every one-sample commit.
    Thread switches every microsecond and no payload sync (commits back to back) make the race of
    a stale index entry resolved against a newer state show within a second, even on an idle
    machine; the assertions are the store's promises, whatever the timing."""
    monkeypatch.setattr(slots_mod, "_datasync", lambda fd: None)
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        with SampleStore(tmp_path / "s", backend=backend, quota_samples=64) as s:
            s.ingest_batch(np.stack([_x(i) for i in range(64)]), [i % 2 for i in range(64)], task_id=0)

            def check(rng):
                for lab in range(2):
                    ids = s.sample_ids(lab, 32, rng)
                    assert len(set(ids)) == len(ids), ("sample_ids", sorted(ids))
                    drawn = [r.record_id for r in s.draw({lab: 32}, rng)]
                    assert len(set(drawn)) == len(drawn), ("draw", sorted(drawn))
                    assert all(r.label == lab for r in s.read_many(ids))
                    assert sum(s.class_counts().values()) <= 64

            def write():
                for i in range(64, 64 + 2000):
                    s.ingest(_x(i), i % 2, task_id=1)

            errors = readers_during([partial(check, np.random.default_rng(seed)) for seed in range(4)], write)
            assert not errors, errors[:3]
            assert len(s) == 64 and s.verify().ok
    finally:
        sys.setswitchinterval(old)
