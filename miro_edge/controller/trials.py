"""One profiling trial and what it trains on: the share of data trials may use, class-balanced
trial EMs and SBs, the store's validation slice, and the extrapolation of a trial's joules to
the candidate's full training.

Trials never touch the live state: each trains a deep copy of a shared warm start with its own
EM (read from the store) and SB (a subset of the task).
"""
import copy
import dataclasses
import time
from typing import Any, Callable, Dict, List, Sequence, Tuple

import numpy as np

from miro_edge.controller.config import ControllerConfig
from miro_edge.controller.grid import Candidate
from miro_edge.controller.scorer import Trial, TrialStatus
from miro_edge.events import TrialWindowEvent
from miro_edge.memory.em import EpisodicMemory, balanced_quota
from miro_edge.memory.sb import StreamBuffer
from miro_edge.memory.swap import SwapConfig
from miro_edge.memory.types import SampleSource
from miro_edge.model.architectures import IncrementalClassifier
from miro_edge.recorder import Recorder
from miro_edge.train.callbacks import replay_callbacks
from miro_edge.train.trainer import IncrementalTrainer, TrainConfig, accuracy


def profile_data_ratio(config: ControllerConfig, trial_sizes: Sequence[int], task_size: int,
                       train_epochs: int, fixed_passes: float = 0.0) -> float:
    """The fraction of EM and SB the warm start and the trials train on for one task.

    ``config.data_ratio`` unless the planned profiling work (warm start on the task, every trial's
    first epoch, the better half's remaining epochs under successive halving) would exceed
    ``max_profile_share`` of the cheapest candidate's full training (``min(trial_sizes) x
    train_epochs`` sample-passes); then the fraction that meets that cap. Trials are noisy
    either way, and a profile that costs more than the choice can save defeats its purpose.
    ``fixed_passes``: what the profile costs besides training (model copies, validation, worker
    start-up, gaps), in sample-pass equivalents measured on the previous profile; it comes off
    the allowance first, so the cap holds for the joules profiling really spends.
    """
    if config.max_profile_share is None or not trial_sizes:
        return config.data_ratio
    sizes = sorted(trial_sizes)
    if config.successive_halving and config.trial_epochs > 1 and len(sizes) > 2:
        keep = (len(sizes) + 1) // 2
        trials = sum(sizes) + (config.trial_epochs - 1) * keep * float(np.mean(sizes))  # who is kept is unknown
    else:
        trials = float(config.trial_epochs * sum(sizes))
    planned = config.warm_start_epochs * task_size + trials  # sample-passes at a fraction of 1
    allowance = config.max_profile_share * sizes[0] * train_epochs - fixed_passes
    cap = max(allowance, 0.0) / planned
    return float(min(config.data_ratio, max(cap, 1e-4)))  # trials keep one sample per class anyway


def measured(meter: Any, name: str, fn: Callable[[], Any]) -> Tuple[Any, Any]:
    """``fn()`` inside the meter's window ``name``: (window result, fn's return value)."""
    with meter.window(name) as window:
        out = fn()
    return window.result, out


def balanced_sb(x: np.ndarray, y: np.ndarray, size: int, rng: np.random.Generator) -> StreamBuffer:
    """An SB of ``size`` samples of the task, class-balanced, random within each class."""
    labels, counts = np.unique(y, return_counts=True)
    quota = balanced_quota(size, labels.tolist(), {int(c): int(n) for c, n in zip(labels, counts)})
    rows = np.concatenate([rng.choice(np.flatnonzero(y == c), size=q, replace=False)
                           for c, q in quota.items() if q > 0])
    rows = rng.permutation(rows)
    sb = StreamBuffer(max(1, len(rows)), x.shape[1:])
    sb.add(x[rows], y[rows])
    return sb


def shuffled_sb(x: np.ndarray, y: np.ndarray, size: int, rng: np.random.Generator) -> StreamBuffer:
    """An SB of capacity ``size`` fed the task in a random order (reservoir beyond capacity)."""
    sb = StreamBuffer(max(1, size), x.shape[1:], np.random.default_rng(int(rng.integers(1 << 31))))
    order = rng.permutation(len(y))
    sb.add(x[order], y[order])
    return sb


def validation_slice(store: SampleSource, classes: Sequence[int], per_class: int,
                     task_id: int) -> Tuple[np.ndarray, np.ndarray]:
    """Class-balanced samples from the store's held-out split (never trained on)."""
    rng = np.random.default_rng(10007 + task_id)
    ids: List[int] = []
    for c in classes:
        ids.extend(store.sample_ids(c, per_class, rng, split="val"))
    samples = store.read_many(ids)
    if not samples:
        return np.zeros((0,) + tuple(store.sample_shape or ())), np.zeros(0, dtype=np.int64)
    return np.stack([s.x for s in samples]).astype(np.float32), np.array([s.label for s in samples])


