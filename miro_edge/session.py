"""A whole continual-learning session: the update cycle run task after task.

Per task: ingest (store, durable; a validation slice held out in the store) → fill SB →
[controller: profile and apply] → train with the swap worker → update EM class-balanced →
evaluate every seen class → checkpoint atomically → record. ``run_session`` is what
``miro-edge run`` calls.
"""
import contextlib
import dataclasses
import json
import zlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from miro_edge.config import field, to_dict
from miro_edge.controller.profiler import ControllerConfig, MiroController, ProfileResult, create_controller
from miro_edge.energy.config import MeterConfig, meter_from_config
from miro_edge.data.holdout import holdout_splits
from miro_edge.data.sources import ArraySource, load_source
from miro_edge.errors import ConfigError, InputError
from miro_edge.utils.atomic import atomic_write_json
from miro_edge.data.stream import ClassIncrementalStream, StreamConfig, Task
from miro_edge.memory.config import MemoryConfig
from miro_edge.memory.em import EpisodicMemory
from miro_edge.memory.sb import StreamBuffer
from miro_edge.recorder import Recorder
from miro_edge.train.callbacks import TrainCallback, replay_callbacks
from miro_edge.model.checkpoint import model_from_checkpoint, save_checkpoint
from miro_edge.train.metrics import AccuracyMatrix
from miro_edge.model.architectures import create_model
from miro_edge.device.memory import release_memory
from miro_edge.train.trainer import FitReport, IncrementalTrainer, TrainConfig, accuracy

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SessionConfig:
    """Top-level config of ``miro-edge run`` (configs/*.yaml)."""

    data: StreamConfig = field(default_factory=StreamConfig, help="the task stream")
    data_options: Dict[str, Any] = field(default_factory=dict, help="options passed to the dataset adapter")
    memory: MemoryConfig = field(default_factory=MemoryConfig, help="EM, SB, swapping, store")
    train: TrainConfig = field(default_factory=TrainConfig, help="model and optimisation")
    controller: ControllerConfig = field(default_factory=ControllerConfig, help="the Miro controller")
    energy: MeterConfig = field(default_factory=MeterConfig, help="the power meter")
    out_dir: str = field("runs/demo", help="run directory: store, checkpoints, results.jsonl")


@dataclass(frozen=True)
class TaskResult:
    task_id: int
    classes: List[int]
    accuracies: List[float]
    average_accuracy: float
    em_size: int
    sb_size: int
    fit: FitReport
    swaps_done: int
    checkpoint: str
    energy_j: float
    energy_label: str
    profile_energy_j: float


@dataclass(frozen=True)
class SessionResult:
    tasks: List[TaskResult]
    final_average_accuracy: float
    average_incremental_accuracy: float
    forgetting: float
    accuracy_matrix: List[List[float]]
    train_seconds: float
    sample_passes: int
    out_dir: str
    energy_j: float
    profile_energy_j: float
    energy_label: str


def open_store(path: Path, source: ArraySource, memory: MemoryConfig) -> Any:
    from miro_edge.memory.store import SampleStore
    store = SampleStore.from_config(path, memory.store)
    if store.sample_shape is not None and tuple(store.sample_shape) != source.input_shape:
        store.close()
        raise InputError("the store at {} holds samples of shape {}, but data set {} has shape {}; use another "
                         "out_dir".format(path, tuple(store.sample_shape), source.name, source.input_shape))
    return store


