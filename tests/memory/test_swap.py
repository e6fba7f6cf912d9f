import threading
import time

import numpy as np
from miro_fakes import make_source

from miro_edge.memory.em import EpisodicMemory
from miro_edge.memory.swap import SwapConfig, SwapWorker


def _em(src, capacity=12):
    em = EpisodicMemory(0, (1, 4, 4))
    em.rebalance(capacity, [0, 1, 2], src, np.random.default_rng(0))
    return em


def test_swaps_replace_with_same_class_and_drain_at_exit():
    src = make_source(n_per_class=200)
    em = _em(src)
    before = em.record_ids.copy()
    with SwapWorker(em, src, SwapConfig(mode="async", swap_ratio=1.0, max_backlog=1000, coalesce=1)) as worker:
        for _ in range(50):
            worker.submit(np.arange(12))
    stats = worker.stats()
    assert stats.backlog == 0 and stats.cancelled == 0
    assert stats.swaps_done == 50 * 12
    assert (em.record_ids != before).any()
    x, y = em.gather(range(12))
    for sample, label, rid in zip(x.numpy(), y.tolist(), em.record_ids):
        assert np.all(sample == sample.flat[0]) and int(sample.flat[0]) // 1000 == label
        assert int(sample.flat[0]) % 1000 == rid  # slot content matches its record id
    assert stats.latency_p95_s >= stats.latency_ewma_s * 0 and stats.bytes_read > 0


def test_ratio_zero_swaps_nothing_and_ratio_fraction_is_respected():
    src = make_source(n_per_class=200)
    em = _em(src)
    with SwapWorker(em, src, SwapConfig(mode="async", swap_ratio=0.0)) as worker:
        assert worker.submit(np.arange(12)) is False
    assert worker.stats().swaps_done == 0
    with SwapWorker(em, src, SwapConfig(mode="async", swap_ratio=0.25, max_backlog=100, coalesce=1)) as worker:
        for _ in range(10):
            worker.submit(np.arange(12))
    assert worker.stats().swaps_done == 10 * 3


def test_readers_never_see_torn_slots_under_concurrent_swaps():
    src = make_source(n_per_class=300, shape=(3, 16, 16))
    em = EpisodicMemory(0, (3, 16, 16))
    em.rebalance(30, [0, 1, 2], src, np.random.default_rng(0))
    torn = []
    done = threading.Event()

    def reader():
        while not done.is_set():
            x, y = em.gather(range(30))
            for sample, label in zip(x.numpy(), y.tolist()):
                if not np.all(sample == sample.flat[0]) or int(sample.flat[0]) // 1000 != label:
                    torn.append(label)

    thread = threading.Thread(target=reader)
    thread.start()
    with SwapWorker(em, src, SwapConfig(mode="async", swap_ratio=1.0, max_backlog=10000, coalesce=1, linger_s=0.0)) as worker:
        for _ in range(300):
            worker.submit(np.arange(30))
    done.set()
    thread.join()
    assert worker.stats().swaps_done > 1000
    assert torn == []


def test_exit_cancels_pending_swaps_when_drain_times_out():
    src = make_source(n_per_class=50, latency_s=0.05)
    em = _em(src)
    worker = SwapWorker(em, src, SwapConfig(mode="async", swap_ratio=1.0, max_backlog=20, drain_timeout_s=0.0))
    with worker:
        for _ in range(20):
            worker.submit(np.arange(12))
    stats = worker.stats()
    assert stats.cancelled > 0 and stats.backlog == 0
    assert stats.swaps_done + stats.cancelled * 12 <= 20 * 12


def test_swap_period_limits_active_epochs():
    src = make_source()
    worker = SwapWorker(_em(src), src, SwapConfig(mode="async", swap_ratio=0.5, swap_period=3))
    assert [worker.active_in_epoch(e) for e in range(6)] == [True, False, False, True, False, False]


def test_coalesced_submissions_swap_each_slot_once_per_read():
    src = make_source(n_per_class=200, latency_s=0.01)
    em = _em(src)
    src.reads = 0
    with SwapWorker(em, src, SwapConfig(mode="async", swap_ratio=1.0, max_backlog=100, coalesce=8)) as worker:
        for _ in range(40):
            worker.submit(np.arange(12))
    stats = worker.stats()
    assert stats.cancelled == 0 and stats.submitted == 40
    # merged batches re-use one read for the same slots: fewer reads than submissions
    assert src.reads < 40 * 12 and stats.swaps_done == src.reads


def test_set_swap_ratio_changes_what_later_submissions_swap_and_rejects_bad_values():
    import pytest

    from miro_edge.errors import InputError
    src = make_source(n_per_class=200)
    em = _em(src)
    with SwapWorker(em, src, SwapConfig(mode="async", swap_ratio=1.0, max_backlog=100, coalesce=1)) as worker:
        worker.set_swap_ratio(0.5)
        for _ in range(10):
            worker.submit(np.arange(12))
        with pytest.raises(InputError, match="swap ratio"):
            worker.set_swap_ratio(1.5)
    assert worker.stats().swaps_done == 10 * 6 and worker.stats().swap_ratio == 0.5


def test_close_during_a_read_leaves_no_phantom_backlog():
    """close() wakes the worker; one that was mid-read exits without taking the wake-up: that
    sentinel must not be reported as a pending swap."""
    src = make_source(n_per_class=50, latency_s=0.2)
    worker = SwapWorker(_em(src), src, SwapConfig(mode="async", swap_ratio=1.0, coalesce=1, drain_timeout_s=0.0))
    with worker:
        worker.submit(np.arange(12))
        time.sleep(0.05)  # the worker is inside the 0.2 s read now
    stats = worker.stats()
    assert stats.backlog == 0, stats
    assert stats.swaps_done + stats.cancelled * 12 <= 12
