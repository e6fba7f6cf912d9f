"""SampleStore.draw (the swap worker's batched draw + read) and the batched decode behind reads."""
import sqlite3
from collections import Counter
from functools import partial

import numpy as np
import pytest
from miro_fakes import readers_during

from miro_edge.errors import InputError
from miro_edge.memory.em import EpisodicMemory
from miro_edge.memory.store import SampleStore
from miro_edge.memory.store.backends.base import ReadTxn
from miro_edge.memory.swap import SwapConfig, SwapWorker

BACKENDS = ["sqlite", "lmdb", "slots"]


def _x(i, shape=(4, 3)):
    return np.full(shape, i, dtype=np.float32)


def _fill(s, labels, start=0, task_id=0, splits=None):
    ids = range(start, start + len(labels))
    return s.ingest_batch(np.stack([_x(i) for i in ids]), labels, task_id=task_id, splits=splits)


def _buffer_of(x):
    """The bytes of the whole buffer behind an array (draw's samples share one)."""
    while isinstance(x.base, np.ndarray):
        x = x.base
    return bytes(x.base) if x.base is not None else x.tobytes()


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


def test_draw_gives_distinct_same_class_records_with_their_data(tmp_path, backend):
    with SampleStore(tmp_path / "s", backend=backend) as s:
        _fill(s, [i % 3 for i in range(60)] + [7] * 2)  # labels 0, 1, 2: 20 each; label 7: 2
        rng = np.random.default_rng(0)
        got = s.draw({0: 5, 2: 3, 7: 4, 9: 2, 1: 0}, rng)  # 7 holds 2; 9 holds none
        per_label = Counter(r.label for r in got)
        assert per_label == {0: 5, 2: 3, 7: 2}
        assert len({r.record_id for r in got}) == len(got)
        for r in got:
            assert r.record_id % 3 == r.label or r.label == 7
            np.testing.assert_array_equal(r.x, _x(r.record_id))
            assert r.x.dtype == np.float32 and r.x.shape == (4, 3) and r.x.flags.writeable
            assert r.split == "train" and r.task_id == 0 and r.meta is None
        assert s.stats.records_read == 10 and s.stats.missing_skipped == 0 and s.stats.corrupt_skipped == 0
        assert s.draw({0: 100}, rng) and len(s.draw({0: 100}, rng)) == 20  # a whole class
        assert s.draw({}, rng) == [] and s.draw({5: 3}, rng) == []
        assert s.draw({0: 3}, rng, split="val") == []


def test_draw_arrays_are_private_and_outlive_the_transaction(tmp_path, backend):
    with SampleStore(tmp_path / "s", backend=backend) as s:
        _fill(s, [0] * 30)
        got = s.draw({0: 10}, np.random.default_rng(1))
        got[0].x[...] = -1.0  # writing one sample touches no other sample and not the store
        for r in got[1:]:
            np.testing.assert_array_equal(r.x, _x(r.record_id))
        np.testing.assert_array_equal(s.read(got[0].record_id).x, _x(got[0].record_id))
        _fill(s, [0] * 30, start=30)  # later writes and reads (LMDB reuses map pages) change nothing
        s.read_many(range(60))
        for r in got[1:]:
            np.testing.assert_array_equal(r.x, _x(r.record_id))


def test_draw_is_uniform_in_large_and_small_classes(tmp_path, backend):
    with SampleStore(tmp_path / "s", backend=backend) as s:
        _fill(s, [0] * 40 + [1] * 5)
        rng = np.random.default_rng(2)
        hits = np.zeros(45, int)
        for _ in range(1500):
            got = s.draw({0: 4, 1: 4}, rng)  # class 1: 4 of 5, often repeats -> the exact path
            ids = [r.record_id for r in got]
            assert len(ids) == 8 == len(set(ids))
            hits[ids] += 1
        big, small = hits[:40], hits[40:]
        # class 0: 6000 picks over 40 records, expect 150 each; class 1: 4/5 of 1500 = 1200 each
        assert big.min() > 105 and big.max() < 195
        assert small.min() > 1140 and small.max() < 1260
        firsts = {s.draw({0: 1}, rng)[0].record_id for _ in range(60)}
        assert len(firsts) > 20  # not always the same or the oldest record


def test_draw_reads_val_split_and_metadata(tmp_path, backend):
    with SampleStore(tmp_path / "s", backend=backend) as s:
        s.ingest_batch(np.stack([_x(i) for i in range(6)]), [1] * 6, task_id=4, splits=["train", "val"] * 3,
                       metas=[{"i": i} if i % 2 else None for i in range(6)])
        got = s.draw({1: 10}, np.random.default_rng(3), split="val")
        assert sorted(r.record_id for r in got) == [1, 3, 5]
        for r in got:
            assert r.split == "val" and r.task_id == 4 and r.meta == {"i": r.record_id}
            np.testing.assert_array_equal(r.x, _x(r.record_id))


def test_draw_skips_and_counts_a_corrupt_record(tmp_path):
    path = tmp_path / "s"
    with SampleStore(path, backend="sqlite") as s:
        _fill(s, [0] * 8)
    conn = sqlite3.connect(str(path / "samples.sqlite3"))
    bad = bytearray(_x(5).tobytes())
    bad[7] ^= 0x40  # what a bit flip in the payload does
    conn.execute("UPDATE records SET payload=? WHERE id=5", (bytes(bad),))
    conn.execute("UPDATE records SET payload=? WHERE id=6", (b"short",))  # a damaged length
    conn.commit()
    conn.close()
    with SampleStore(path) as s:
        got = s.draw({0: 8}, np.random.default_rng(0))
        assert sorted(r.record_id for r in got) == [0, 1, 2, 3, 4, 7]
        for r in got:
            np.testing.assert_array_equal(r.x, _x(r.record_id))
        assert bytes(bad) not in _buffer_of(got[0].x)  # the failed bytes are not handed out either
        assert s.stats.corrupt_skipped == 2 and s.stats.records_read == 6
        assert [r.record_id for r in s.read_many([4, 5, 6, 7])] == [4, 7]
        assert sorted(s.verify().corrupt_ids) == [5, 6]


