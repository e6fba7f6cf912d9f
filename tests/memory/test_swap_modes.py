"""Deterministic swap mode: the EM each minibatch sees depends on the seed and the step only,
whatever the read latency; async mode stays the timing-driven worker."""
import numpy as np
import pytest
from miro_fakes import make_source

from miro_edge.errors import ConfigError, InputError
from miro_edge.memory.em import EpisodicMemory
from miro_edge.memory.swap import SwapConfig, SwapWorker
from miro_edge.memory.swap_modes import DeterministicSwapWorker, create_swap_worker


def _em(src, capacity=12):
    em = EpisodicMemory(0, (1, 4, 4))
    em.rebalance(capacity, [0, 1, 2], src, np.random.default_rng(0))
    return em


def _trace(latency_s, seed=3, ratio=0.5, lag=2, steps=25):
    """The EM record ids seen before each of ``steps`` minibatches, driven like the trainer
    drives the worker (apply_due before a batch, submit after it)."""
    src = make_source(n_per_class=300, latency_s=latency_s)
    em = _em(src)
    seen = []
    batches = np.random.default_rng(0)
    cfg = SwapConfig(swap_ratio=ratio, lag_steps=lag)
    with create_swap_worker(em, src, cfg, seed=seed) as worker:
        for _ in range(steps):
            worker.apply_due()
            seen.append(em.record_ids.copy())
            worker.submit(np.sort(batches.choice(12, size=6, replace=False)))
    seen.append(em.record_ids.copy())  # after the drain at exit
    return seen, worker.stats()


def test_same_seed_same_swaps_at_every_step_whatever_the_read_latency():
    fast, fast_stats = _trace(0.0)
    slow, slow_stats = _trace(0.004)
    assert len(fast) == len(slow)
    for step, (a, b) in enumerate(zip(fast, slow)):
        assert np.array_equal(a, b), f"EM differs before step {step}"
    assert not np.array_equal(fast[0], fast[-1])  # swaps really happened
    assert fast_stats.swaps_done == slow_stats.swaps_done == 25 * 3
    assert fast_stats.dropped_submissions == 0 and fast_stats.cancelled == 0
    assert slow_stats.wait_s > 0  # a slow store makes the trainer wait rather than change the swaps
    other, _ = _trace(0.0, seed=4)
    assert not np.array_equal(other[-1], fast[-1])  # the seed decides


def test_swaps_land_exactly_lag_steps_after_their_submission():
    src = make_source(n_per_class=300)
    em = _em(src)
    with create_swap_worker(em, src, SwapConfig(swap_ratio=1.0, lag_steps=2), seed=0) as worker:
        before = em.record_ids.copy()
        worker.submit(np.array([0, 1]))
        assert worker.apply_due() == 0 and np.array_equal(em.record_ids, before)  # 1 submission: not yet due
        worker.submit(np.array([2]))
        assert worker.apply_due() == 1  # the first is 2 submissions old now
        changed = np.flatnonzero(em.record_ids != before)
        assert set(changed.tolist()) <= {0, 1} and len(changed) >= 1
    assert worker.stats().swaps_done == 3  # the second one applied at the drain
    x, y = em.gather(range(12))
    for sample, label, rid in zip(x.numpy(), y.tolist(), em.record_ids):
        assert int(sample.flat[0]) // 1000 == label and int(sample.flat[0]) % 1000 == rid


def test_cancel_drops_unapplied_swaps_and_counts_them():
    src = make_source(n_per_class=300)
    em = _em(src)
    before = em.record_ids.copy()
    with pytest.raises(RuntimeError):
        with create_swap_worker(em, src, SwapConfig(swap_ratio=1.0, lag_steps=5), seed=0) as worker:
            for _ in range(3):
                worker.submit(np.arange(12))
            raise RuntimeError("fit failed")
    assert np.array_equal(em.record_ids, before) and worker.stats().cancelled == 3


def test_mode_is_validated_and_each_mode_builds_its_worker():
    src = make_source()
    em = _em(src)
    assert type(create_swap_worker(em, src, SwapConfig(swap_ratio=1.0))) is DeterministicSwapWorker
    assert type(create_swap_worker(em, src, SwapConfig(mode="async", swap_ratio=1.0))) is SwapWorker
    with pytest.raises(ConfigError, match="mode"):
        SwapConfig(mode="sometimes")
    with pytest.raises(ConfigError, match="lag_steps"):
        SwapConfig(lag_steps=0)
    with pytest.raises(InputError, match="create_swap_worker"):
        SwapWorker(em, src, SwapConfig(swap_ratio=1.0))
