import numpy as np
import pytest

from miro_edge.errors import InputError
from miro_edge.memory.sb import StreamBuffer


def test_reservoir_keeps_uniform_sample_of_long_stream():
    counts = np.zeros(1000)
    for seed in range(200):
        sb = StreamBuffer(50, (1,), np.random.default_rng(seed))
        xs = np.arange(1000, dtype=np.float32)[:, None]
        sb.add(xs, np.zeros(1000, dtype=np.int64))
        assert len(sb) == 50 and sb.seen == 1000
        counts[sb.tensors()[0].numpy().astype(int).ravel()] += 1
    # early and late arrivals are kept about equally often (not just the first 50)
    assert abs(counts[:500].sum() - counts[500:].sum()) < 0.15 * counts.sum()


def test_resize_and_shape_check():
    sb = StreamBuffer(10, (2,))
    sb.add(np.ones((8, 2), np.float32), np.arange(8))
    assert sb.resize(5) == 3 and len(sb) == 5
    with pytest.raises(InputError, match=r"\(2,\) expected"):
        sb.add(np.ones((1, 3), np.float32), np.zeros(1))
