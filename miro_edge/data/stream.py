"""Class-incremental task streams over any ``ArraySource``.

Class order is a seeded permutation; classes are relabelled 0..K-1 in order of arrival so the
classifier head grows by appending outputs. Each task carries its training samples (what the
device will see and ingest) and a test split kept apart for reporting only.
"""
from dataclasses import dataclass
from typing import Iterator, Optional, Tuple

import numpy as np

from miro_edge.config import field, require
from miro_edge.data.sources import ArraySource
from miro_edge.errors import InputError


@dataclass(frozen=True)
class StreamConfig:
    dataset: str = field("digits", help="registered dataset adapter (miro_edge.data.sources.DATASETS)")
    classes_per_task: int = field(2, help="new classes arriving with each task")
    num_tasks: Optional[int] = field(None, help="tasks to run; default: as many as the classes allow")
    test_fraction: float = field(0.3, help="fraction of each class (or of its groups) held out for reporting")
    seed: int = field(0, help="seed of the class order and the train/test split")

    def __post_init__(self) -> None:
        require(self.classes_per_task >= 1, "classes_per_task", "must be >= 1")
        require(self.num_tasks is None or self.num_tasks >= 1, "num_tasks", "must be >= 1")
        require(0.0 < self.test_fraction < 1.0, "test_fraction", "must be in (0, 1)")


@dataclass(frozen=True)
class Task:
    """One step of the stream: new classes with their training and test samples."""

    task_id: int
    classes: Tuple[int, ...]
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


class ClassIncrementalStream:
    """Split a source into tasks of ``classes_per_task`` new classes each, deterministically."""

    def __init__(self, source: ArraySource, classes_per_task: int, num_tasks: Optional[int] = None,
                 test_fraction: float = 0.3, seed: int = 0) -> None:
        labels = np.unique(source.y)
        max_tasks = len(labels) // classes_per_task
        if max_tasks < 1:
            raise InputError(f"source {source.name} has {len(labels)} classes, fewer than classes_per_task={classes_per_task}")
        if num_tasks is not None and num_tasks > max_tasks:
            raise InputError(f"source {source.name} has {len(labels)} classes: at most {max_tasks} tasks of {classes_per_task} classes, asked for {num_tasks}")
        self.source = source
        self.classes_per_task = classes_per_task
        self.num_tasks = num_tasks or max_tasks
        rng = np.random.default_rng(seed)
        self.class_order = [int(c) for c in rng.permutation(labels)]
        self.original_to_id = {orig: new for new, orig in enumerate(self.class_order)}
        y = np.array([self.original_to_id[int(v)] for v in source.y], dtype=np.int64)
        test_mask = _split_mask(y, source.groups, test_fraction, rng)
        self._y = y
        self._test = test_mask

    @classmethod
    def from_config(cls, source: ArraySource, cfg: StreamConfig) -> "ClassIncrementalStream":
        return cls(source, cfg.classes_per_task, cfg.num_tasks, cfg.test_fraction, cfg.seed)

    @property
    def input_shape(self) -> Tuple[int, ...]:
        return self.source.input_shape

    @property
    def num_classes(self) -> int:
        return self.num_tasks * self.classes_per_task

    def task(self, task_id: int) -> Task:
        if not 0 <= task_id < self.num_tasks:
            raise InputError(f"task {task_id} out of range 0..{self.num_tasks - 1}")
        k = self.classes_per_task
        classes = tuple(range(task_id * k, (task_id + 1) * k))
        in_task = np.isin(self._y, classes)
        train, test = in_task & ~self._test, in_task & self._test
        return Task(task_id, classes, self.source.x[train], self._y[train], self.source.x[test], self._y[test])

    def __iter__(self) -> Iterator[Task]:
        for t in range(self.num_tasks):
            yield self.task(t)

    def __len__(self) -> int:
        return self.num_tasks


def _split_mask(y: np.ndarray, groups: Optional[np.ndarray], fraction: float,
                rng: np.random.Generator) -> np.ndarray:
    """Per class, mark ``fraction`` of samples (or of whole groups) as test."""
    mask = np.zeros(len(y), dtype=bool)
    for label in np.unique(y):
        idx = np.flatnonzero(y == label)
        units = np.unique(groups[idx]) if groups is not None else idx
        n_test = max(1, int(round(fraction * len(units))))
        chosen = rng.choice(units, size=min(n_test, len(units) - 1) if len(units) > 1 else 0, replace=False)
        if groups is not None:
            mask[idx[np.isin(groups[idx], chosen)]] = True
        else:
            mask[chosen] = True
    return mask

