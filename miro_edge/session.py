"""The simulated stream (``miro-edge run``): a bundled data set cut into tasks, each ingested into
a workspace and followed by one update cycle, then scored on every seen task's test split.

It is a client of the device loop, nothing more: the same ``Workspace`` (lock, inbox, store, label
map, resumable cycle, registry) that ``miro-edge update`` and the daemon drive. The run directory
IS a workspace (``miro-edge status DIR`` reads it); ``session.json`` beside it holds the session's
config and the accuracy matrix so far.
"""
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from miro_edge.config import field, to_dict
from miro_edge.controller import ControllerConfig
from miro_edge.data.sources import load_source
from miro_edge.data.stream import ClassIncrementalStream, StreamConfig, Task
from miro_edge.energy.config import MeterConfig
from miro_edge.errors import ConfigError, InputError
from miro_edge.events import TaskEvent
from miro_edge.memory.config import MemoryConfig
from miro_edge.train.metrics import AccuracyMatrix
from miro_edge.train.trainer import TrainConfig, accuracy
from miro_edge.utils.atomic import atomic_write_json
from miro_edge.workspace.config import UpdateConfig, WorkspaceConfig
from miro_edge.workspace.cycle import CycleResult
from miro_edge.workspace.workspace import CONFIG_NAME, Workspace

logger = logging.getLogger(__name__)
SESSION_FILE = "session.json"
FORMAT = 2


@dataclass(frozen=True)
class SessionConfig:
    """Top-level config of ``miro-edge run`` (configs/*.yaml)."""

    data: StreamConfig = field(default_factory=StreamConfig, help="the task stream")
    data_options: Dict[str, Any] = field(default_factory=dict, help="options passed to the dataset adapter")
    memory: MemoryConfig = field(default_factory=MemoryConfig, help="EM, SB, swapping, store")
    train: TrainConfig = field(default_factory=TrainConfig, help="model and optimisation")
    controller: ControllerConfig = field(default_factory=ControllerConfig, help="the Miro controller")
    energy: MeterConfig = field(default_factory=MeterConfig, help="the power meter")
    update: UpdateConfig = field(default_factory=lambda: UpdateConfig(publish=False),
                                 help="the update cycle; publish: true also exports and publishes every task")
    out_dir: str = field("runs/demo", help="run directory (a workspace): store, checkpoints, registry, journal")

    def workspace_config(self, input_shape: Sequence[int]) -> WorkspaceConfig:
        return WorkspaceConfig(input_shape=tuple(int(v) for v in input_shape), memory=self.memory, train=self.train,
                               controller=self.controller, energy=self.energy, update=self.update)


# A task's result is the event recorded for it: one field list, in miro_edge/events.py.
TaskResult = TaskEvent


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


class SessionRecord:
    """``session.json``: the config a run directory belongs to and one row per task done."""

    def __init__(self, path: Path, config: Dict[str, Any]) -> None:
        self.path = path
        self.data: Dict[str, Any] = {"format_version": FORMAT, "config": config, "rows": [], "tasks": []}

    def load(self) -> "SessionRecord":
        if not self.path.is_file():
            return self
        try:
            data = json.loads(self.path.read_text())
        except ValueError as exc:
            raise InputError(f"{self.path} is unreadable ({exc}); use another out_dir") from None
        if data.get("format_version") != FORMAT:
            raise InputError("{} was written by another miro_edge version (format {}); use another out_dir".format(
                self.path, data.get("format_version")))
        if json.loads(json.dumps(self.data["config"], default=str)) != data.get("config"):
            raise ConfigError(f"{self.path.parent} belongs to a run with a different config; resume it with that config or use "
                              "another out_dir")
        self.data = data
        return self

    def save(self) -> None:
        atomic_write_json(self.path, self.data)


def _check_same_data(record: SessionRecord, stream: ClassIncrementalStream, name: str) -> None:
    """A run directory belongs to one data set: its classes and their order are recorded and checked,
    so a data file that grew (or changed) behind the run is refused instead of silently remapped."""
    seen: Dict[str, Any] = {"class_order": [int(c) for c in stream.class_order], "samples": int(len(stream._y))}
    recorded: Optional[Dict[str, Any]] = record.data.get("data")
    if recorded is None:
        record.data["data"] = seen
        record.save()
    elif recorded != seen:
        raise InputError(
            "the data set behind {} changed since the run began ({} classes, {} samples; now {} classes, {} samples "
            "of {}): resuming would re-cut the tasks. Use another --out, or add the new samples to this "
            "workspace with `miro-edge ingest` (every label keeps its class id)".format(
                record.path.parent, len(recorded["class_order"]), recorded["samples"], len(seen["class_order"]),
                seen["samples"], name))