class Session:
    """Holds the live state of a run (store, EM, SB, model) and runs its update cycles."""

    def __init__(self, config: SessionConfig, store: Any, stream: ClassIncrementalStream,
                 recorder: Recorder, out_dir: Path, meter: Any,
                 extra_callbacks: Sequence[TrainCallback] = (),
                 controller: Optional[MiroController] = None) -> None:
        self.config = config
        self.store = store
        self.stream = stream
        self.recorder = recorder
        self.out_dir = out_dir
        self.meter = meter
        self.controller = controller
        seed = config.train.seed
        torch.manual_seed(seed)
        self._task_seed = [seed, -1]
        shape = stream.input_shape
        self.model = create_model(config.train.model, shape, stream.classes_per_task, config.train.width)
        self.trainer = IncrementalTrainer(self.model, config.train, extra_callbacks)
        self.em = EpisodicMemory(0, shape)
        self.sb = StreamBuffer(1, shape, np.random.default_rng(seed + 1))
        self.em_size = config.memory.em_size
        self.sb_size = config.memory.sb_size
        self.swap_ratio = config.memory.swap.swap_ratio
        self.matrix = AccuracyMatrix()
        self.seen = []  # type: List[Task]
        self.resume = ResumeState(out_dir / "state.json", to_dict(config))

    # -- phases of one update cycle ----------------------------------------------------------
    def begin_task(self, task_id: int) -> None:
        """Seed every random stream from (seed, task): a resumed run repeats a task exactly."""
        seed = self.config.train.seed
        self._task_seed = [seed, task_id]
        torch.manual_seed(seed * 100003 + task_id)
        self.trainer.reseed([seed, task_id, 1])

    def rng(self, purpose: str) -> np.random.Generator:
        """An independent random stream per task and purpose, so skipping a step on resume (an
        ingest already committed) leaves every other step's randomness unchanged."""
        return np.random.default_rng(self._task_seed + [zlib.crc32(purpose.encode())])

    def ingest(self, task: Task) -> List[str]:
        """Store the task durably; after a power cut, a task the store already committed is
        recognised (its first record id is present) and never ingested twice."""
        splits = self.resume.committed_splits(task.task_id, self.store)
        if splits is not None:
            logger.info("task %d was ingested before the restart; not ingesting again", task.task_id)
            return splits
        splits = holdout_splits(task.y_train, self.config.memory.val_fraction, self.rng("holdout"))
        self.resume.save_pending_ingest(task.task_id, splits)
        ids = self.store.ingest_batch(task.x_train, task.y_train, task.task_id, splits=splits)
        self.resume.save_committed(int(ids[-1]) + 1 if len(ids) else self.resume.next_id)
        return splits

    def fill_sb(self, task: Task, x: np.ndarray, y: np.ndarray, sb_size: Optional[int]) -> None:
        """The task's training samples (the held-out slice excluded) in a random order,
        reservoir-sampled to ``sb_size``."""
        capacity = max(1, sb_size if sb_size is not None else len(y))
        self.sb = StreamBuffer(capacity, self.stream.input_shape, np.random.default_rng(self.config.train.seed + task.task_id))
        order = self.rng("sb").permutation(len(y))
        self.sb.add(x[order], y[order])

    def em_capacity(self, em_size: Optional[int], classes: Sequence[int]) -> int:
        if em_size is not None:
            return em_size
        counts = self.store.class_counts()
        return int(sum(counts.get(c, 0) for c in classes))

    def apply(self, task_id: int, em_size: Optional[int], sb_size: Optional[int], old_classes: Sequence[int],
              why: str) -> None:
        """Resize EM (class-balanced; evicted samples stay in the store) and SB to a new config."""
        self.em_size, self.sb_size = em_size, sb_size
        report = self.em.rebalance(self.em_capacity(em_size, old_classes), old_classes, self.store,
                                   self.rng("apply"))
        dropped = self.sb.resize(sb_size) if sb_size is not None and sb_size < len(self.sb) else 0
        release_memory()
        self.recorder.record("apply", task_id=task_id, em_size=len(self.em), sb_size=len(self.sb),
                             evicted=report.evicted, refilled=report.refilled, sb_dropped=dropped, reason=why)

    def train(self, task: Task, old_classes: Sequence[int]) -> Tuple[FitReport, int]:
        """Train the task; a memory-budget drop stops the fit at a batch boundary, the session
        switches to the controller's fitting candidate and trains the remaining epochs."""
        epochs_left = self.config.train.epochs
        fits = []  # type: List[FitReport]
        swaps = 0
        while epochs_left > 0:
            swap_cfg = dataclasses.replace(self.config.memory.swap, swap_ratio=self.swap_ratio)
            with replay_callbacks(self.em, self.store, swap_cfg, self.config.train.seed + task.task_id,
                                  self.meter.add_work) as (worker, callbacks):
                adapt = None
                if self.controller is not None and self.controller.current is not None:
                    adapt = self.controller.training_callback(task.task_id, worker)
                    callbacks.append(adapt)
                fit = self.trainer.fit(task.task_id, self.sb, self.em, epochs=epochs_left, callbacks=callbacks)
            fits.append(fit)
            if worker is not None:
                swaps += worker.stats().swaps_done
                self.recorder.record("swap_stats", task_id=task.task_id, **dataclasses.asdict(worker.stats()))
            epochs_left -= fit.epochs_completed
            if adapt is None or adapt.switch is None:
                break
            cand = adapt.switch.candidate
            self.apply(task.task_id, cand.em_size, cand.sb_size, old_classes, adapt.switch.reason)
            self.controller.current = cand
            self.recorder.record("budget_switch", task_id=task.task_id, em_size=cand.em_size, sb_size=cand.sb_size,
                                 memory_bytes=cand.memory_bytes, reason=adapt.switch.reason,
                                 epochs_left=epochs_left)
        total = FitReport(task.task_id, self.config.train.epochs, sum(f.steps for f in fits),
                          sum(f.sample_passes for f in fits), sum(f.seconds for f in fits),
                          float(np.nanmean([f.mean_loss for f in fits])) if fits else float("nan"),
                          any(f.interrupted for f in fits), sum(f.epochs_completed for f in fits))
        return total, swaps

    def update_em(self, task: Task) -> None:
        classes = sorted(set(c for t in self.seen for c in t.classes))
        report = self.em.rebalance(self.em_capacity(self.em_size, classes), classes, self.store, self.rng("em"))
        self.recorder.record("em_update", task_id=task.task_id, **dataclasses.asdict(report))

    def evaluate(self) -> List[float]:
        return [accuracy(self.model, t.x_test, t.y_test) for t in self.seen]

    def profile(self, task: Task, tx: np.ndarray, ty: np.ndarray, old_classes: Sequence[int]) -> Optional[ProfileResult]:
        if self.controller is None or not self.controller.active_for(task.task_id):
            return None
        result = self.controller.profile(task.task_id, self.model, self.em, tx, ty, self.store, old_classes,
                                         self.config.memory.swap.swap_ratio)
        cand = result.candidate
        self.apply(task.task_id, cand.em_size, cand.sb_size, old_classes, result.reason)
        return result

    def run_task(self, task: Task) -> TaskResult:
        self.begin_task(task.task_id)
        splits = self.ingest(task)
        old_classes = sorted(set(c for t in self.seen for c in t.classes))
        self.seen.append(task)
        train_mask = np.array([s == "train" for s in splits], dtype=bool)
        tx, ty = task.x_train[train_mask], task.y_train[train_mask]
        profile = self.profile(task, tx, ty, old_classes)
        self.fill_sb(task, tx, ty, self.sb_size)
        with self.meter.window("train-task-{}".format(task.task_id)) as window:
            fit, swaps = self.train(task, old_classes)
        energy = window.result
        self.update_em(task)
        accs = self.evaluate()
        self.matrix.add_row(accs)
        ckpt = save_checkpoint(self.out_dir / "checkpoints" / "task-{:03d}.pt".format(task.task_id), self.model,
                               self.config.train.model, self.model.input_shape, self.config.train.width,
                               to_dict(self.config), task.task_id, {"average_accuracy": float(np.mean(accs))})
        profile_j = profile.energy_j if profile is not None else 0.0
        result = TaskResult(task.task_id, list(task.classes), accs, float(np.mean(accs)), len(self.em),
                            len(self.sb), fit, swaps, str(ckpt), energy.energy_j, energy.label, profile_j)
        self.recorder.record("task", task_id=task.task_id, classes=list(task.classes), accuracies=accs,
                             average_accuracy=result.average_accuracy, em_size=len(self.em), sb_size=len(self.sb),
                             train_seconds=fit.seconds, sample_passes=fit.sample_passes, swaps_done=swaps,
                             checkpoint=str(ckpt), energy_j=energy.energy_j, energy_label=energy.label,
                             energy_source=energy.source, profile_energy_j=profile_j)
        self.resume.save_done(self, result)
        return result

    def restore(self) -> Optional[int]:
        """Continue a run cut short: model from its last checkpoint, EM re-read from the store by
        record id, metrics so far. Returns the last completed task, or None for a fresh run."""
        state = self.resume.load()
        if state is None or state.get("completed") is None:
            return None
        done = int(state["completed"])
        model = model_from_checkpoint(state["checkpoint"])
        self.model.grow(model.num_classes)
        self.model.load_state_dict(model.state_dict())
        ids = [int(i) for i in state["em_record_ids"]]
        samples = {s.record_id: s for s in self.store.read_many(ids)}
        kept = [samples[i] for i in ids if i in samples]
        xs = np.stack([s.x for s in kept]).astype(np.float32) if kept else np.zeros((0,) + self.stream.input_shape,
                                                                                   np.float32)
        self.em.restore(int(state["em_capacity"]), xs, np.array([s.label for s in kept], dtype=np.int64),
                        np.array([s.record_id for s in kept], dtype=np.int64))
        self.em_size, self.sb_size = state["em_size"], state["sb_size"]
        for row in state["rows"]:
            self.matrix.add_row(row)
        self.seen = [self.stream.task(t) for t in range(done + 1)]
        self.recorder.record("resume", completed_task=done, em_restored=len(kept), em_missing=len(ids) - len(kept))
        logger.info("resuming after task %d (EM %d samples re-read from the store)", done, len(kept))
        return done


