"""Incremental trainer: experience replay over EM ∪ SB with a growing classifier head."""
import logging
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from miro_edge.config import field, require
from miro_edge.memory.em import EpisodicMemory
from miro_edge.memory.sb import StreamBuffer
from miro_edge.model.architectures import IncrementalClassifier
from miro_edge.train.callbacks import BatchInfo, TaskContext, TrainCallback

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    model: str = field("cnn2d", help="built-in model (miro_edge.model.architectures.MODELS)")
    width: int = field(32, help="channel width of the built-in model")
    epochs: int = field(5, help="epochs over EM ∪ SB per task")
    batch_size: int = field(32, help="minibatch size (EM and SB samples mixed)")
    lr: float = field(0.05, help="SGD learning rate")
    momentum: float = field(0.9, help="SGD momentum")
    weight_decay: float = field(1e-4, help="SGD weight decay")
    seed: int = field(0, help="seed of model init and minibatch order")
    threads: Optional[int] = field(None, help="torch intra-op threads (default: torch's choice)")

    def __post_init__(self) -> None:
        require(self.epochs >= 1, "epochs", "must be >= 1")
        require(self.batch_size >= 1, "batch_size", "must be >= 1")
        require(self.lr > 0, "lr", "must be > 0")
        require(self.threads is None or self.threads >= 1, "threads", "must be >= 1")


@dataclass(frozen=True)
class FitReport:
    task_id: int
    epochs: int
    steps: int
    sample_passes: int
    seconds: float
    mean_loss: float
    interrupted: bool
    epochs_completed: int = 0


class IncrementalTrainer:
    """Runs the named phases for one task; behaviour beyond plain replay lives in callbacks."""

    def __init__(self, model: IncrementalClassifier, config: TrainConfig,
                 callbacks: Sequence[TrainCallback] = ()) -> None:
        self.model = model
        self.config = config
        self.callbacks = list(callbacks)
        self._rng = np.random.default_rng(config.seed)
        if config.threads:
            torch.set_num_threads(config.threads)

    def reseed(self, seed: Sequence[int]) -> None:
        """Restart the minibatch-order stream (per task, so a resumed run repeats it exactly)."""
        self._rng = np.random.default_rng(list(seed))

    def fit(self, task_id: int, sb: StreamBuffer, em: EpisodicMemory, epochs: Optional[int] = None,
            data_ratio: float = 1.0, callbacks: Sequence[TrainCallback] = ()) -> FitReport:
        """Train on SB ∪ EM for ``epochs``; ``data_ratio`` < 1 uses a random fraction of both
        (the profiler's short trials)."""
        epochs = epochs or self.config.epochs
        cbs = self.callbacks + list(callbacks)
        ctx = TaskContext(task_id, self.model, epochs, em, sb)
        sb_rows, em_slots = self._pick(len(sb), data_ratio), self._pick(len(em), data_ratio)
        num_classes = int(max(sb.labels[: len(sb)].max().item() if len(sb) else -1,
                              em.labels[: len(em)].max().item() if len(em) else -1)) + 1
        self.model.grow(num_classes)
        optimizer = torch.optim.SGD(self.model.parameters(), lr=self.config.lr,
                                    momentum=self.config.momentum, weight_decay=self.config.weight_decay)
        loss_fn = nn.CrossEntropyLoss()
        for cb in cbs:
            cb.before_task(ctx)
        t0 = time.perf_counter()
        losses: List[float] = []
        completed = 0
        pool = np.concatenate([sb_rows, -1 - em_slots])  # >= 0: SB row; < 0: EM slot
        self.model.train()
        for epoch in range(epochs):
            order = self._rng.permutation(pool)
            epoch_losses = []
            for step, start in enumerate(range(0, len(order), self.config.batch_size)):
                for cb in cbs:
                    cb.before_batch(ctx, epoch, step)
                if ctx.stopped:
                    break
                chunk = order[start:start + self.config.batch_size]
                x, y, used_slots = self._batch(sb, em, chunk)
                if len(y) < 2 and self.model.training:  # BatchNorm needs two samples
                    continue
                optimizer.zero_grad(set_to_none=True)
                loss = loss_fn(self.model(x), y)
                loss.backward()
                optimizer.step()
                value = float(loss.item())
                epoch_losses.append(value)
                ctx.steps_done += 1
                ctx.sample_passes += len(y)
                info = BatchInfo(epoch, step, used_slots, len(y), value)
                for cb in cbs:
                    cb.after_batch(ctx, info)
            mean = float(np.mean(epoch_losses)) if epoch_losses else float("nan")
            losses.extend(epoch_losses)
            if ctx.stopped:
                break
            completed += 1
            for cb in cbs:
                cb.after_epoch(ctx, epoch, mean)
        for cb in cbs:
            cb.after_task(ctx)
        self.model.eval()
        report = FitReport(task_id, epochs, ctx.steps_done, ctx.sample_passes, time.perf_counter() - t0,
                           float(np.mean(losses)) if losses else float("nan"), ctx.stopped, completed)
        logger.info("task %d: %d steps, %d sample-passes, %.2fs, loss %.3f", task_id, report.steps,
                    report.sample_passes, report.seconds, report.mean_loss)
        return report

    def _pick(self, n: int, ratio: float) -> np.ndarray:
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        k = n if ratio >= 1.0 else max(1, int(round(ratio * n)))
        return np.sort(self._rng.choice(n, size=k, replace=False)).astype(np.int64)

    @staticmethod
    def _batch(sb: StreamBuffer, em: EpisodicMemory, chunk: np.ndarray) -> Tuple[torch.Tensor, torch.Tensor, np.ndarray]:
        rows = chunk[chunk >= 0]
        slots = -1 - chunk[chunk < 0]
        parts_x, parts_y = [], []
        if len(rows):
            index = torch.as_tensor(rows)
            parts_x.append(sb.data.index_select(0, index))
            parts_y.append(sb.labels.index_select(0, index))
        if len(slots):
            ex, ey = em.gather(slots)
            parts_x.append(ex)
            parts_y.append(ey)
        return torch.cat(parts_x), torch.cat(parts_y), slots


@torch.no_grad()
def predict(model: nn.Module, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Predicted class ids for ``x`` (eval mode)."""
    model.eval()
    out = []
    for start in range(0, len(x), batch_size):
        logits = model(torch.from_numpy(np.ascontiguousarray(x[start:start + batch_size], dtype=np.float32)))
        out.append(logits.argmax(1).numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    if len(y) == 0:
        return float("nan")
    return float((predict(model, x) == y).mean())


def per_class_accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray) -> Dict[int, float]:
    pred = predict(model, x)
    return {int(c): float((pred[y == c] == c).mean()) for c in np.unique(y)}
