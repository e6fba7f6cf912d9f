"""The generated workloads: same arguments, same data; every class multi-modal; bad arguments
named; reachable by name through the registry like any adapter."""
import numpy as np
import pytest

from miro_edge.data import ClassIncrementalStream, load_source
from miro_edge.errors import InputError


@pytest.mark.parametrize("name,shape,classes", [("glyphs", (1, 12, 12), 10), ("chirps", (3, 64), 8)])
def test_generated_workloads_are_reproducible_and_balanced(name, shape, classes):
    a, b = load_source(name), load_source(name)
    assert a.input_shape == shape and a.num_classes == classes and a.x.dtype == np.float32
    assert np.array_equal(a.x, b.x) and np.array_equal(a.y, b.y)
    assert not np.array_equal(a.x, load_source(name, seed=7).x)
    assert np.bincount(a.y).tolist() == [200] * classes
    assert np.isfinite(a.x).all() and a.x.std() > 0.1
    stream = ClassIncrementalStream(a, 2, seed=0)
    assert len(stream) == classes // 2


def test_glyph_classes_are_several_modes_apart():
    """Within a class, samples of different glyphs differ more than samples of one glyph: a
    few stored samples of a class do not stand for all of it."""
    src = load_source("glyphs", noise=0.0, per_class=400)
    x = src.x[src.y == 0].reshape(400, -1)
    dists = np.linalg.norm(x[:, None] - x[None], axis=2)
    nearest = np.sort(dists, axis=1)[:, 1]
    assert np.median(dists) > 2 * np.median(nearest)


def test_bad_arguments_are_named():
    with pytest.raises(InputError, match="glyphs"):
        load_source("glyphs", classes=1)
    with pytest.raises(InputError, match="bad options"):
        load_source("chirps", colour=3)