class ResumeState:
    """``state.json`` in the run directory, rewritten atomically after each ingest and each task,
    so a run cut at any instant resumes at the task it was in, without ingesting anything twice."""

    FORMAT = 1

    def __init__(self, path: Path, config: Dict[str, Any]) -> None:
        self.path = path
        self.config = config
        self.state = {"format_version": self.FORMAT, "config": config, "completed": None,
                      "ingested": None}  # type: Dict[str, Any]

    def load(self) -> Optional[Dict[str, Any]]:
        if not self.path.is_file():
            return None
        try:
            state = json.loads(self.path.read_text())
        except ValueError as exc:
            raise InputError("{} is unreadable ({}); use another out_dir".format(self.path, exc)) from None
        if state.get("format_version") != self.FORMAT:
            raise InputError("{} has format {}, this miro_edge writes {}; use another out_dir".format(
                self.path, state.get("format_version"), self.FORMAT))
        if json.loads(json.dumps(self.config, default=str)) != state.get("config"):
            raise ConfigError("{} belongs to a run with a different config; resume it with that config or use "
                              "another out_dir".format(self.path.parent))
        self.state = state
        return state

    @property
    def next_id(self) -> int:
        """The store's next record id as of the last committed ingest (ids are arrival indices)."""
        return int(self.state.get("next_id", 0))

    def committed_splits(self, task_id: int, store: Any) -> Optional[List[str]]:
        """The splits of ``task_id`` if the store already holds it, else None."""
        ingested = self.state.get("ingested")
        if not ingested or ingested["task_id"] != task_id:
            return None
        if not ingested["committed"]:
            from miro_edge.errors import CorruptRecordError, StoreError
            try:
                store.read(ingested["first_id"])
            except CorruptRecordError:
                pass  # present, though damaged: the commit happened
            except StoreError:
                return None  # the cut came before the commit: ingest again
            self.save_committed(ingested["first_id"] + len(ingested["splits"]))
        return list(ingested["splits"])

    def save_pending_ingest(self, task_id: int, splits: Sequence[str]) -> None:
        self.state["ingested"] = {"task_id": task_id, "splits": list(splits), "first_id": self.next_id,
                                  "committed": False}
        atomic_write_json(self.path, self.state)

    def save_committed(self, next_id: int) -> None:
        self.state["next_id"] = next_id
        self.state["ingested"]["committed"] = True
        atomic_write_json(self.path, self.state)

    def save_done(self, session: "Session", result: TaskResult) -> None:
        _, _, rids = session.em.snapshot()
        totals = self.state.get("totals", {})
        for key, value in (("energy_j", result.energy_j), ("profile_energy_j", result.profile_energy_j),
                           ("train_seconds", result.fit.seconds), ("sample_passes", result.fit.sample_passes)):
            totals[key] = totals.get(key, 0) + value
        self.state.update({"completed": result.task_id, "checkpoint": result.checkpoint,
                           "em_record_ids": [int(r) for r in rids], "em_capacity": session.em.capacity,
                           "em_size": session.em_size, "sb_size": session.sb_size,
                           "rows": session.matrix.rows, "totals": totals})
        atomic_write_json(self.path, self.state)

    @property
    def totals(self) -> Dict[str, float]:
        return dict(self.state.get("totals", {}))