def test_draw_and_read_many_validate_their_input(tmp_path):
    with SampleStore(tmp_path / "s", backend="sqlite") as s:
        _fill(s, [0] * 4)
        rng = np.random.default_rng(0)
        with pytest.raises(InputError, match="label"):
            s.draw({"cat": 1}, rng)
        with pytest.raises(InputError, match="count"):
            s.draw({0: -1}, rng)
        with pytest.raises(InputError, match="count"):
            s.draw({0: 1.5}, rng)
        with pytest.raises(InputError, match="split"):
            s.draw({0: 1}, rng, split="test")
        assert len(s.draw({np.int64(0): np.int32(2)}, rng)) == 2  # numpy integers are fine
        assert [r.record_id for r in s.read_many(np.array([3, 1], dtype=np.int64))] == [3, 1]
        assert [r.record_id for r in s.read_many(np.array([2], dtype=np.uint32))] == [2]
        for bad in (["1"], [True], [1.0], [1 << 64]):
            with pytest.raises(InputError, match="record id"):
                s.read_many(bad)


def test_backend_fraction_query_matches_the_generic_one(tmp_path, backend):
    """A backend's own records_at_fractions picks the same rows as the interface's default."""
    with SampleStore(tmp_path / "s", backend=backend) as s:
        _fill(s, [i % 4 for i in range(50)])
        rng = np.random.default_rng(4)
        picks = [(int(lab), float(u)) for lab, u in zip(rng.integers(0, 6, 40), rng.random(40))]
        picks += [(0, 0.0), (1, 0.999999999999)]
        with s._backend.read() as txn:
            own = [r.record_id for r in txn.records_at_fractions(0, picks)]
            generic = [r.record_id for r in ReadTxn.records_at_fractions(txn, 0, picks)]
        assert sorted(own) == sorted(generic)
        assert len(own) == sum(1 for lab, _ in picks if lab < 4)  # labels 4 and 5 hold nothing


def test_draw_during_evicting_writes(tmp_path, backend):
    with SampleStore(tmp_path / "s", backend=backend, quota_samples=80) as s:
        _fill(s, [i % 4 for i in range(80)])

        def check(rng):
            got = s.draw({0: 3, 1: 2, 3: 4}, rng)
            assert Counter(r.label for r in got) == {0: 3, 1: 2, 3: 4}
            assert len({r.record_id for r in got}) == len(got)
            for r in got:
                assert r.record_id % 4 == r.label and r.x[0, 0] == r.record_id

        def write():
            for i in range(80, 240, 8):
                _fill(s, [j % 4 for j in range(i, i + 8)], start=i)

        errors = readers_during([partial(check, np.random.default_rng(seed)) for seed in (1, 2)], write)
        assert not errors, errors
        assert s.stats.corrupt_skipped == 0 and s.stats.missing_skipped == 0
        assert s.verify().ok


def test_swap_worker_refills_em_slots_from_a_real_store(tmp_path, backend):
    with SampleStore(tmp_path / "s", backend=backend) as s:
        labels = [i % 3 for i in range(300)]
        s.ingest_batch(np.stack([np.full((1, 4, 4), i, np.float32) for i in range(300)]), labels, task_id=0)
        em = EpisodicMemory(0, (1, 4, 4))
        em.rebalance(12, [0, 1, 2], s, np.random.default_rng(0))
        before = em.record_ids.copy()
        read_before = s.stats.records_read
        with SwapWorker(em, s, SwapConfig(mode="async", swap_ratio=1.0, max_backlog=100, coalesce=4)) as worker:
            for _ in range(20):
                worker.submit(np.arange(12))
        stats = worker.stats()
        # every record the worker drew went into a slot; 20 submissions of 12 slots, coalesced by <= 4
        assert stats.swaps_done == s.stats.records_read - read_before and stats.swaps_done >= 12 * 5
        assert (em.record_ids != before).any()
        x, y = em.gather(range(12))
        for sample, label, rid in zip(x.numpy(), y.tolist(), em.record_ids):
            assert np.all(sample == rid) and rid % 3 == label  # each slot holds its record, same class


def test_draws_that_keep_repeating_ordinals_read_each_record_once(tmp_path, backend):
    """A swap worker asking for most of a small class repeats ordinals in almost every draw; after
    the first such draw the store settles the next ones in one snapshot instead of reading every
    record twice (once optimistically, once exactly)."""
    with SampleStore(tmp_path / "s", backend=backend) as s:
        _fill(s, [0] * 12 + [1] * 12)
        calls = Counter()
        real_read = s._backend.read

        def counting_read(snapshot=True):
            calls["snapshot" if snapshot else "plain"] += 1
            return real_read(snapshot)

        s._backend.read = counting_read
        rng = np.random.default_rng(0)
        for _ in range(20):
            got = s.draw({0: 10, 1: 10}, rng)
            assert Counter(r.label for r in got) == {0: 10, 1: 10}
            assert len({r.record_id for r in got}) == 20
        # 20 draws: the first is tried plainly, then settled; every later one goes straight to a snapshot
        assert calls["plain"] + calls["snapshot"] <= 21, calls
