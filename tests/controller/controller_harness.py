"""In-process task runs for the controller tests: a ``Learner`` over a real store, the tasks of a
stream ingested with the store's held-out slice, no workspace or CLI around them."""
from typing import Any, Sequence

import numpy as np

from miro_edge.data.holdout import holdout_splits
from miro_edge.events import TaskEvent
from miro_edge.workspace.learner import Learner


class TaskRunner:
    """What a session does per task, minus the workspace: ingest -> learn; records a ``task`` event."""

    def __init__(self, config: Any, store: Any, stream: Any, recorder: Any, meter: Any,
                 callbacks: Sequence[Any] = (), controller: Any = None) -> None:
        self.learner = Learner(config.memory, config.train, store, recorder, meter, stream.input_shape, controller,
                               callbacks)
        self.config, self.store, self.recorder = config, store, recorder
        self.seen: list = []

    @property
    def em(self) -> Any:
        return self.learner.em

    @property
    def sb(self) -> Any:
        return self.learner.sb

    def run_task(self, task: Any) -> Any:
        learner = self.learner
        learner.begin(task.task_id)
        splits = holdout_splits(task.y_train, self.config.memory.val_fraction, learner.rng("holdout"))
        self.store.ingest_batch(task.x_train, task.y_train, task.task_id, splits=splits)
        old = sorted(set(c for t in self.seen for c in t.classes))
        self.seen.append(task)
        mask = np.array([s == "train" for s in splits], dtype=bool)
        num_classes = max(c for t in self.seen for c in t.classes) + 1
        report = learner.learn(task.task_id, task.x_train[mask], task.y_train[mask], old, num_classes)
        self.recorder.write(TaskEvent(  # no evaluation here: accuracies stay empty
            task_id=task.task_id, classes=[int(c) for c in task.classes], accuracies=[],
            average_accuracy=float("nan"), em_size=report.em_size, sb_size=report.sb_size,
            train_seconds=report.fit.seconds, sample_passes=report.fit.sample_passes, swaps_done=report.swaps_done,
            checkpoint="", energy_j=report.energy_j, energy_label=report.energy_label,
            profile_energy_j=report.profile_energy_j, version=None))
        return report
