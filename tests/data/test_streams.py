import numpy as np
import pytest
import torch

from miro_edge.data import ClassIncrementalStream, load_source
from miro_edge.data.adapters import from_torch_dataset
from miro_edge.data.stream import StreamConfig
from miro_edge.errors import ConfigError, InputError


def test_digits_stream_is_deterministic_and_class_incremental():
    source = load_source("digits")
    assert source.input_shape == (1, 8, 8) and 0.0 <= source.x.min() and source.x.max() <= 1.0
    a = ClassIncrementalStream(source, 2, seed=3)
    b = ClassIncrementalStream(source, 2, seed=3)
    c = ClassIncrementalStream(source, 2, seed=4)
    assert a.class_order == b.class_order and a.class_order != c.class_order
    assert len(a) == 5
    seen = set()
    for task in a:
        assert set(np.unique(task.y_train)) == set(task.classes) == set(np.unique(task.y_test))
        assert not seen & set(task.classes)
        seen |= set(task.classes)
        np.testing.assert_array_equal(task.x_train, b.task(task.task_id).x_train)
    assert seen == set(range(10))


def test_basic_motions_windows_never_straddle_the_split():
    source = load_source("basic_motions", window_length=50, window_stride=25)
    assert source.input_shape == (6, 50) and source.groups is not None
    stream = ClassIncrementalStream(source, 2, seed=0)
    assert len(stream) == 2
    test_groups = set(source.groups[stream._test])
    train_groups = set(source.groups[~stream._test])
    assert not test_groups & train_groups


def test_npz_adapter_and_errors(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x=np.zeros((6, 3), np.float32), y=np.array(["a", "b", "c", "a", "b", "c"]))
    source = load_source("npz", path=str(path))
    assert source.class_names == ("a", "b", "c") and source.y.tolist() == [0, 1, 2, 0, 1, 2]
    np.savez(tmp_path / "bad.npz", x=np.zeros((2, 3)))
    with pytest.raises(InputError, match="lacks"):
        load_source("npz", path=str(tmp_path / "bad.npz"))
    with pytest.raises(InputError, match="does not exist"):
        load_source("npz", path=str(tmp_path / "missing.npz"))
    with pytest.raises(ConfigError, match="unknown dataset"):
        load_source("imagenet")


def test_torch_dataset_adapter():
    data = torch.utils.data.TensorDataset(torch.randn(10, 2, 5), torch.arange(10) % 2)
    source = from_torch_dataset(data)
    assert source.x.shape == (10, 2, 5) and source.y.tolist() == [0, 1] * 5


def test_stream_rejects_too_many_tasks():
    with pytest.raises(InputError, match="at most 5 tasks"):
        ClassIncrementalStream(load_source("digits"), 2, num_tasks=6)
    with pytest.raises(ConfigError, match="classes_per_task"):
        StreamConfig(classes_per_task=0)
