"""Typed callbacks for the trainer's named phases.

The loop is ``before_task`` → per epoch (``before_batch`` → step → ``after_batch``)* →
``after_epoch`` → ``after_task``. Replay swapping, energy accounting, idle gating and
checkpointing attach here instead of being sprinkled through the loop.
"""
import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterator, List, Optional, Tuple

import numpy as np
from torch import nn

from miro_edge.train.flops import FlopCache

if TYPE_CHECKING:  # pragma: no cover
    from miro_edge.memory.em import EpisodicMemory
    from miro_edge.memory.sb import StreamBuffer
    from miro_edge.memory.swap import SwapConfig, SwapWorker
    from miro_edge.memory.types import SampleSource


@dataclass
class TaskContext:
    """What every callback can see about the fit in progress."""

    task_id: int
    model: nn.Module
    epochs: int
    em: "EpisodicMemory"
    sb: "StreamBuffer"
    steps_done: int = 0
    sample_passes: int = 0
    stopped: bool = False


@dataclass(frozen=True)
class BatchInfo:
    """One optimisation step: which EM slots it replayed and how many samples it processed."""

    epoch: int
    step: int
    em_slots: np.ndarray
    n_samples: int
    loss: float


class TrainCallback:
    """Base class: override the phases you need; every method is a no-op by default."""

    def before_task(self, ctx: TaskContext) -> None:
        pass

    def before_batch(self, ctx: TaskContext, epoch: int, step: int) -> None:
        pass

    def after_batch(self, ctx: TaskContext, batch: BatchInfo) -> None:
        pass

    def after_epoch(self, ctx: TaskContext, epoch: int, mean_loss: float) -> None:
        pass

    def after_task(self, ctx: TaskContext) -> None:
        pass


class SwapCallback(TrainCallback):
    """Hands each minibatch's EM slots to the swap worker in the epochs it is active and, before
    each minibatch, lets it apply the swaps due at that step (deterministic mode)."""

    def __init__(self, worker: "SwapWorker") -> None:
        self.worker = worker

    def before_batch(self, ctx: TaskContext, epoch: int, step: int) -> None:
        self.worker.apply_due()

    def after_batch(self, ctx: TaskContext, batch: BatchInfo) -> None:
        if len(batch.em_slots) and self.worker.active_in_epoch(batch.epoch):
            self.worker.submit(batch.em_slots)


class WorkCounterCallback(TrainCallback):
    """Reports sample-passes and their training FLOPs (counted once per model,
    :mod:`miro_edge.train.flops`) to an energy hook (``add_work(sample_passes=n, flops=f)``)."""

    def __init__(self, add_work: Callable[..., None]) -> None:
        self.add_work = add_work
        self._flops = FlopCache()

    def after_batch(self, ctx: TaskContext, batch: BatchInfo) -> None:
        shape = getattr(ctx.model, "input_shape", None) or ctx.sb.sample_shape
        per_sample = self._flops.train_flops(ctx.model, shape)
        self.add_work(sample_passes=batch.n_samples, flops=per_sample * batch.n_samples)


@contextlib.contextmanager
def replay_callbacks(em: "EpisodicMemory", store: "SampleSource", swap: "SwapConfig", seed: int,
                     add_work: Callable[..., None]) -> Iterator[Tuple[Optional["SwapWorker"], List[TrainCallback]]]:
    """The callbacks every replay fit needs: training work reported to the energy meter and,
    when the EM holds samples and ``swap.swap_ratio`` > 0, a running swap worker fed by the
    minibatches (drained when the block ends, cancelled if it raises)."""
    from miro_edge.memory.swap_modes import create_swap_worker

    callbacks: List[TrainCallback] = [WorkCounterCallback(add_work)]
    if swap.swap_ratio > 0 and len(em):
        with create_swap_worker(em, store, swap, seed=seed, on_read=lambda n: add_work(bytes_read=n)) as worker:
            yield worker, callbacks + [SwapCallback(worker)]
    else:
        yield None, callbacks
