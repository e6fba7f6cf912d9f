"""The learning state of one device in RAM: model, trainer, EM, SB and the controller, and the
training steps of an update cycle over them (profile and apply, fill SB, train with the swap
worker, update EM). The workspace feeds it; the simulated session and the device loop share it.
"""
import dataclasses
import logging
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from miro_edge.controller import ControllerConfig, MiroController, ProfileResult, create_controller
from miro_edge.device.memory import release_memory
from miro_edge.events import ApplyEvent, BudgetSwitchEvent, EmUpdateEvent, SwapStatsEvent
from miro_edge.memory.config import MemoryConfig
from miro_edge.memory.em import EpisodicMemory
from miro_edge.memory.sb import StreamBuffer
from miro_edge.model.architectures import IncrementalClassifier, create_model
from miro_edge.model.checkpoint import model_from_checkpoint
from miro_edge.recorder import Recorder
from miro_edge.train.callbacks import TrainCallback, replay_callbacks
from miro_edge.train.trainer import FitReport, IncrementalTrainer, TrainConfig
from miro_edge.utils.faults import fault_point

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LearnReport:
    """What the training steps of one cycle did."""

    fit: FitReport
    swaps_done: int
    em_size: int
    sb_size: int
    energy_j: float
    energy_label: str
    energy_source: str
    profile_energy_j: float
    profile: Optional[Dict[str, Any]]


