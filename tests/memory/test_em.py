import numpy as np
import pytest
from miro_fakes import make_source

from miro_edge.errors import InputError
from miro_edge.memory.em import EpisodicMemory, balanced_quota


def label_of(x):
    return int(x.flatten()[0]) // 1000


def test_balanced_quota_spreads_remainder_and_respects_availability():
    assert balanced_quota(10, [0, 1, 2]) == {0: 4, 1: 3, 2: 3}
    assert balanced_quota(10, [0, 1, 2], {0: 1, 1: 100, 2: 100}) == {0: 1, 1: 5, 2: 4}
    assert balanced_quota(0, [0, 1]) == {0: 0, 1: 0}


def test_rebalance_fills_class_balanced_from_store_random_not_oldest():
    src = make_source(n_per_class=50)
    em = EpisodicMemory(0, (1, 4, 4))
    report = em.rebalance(12, [0, 1, 2], src, np.random.default_rng(1))
    assert report.refilled == 12 and report.evicted == 0
    assert em.class_counts() == {0: 4, 1: 4, 2: 4}
    x, y = em.gather(range(12))
    assert [label_of(v) for v in x.numpy()] == y.tolist()
    # a random draw: not simply the first 4 records of each class
    first = {0: set(range(0, 4)), 1: set(range(50, 54)), 2: set(range(100, 104))}
    assert any(set(em.record_ids[em.slots_of(c)]) != first[c] for c in range(3))


def test_shrink_evicts_class_balanced_and_grow_refills():
    src = make_source(n_per_class=30)
    em = EpisodicMemory(0, (1, 4, 4))
    em.rebalance(12, [0, 1, 2], src, np.random.default_rng(0))
    shrink = em.resize(6, src, np.random.default_rng(0))
    assert shrink.evicted == 6 and shrink.refilled == 0 and em.class_counts() == {0: 2, 1: 2, 2: 2}
    grow = em.resize(9, src, np.random.default_rng(0))
    assert grow.refilled == 3 and em.class_counts() == {0: 3, 1: 3, 2: 3}
    assert len(set(em.record_ids[:9])) == 9  # refill does not duplicate held samples


def test_new_class_takes_share_from_old_ones():
    src = make_source(n_per_class=30, classes=(0, 1, 2, 3))
    em = EpisodicMemory(0, (1, 4, 4))
    em.rebalance(8, [0, 1], src, np.random.default_rng(0))
    report = em.rebalance(8, [0, 1, 2, 3], src, np.random.default_rng(0))
    assert em.class_counts() == {0: 2, 1: 2, 2: 2, 3: 2}
    assert report.evicted == 4 and report.refilled == 4


def test_write_slots_refuses_other_class_and_bad_capacity():
    src = make_source()
    em = EpisodicMemory(0, (1, 4, 4))
    em.rebalance(3, [0, 1, 2], src, np.random.default_rng(0))
    slot0_label = int(em.labels[0])
    other = (slot0_label + 1) % 3
    assert em.write_slots([0], np.full((1, 1, 4, 4), other * 1000.0, np.float32), [other], [5]) == 0
    assert int(em.labels[0]) == slot0_label
    with pytest.raises(InputError):
        EpisodicMemory(-1, (1,))