def extrapolate_energy(trials: List[Trial], passes: Dict[Tuple[int, int], int], train_epochs: int) -> List[Trial]:
    """Replace each ok trial's joules by the joules its full training would take: its measured
    J per sample-pass (geometric mean with the median over this profile's trials, which damps
    timing noise of very short trials) times (em_size + sb_size) x epochs. The profiling
    energy actually spent is accounted separately from the raw windows."""
    rates = {t.candidate.key: t.energy_j / passes[t.candidate.key] for t in trials
             if t.status == TrialStatus.OK and t.energy_j is not None and passes.get(t.candidate.key)}
    if not rates:
        return trials
    pooled = float(np.median(list(rates.values())))
    out = []
    for t in trials:
        rate = rates.get(t.candidate.key)
        if rate is None:
            out.append(t)
            continue
        full = (t.candidate.em_size + t.candidate.sb_size) * train_epochs
        out.append(dataclasses.replace(t, energy_j=float(np.sqrt(rate * pooled)) * full))
    return out


class TrialRun:
    """One candidate's trial: its model copy, EM and SB, trained in measured windows (possibly in
    two rounds, see successive halving) and evaluated on the validation slice."""

    def __init__(self, task_id: int, candidate: Candidate, model: IncrementalClassifier, em: EpisodicMemory,
                 sb: StreamBuffer, store: SampleSource, swap: SwapConfig, seed: int, train_config: TrainConfig,
                 meter: Any, recorder: Recorder) -> None:
        self.task_id = task_id
        self.candidate = candidate
        self.model = model
        self.trainer = IncrementalTrainer(model, train_config)
        self.em, self.sb, self.store = em, sb, store
        self.swap = swap
        self.seed = seed
        self.meter = meter
        self.recorder = recorder
        self.energy_j = 0.0
        self.passes = 0
        self.seconds = 0.0
        self.label = ""
        self.accuracy = float("nan")
        self.val_samples = 0
        self.note = ""

    @classmethod
    def start(cls, task_id: int, cand: Candidate, warm: IncrementalClassifier, task_x: np.ndarray, task_y: np.ndarray,
              store: SampleSource, old_classes: Sequence[int], new_classes: Sequence[int], swap: SwapConfig,
              ratio: float, rng: np.random.Generator, train_config: TrainConfig, meter: Any,
              recorder: Recorder) -> Any:
        """A ready ``TrialRun`` for ``cand``, or a degenerate ``Trial`` when it cannot be tried.

        The trial trains on a ``ratio`` fraction of the candidate's EM and SB, drawn
        class-balanced so every class keeps at least one sample (a plain random fraction of a
        small EM would silently drop classes and make small candidates look worse)."""
        if cand.em_size and cand.em_size < len(old_classes):
            return Trial(cand, None, None, "none", None, TrialStatus.DEGENERATE,
                         f"EM {cand.em_size} cannot hold one sample of each of the {len(old_classes)} old classes")
        em_used = max(len(old_classes), int(round(cand.em_size * ratio))) if cand.em_size else 0
        sb_used = max(len(new_classes), int(round(cand.sb_size * ratio)))
        trial_em = EpisodicMemory(0, task_x.shape[1:])
        if em_used:
            trial_em.rebalance(em_used, old_classes, store, rng)
        trial_sb = balanced_sb(task_x, task_y, sb_used, rng)
        return cls(task_id, cand, copy.deepcopy(warm), trial_em, trial_sb, store, swap, int(rng.integers(1 << 31)),
                   train_config, meter, recorder)

    def train(self, epochs: int, val_x: np.ndarray, val_y: np.ndarray) -> None:
        def run() -> Any:
            with replay_callbacks(self.em, self.store, self.swap, self.seed, self.meter.add_work) as (_, cbs):
                return self.trainer.fit(self.task_id, self.sb, self.em, epochs=epochs, callbacks=cbs)

        t0 = time.perf_counter()
        c = self.candidate
        result, _ = measured(self.meter, f"trial-task-{self.task_id}-em{c.em_size}-sb{c.sb_size}", run)
        self.seconds += time.perf_counter() - t0
        self.energy_j += result.energy_j
        self.passes += result.sample_passes
        self.label = result.label
        self.accuracy = accuracy(self.model, val_x, val_y)
        self.val_samples = len(val_y)
        self.recorder.write(TrialWindowEvent(task_id=self.task_id, em_size=c.em_size, sb_size=c.sb_size,
                                             **result.to_dict()))

    def finish(self) -> Trial:
        if not np.isfinite(self.accuracy) or self.energy_j <= 0:
            return Trial(self.candidate, None, None, "none", self.seconds, TrialStatus.DEGENERATE,
                         "no validation samples or no energy measured")
        return Trial(self.candidate, self.accuracy, self.energy_j, self.label, self.seconds, reason=self.note,
                     val_samples=self.val_samples)