class Learner:
    """Model + EM + SB + trainer (+ controller) over one store."""

    def __init__(self, memory: MemoryConfig, train: TrainConfig, store: Any, recorder: Recorder, meter: Any,
                 input_shape: Sequence[int], controller: Optional[MiroController] = None,
                 extra_callbacks: Sequence[TrainCallback] = ()) -> None:
        self.memory = memory
        self.train_config = train
        self.store = store
        self.recorder = recorder
        self.meter = meter
        self.controller = controller
        self.input_shape = tuple(int(v) for v in input_shape)
        seed = train.seed
        torch.manual_seed(seed)
        self._cycle_seed = [seed, -1]
        self.model: IncrementalClassifier = create_model(train.model, self.input_shape, 1, train.width)
        self.trainer = IncrementalTrainer(self.model, train, extra_callbacks)
        self.em = EpisodicMemory(0, self.input_shape)
        self.sb = StreamBuffer(1, self.input_shape, np.random.default_rng(seed + 1))
        self.em_size: Optional[int] = memory.em_size
        self.sb_size: Optional[int] = memory.sb_size
        self.swap_ratio = memory.swap.swap_ratio

    # -- randomness -------------------------------------------------------------------------
    def begin(self, cycle: int) -> None:
        """Seed every random stream from (seed, cycle): a resumed cycle repeats its training exactly."""
        seed = self.train_config.seed
        self._cycle_seed = [seed, cycle]
        torch.manual_seed(seed * 100003 + cycle)
        self.trainer.reseed([seed, cycle, 1])

    def rng(self, purpose: str) -> np.random.Generator:
        """An independent stream per cycle and purpose, so skipping a step on resume leaves every
        other step's randomness unchanged."""
        return np.random.default_rng(self._cycle_seed + [zlib.crc32(purpose.encode())])

    # -- the training steps ---------------------------------------------------------------------
    def learn(self, cycle: int, tx: np.ndarray, ty: np.ndarray, old_classes: Sequence[int],
              num_classes: int) -> LearnReport:
        """Profile and apply (controller) -> fill SB -> train with the swap worker -> update EM."""
        self.model.grow(num_classes)
        profile = self.profile(cycle, tx, ty, old_classes)
        self.fill_sb(cycle, tx, ty, self.sb_size)
        with self.meter.window(f"train-cycle-{cycle}") as window:
            fit, swaps = self.train(cycle, old_classes)
        energy = window.result
        self.update_em(cycle, sorted(set(old_classes) | set(int(c) for c in np.unique(ty))))
        return LearnReport(fit, swaps, len(self.em), len(self.sb), energy.energy_j, energy.label, energy.source,
                           profile.energy_j if profile is not None else 0.0,
                           None if profile is None else {"em_size": profile.candidate.em_size,
                                                         "sb_size": profile.candidate.sb_size,
                                                         "reason": profile.reason})

    def profile(self, cycle: int, tx: np.ndarray, ty: np.ndarray,
                old_classes: Sequence[int]) -> Optional[ProfileResult]:
        if self.controller is None or not self.controller.active_for(cycle):
            return None
        fault_point("profile:before")
        result = self.controller.profile(cycle, self.model, self.em, tx, ty, self.store, old_classes,
                                         self.memory.swap)
        fault_point("profile:after")
        cand = result.candidate
        self.apply(cycle, cand.em_size, cand.sb_size, old_classes, result.reason)
        return result

    def fill_sb(self, cycle: int, x: np.ndarray, y: np.ndarray, sb_size: Optional[int]) -> None:
        """The cycle's training samples in a random order, reservoir-sampled to ``sb_size``."""
        capacity = max(1, sb_size if sb_size is not None else len(y))
        self.sb = StreamBuffer(capacity, self.input_shape, np.random.default_rng(self.train_config.seed + cycle))
        order = self.rng("sb").permutation(len(y))
        self.sb.add(x[order], y[order])

    def em_capacity(self, em_size: Optional[int], classes: Sequence[int]) -> int:
        if em_size is not None:
            return em_size
        counts = self.store.class_counts()
        return int(sum(counts.get(c, 0) for c in classes))

    def apply(self, cycle: int, em_size: Optional[int], sb_size: Optional[int], old_classes: Sequence[int],
              why: str) -> None:
        """Resize EM (class-balanced; evicted samples stay in the store) and SB to a new config."""
        self.em_size, self.sb_size = em_size, sb_size
        report = self.em.rebalance(self.em_capacity(em_size, old_classes), old_classes, self.store,
                                   self.rng("apply"))
        dropped = self.sb.resize(sb_size) if sb_size is not None and sb_size < len(self.sb) else 0
        release_memory()
        self.recorder.write(ApplyEvent(task_id=cycle, em_size=len(self.em), sb_size=len(self.sb),
                                       evicted=report.evicted, refilled=report.refilled, sb_dropped=dropped, reason=why))

    def train(self, cycle: int, old_classes: Sequence[int]) -> Tuple[FitReport, int]:
        """Train the cycle; a memory-budget drop stops the fit at a batch boundary, the learner
        switches to the controller's fitting candidate and trains the remaining epochs."""
        epochs_left = self.train_config.epochs
        fits: List[FitReport] = []
        swaps = 0
        while epochs_left > 0:
            swap_cfg = dataclasses.replace(self.memory.swap, swap_ratio=self.swap_ratio)
            with replay_callbacks(self.em, self.store, swap_cfg, self.train_config.seed + cycle,
                                  self.meter.add_work) as (worker, callbacks):
                adapt = None
                if self.controller is not None and self.controller.current is not None:
                    adapt = self.controller.training_callback(cycle, worker)
                    callbacks.append(adapt)
                callbacks.append(_FaultEveryBatch())
                fit = self.trainer.fit(cycle, self.sb, self.em, epochs=epochs_left, callbacks=callbacks)
            fits.append(fit)
            if worker is not None:
                swaps += worker.stats().swaps_done
                self.recorder.write(SwapStatsEvent(task_id=cycle, **dataclasses.asdict(worker.stats())))
            epochs_left -= fit.epochs_completed
            switch = adapt.switch if adapt is not None else None
            if switch is None or switch.candidate is None or self.controller is None:
                break  # (the adapt callback only asks to switch when a candidate fits)
            cand = switch.candidate
            self.apply(cycle, cand.em_size, cand.sb_size, old_classes, switch.reason)
            self.controller.adopt(cand)
            self.recorder.write(BudgetSwitchEvent(task_id=cycle, em_size=cand.em_size, sb_size=cand.sb_size,
                                                  memory_bytes=cand.memory_bytes, reason=switch.reason,
                                                  epochs_left=epochs_left))
        total = FitReport(cycle, self.train_config.epochs, sum(f.steps for f in fits),
                          sum(f.sample_passes for f in fits), sum(f.seconds for f in fits),
                          float(np.nanmean([f.mean_loss for f in fits])) if fits else float("nan"),
                          any(f.interrupted for f in fits), sum(f.epochs_completed for f in fits))
        return total, swaps

    def update_em(self, cycle: int, classes: Sequence[int]) -> None:
        report = self.em.rebalance(self.em_capacity(self.em_size, classes), classes, self.store, self.rng("em"))
        self.recorder.write(EmUpdateEvent(task_id=cycle, capacity_before=report.capacity_before,
                                          capacity_after=report.capacity_after, evicted=report.evicted,
                                          refilled=report.refilled,
                                          per_class={str(c): n for c, n in report.per_class.items()}))

    # -- persistence between cycles ---------------------------------------------------------------
    def state(self) -> Dict[str, Any]:
        """What ``restore`` needs besides the checkpoint: EM by record id, the applied config."""
        _, _, rids = self.em.snapshot()
        return {"em_record_ids": [int(r) for r in rids], "em_capacity": self.em.capacity,
                "em_size": self.em_size, "sb_size": self.sb_size}

    def restore(self, checkpoint: Path, state: Dict[str, Any]) -> Tuple[int, int]:
        """Model from ``checkpoint``, EM re-read from the store by record id. Returns (restored, missing)."""
        model = model_from_checkpoint(checkpoint)
        self.model.grow(model.num_classes)
        self.model.load_state_dict(model.state_dict())
        ids = [int(i) for i in state.get("em_record_ids", [])]
        samples = {s.record_id: s for s in self.store.read_many(ids)} if ids else {}
        kept = [samples[i] for i in ids if i in samples]
        xs = (np.stack([s.x for s in kept]).astype(np.float32) if kept
              else np.zeros((0,) + self.input_shape, np.float32))
        self.em.restore(int(state.get("em_capacity", 0)), xs, np.array([s.label for s in kept], dtype=np.int64),
                        np.array([s.record_id for s in kept], dtype=np.int64))
        self.em_size, self.sb_size = state.get("em_size", self.em_size), state.get("sb_size", self.sb_size)
        return len(kept), len(ids) - len(kept)


class _FaultEveryBatch(TrainCallback):
    """The crash tests' "train:batch" point (``MIRO_EDGE_KILL_AT=train:batch@N`` kills at batch N)."""

    def before_batch(self, ctx: Any, epoch: int, step: int) -> None:
        fault_point("train:batch")


def make_controller(config: ControllerConfig, train: TrainConfig, meter: Any,
                    recorder: Recorder) -> Optional[MiroController]:
    """The Miro controller when enabled, reading the device's resources for its budget."""
    if not config.enabled:
        return None
    from miro_edge.device.resources import ResourceMonitor

    return create_controller(config, train, meter, recorder, ResourceMonitor().snapshot)