def run_session(config: SessionConfig, out_dir: Optional[str] = None,
                on_task: Optional[Callable[[TaskResult], None]] = None,
                extra_callbacks: Sequence[TrainCallback] = ()) -> SessionResult:
    """Run every task of the configured stream; returns the metrics and writes the run dir."""
    out = Path(out_dir or config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    source = load_source(config.data.dataset, **config.data_options)
    stream = ClassIncrementalStream.from_config(source, config.data)
    results = []  # type: List[TaskResult]
    with contextlib.ExitStack() as stack:
        recorder = stack.enter_context(Recorder(out / "results.jsonl"))
        store = stack.enter_context(open_store(out / "store", source, config.memory))
        meter = stack.enter_context(meter_from_config(config.energy))
        recorder.record("session_start", config=to_dict(config), num_tasks=len(stream), meter=meter.source,
                        class_order=stream.class_order, input_shape=list(stream.input_shape))
        controller = None
        if config.controller.enabled:
            from miro_edge.device.resources import ResourceMonitor
            controller = create_controller(config.controller, config.train, meter, recorder,
                                           ResourceMonitor().snapshot)
        session = Session(config, store, stream, recorder, out, meter, extra_callbacks, controller)
        done = session.restore()
        for task in stream:
            if done is not None and task.task_id <= done:
                continue
            result = session.run_task(task)
            results.append(result)
            if on_task is not None:
                on_task(result)
        summary = session.matrix.summary()
        label = results[-1].energy_label if results else meter.label
        totals = session.resume.totals  # every task of the run, those before a restart included
        final = SessionResult(results, summary["final_average_accuracy"], summary["average_incremental_accuracy"],
                              summary["forgetting"], session.matrix.rows, float(totals.get("train_seconds", 0.0)),
                              int(totals.get("sample_passes", 0)), str(out), float(totals.get("energy_j", 0.0)),
                              float(totals.get("profile_energy_j", 0.0)), label)
        recorder.record("session_end", **summary, train_seconds=final.train_seconds, sample_passes=final.sample_passes,
                        energy_j=final.energy_j, profile_energy_j=final.profile_energy_j, energy_label=label)
    return final