def _original(y: np.ndarray, order: Sequence[int]) -> List[int]:
    """The data set's own labels of a task's class ids: what the workspace learns them as."""
    return [int(order[int(v)]) for v in y]


def _evaluate(ws: Workspace, cycle: int, seen: Sequence[Task], order: Sequence[int]) -> List[float]:
    """Accuracy on each seen task's test split, with the model the cycle ended with (its checkpoint)."""
    from miro_edge.model.checkpoint import model_from_checkpoint

    model = model_from_checkpoint(ws.root / "checkpoints" / f"cycle-{cycle:06d}.pt")
    labels = ws.labels
    accs = []
    for task in seen:
        y = np.asarray(labels.encode(_original(task.y_test, order)), dtype=np.int64)
        accs.append(accuracy(model, task.x_test, y))
    return accs


def run_session(config: SessionConfig, out_dir: Optional[str] = None,
                on_task: Optional[Callable[[TaskResult], None]] = None,
                progress: Optional[Callable[[str], None]] = None) -> SessionResult:
    """Run every task of the configured stream through a workspace; resumable after a kill."""
    out = Path(out_dir or config.out_dir)
    source = load_source(config.data.dataset, **config.data_options)
    stream = ClassIncrementalStream.from_config(source, config.data)
    record = SessionRecord(out / SESSION_FILE, json.loads(json.dumps(to_dict(config), default=str)))
    if not (out / CONFIG_NAME).is_file():
        if out.exists() and any(out.iterdir()):
            raise InputError(f"{out} exists and is not a miro_edge run directory; pass another --out")
        Workspace.init(out, config.workspace_config(stream.input_shape))
    record.load()
    _check_same_data(record, stream, source.name)
    results: List[TaskResult] = []
    with Workspace.open(out, what="run") as ws:
        if ws.config != config.workspace_config(stream.input_shape):
            raise ConfigError(f"{out} belongs to a run with a different config; resume it with that config or use "
                              "another out_dir")
        done_rows = len(record.data["rows"])
        for task in stream:
            if task.task_id < done_rows:
                continue
            cycle = _run_task(ws, task, stream.class_order, progress)
            accs = _evaluate(ws, task.task_id, [stream.task(t) for t in range(task.task_id + 1)], stream.class_order)
            result = _task_result(task, cycle, ws, accs)
            record.data["rows"].append(accs)
            record.data["tasks"].append(result.__dict__)
            record.save()
            results.append(result)
            ws.write(result)
            if on_task is not None:
                on_task(result)
    matrix = AccuracyMatrix()
    for row in record.data["rows"]:
        matrix.add_row(row)
    summary = matrix.summary()
    tasks = record.data["tasks"]
    label = tasks[-1]["energy_label"] if tasks else "estimated"
    return SessionResult(results, summary["final_average_accuracy"], summary["average_incremental_accuracy"],
                         summary["forgetting"], matrix.rows, float(sum(t["train_seconds"] for t in tasks)),
                         int(sum(t["sample_passes"] for t in tasks)), str(out),
                         float(sum(t["energy_j"] for t in tasks)), float(sum(t["profile_energy_j"] for t in tasks)),
                         label)


def _run_task(ws: Workspace, task: Task, order: Sequence[int],
              progress: Optional[Callable[[str], None]]) -> Dict[str, Any]:
    """Queue the task's samples (once: its inbox file is named after it) and run its cycle."""
    state = ws.state
    if state.cycles_done <= task.task_id and state.cycle is None:
        name = f"task-{task.task_id:06d}.npz"
        if name not in ws.inbox.names():
            x, labels = ws.validate(task.x_train, _original(task.y_train, order))
            ws.inbox.put(x, labels, source="session", name=name)
    if state.cycles_done <= task.task_id:
        result = ws.update(progress=progress)
        if result is None:
            raise InputError(f"task {task.task_id} had no samples to learn")
    return dict(state.data["last_cycle"])


def _task_result(task: Task, cycle: Dict[str, Any], ws: Workspace, accs: List[float]) -> TaskResult:
    return TaskResult(task.task_id, list(task.classes), accs, float(np.mean(accs)), int(cycle["em_size"]),
                      int(cycle["sb_size"]), float(cycle["train_seconds"]), int(cycle["sample_passes"]),
                      int(cycle.get("swaps_done", 0)), str(cycle["checkpoint"]), float(cycle["energy_j"]),
                      str(cycle["energy_label"]), float(cycle["profile_energy_j"]), cycle.get("version"))


__all__ = ["CycleResult", "SessionConfig", "SessionResult", "TaskResult", "run_session"]
