"""The process the fault suite kills: ``python fault_child.py SCENARIO DIR POINT [ARGS]``.

Each scenario does real work through the library and prints ``ready`` once set up, then one line
per durable step (``acked N``, ``saved N``, ``exported``, ``published N``). POINT names where
to die by SIGKILL on its own (``none``: the parent kills it at a random instant). A rerun with
POINT ``none`` and nothing killing it finishes the work; the parent then checks every artifact.
"""
import os
import signal
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

BATCHES, BATCH = 12, 10
ARMED = [False]  # named points fire only once the run is under way (not while a store is created)


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def die_if_armed() -> None:
    if ARMED[0]:
        die()


def sample(record_id: int) -> np.ndarray:
    return np.random.default_rng(record_id).standard_normal((4, 8)).astype(np.float32)


def label_of(record_id: int) -> int:
    return record_id % 3


def split_of(record_id: int) -> str:
    return "val" if record_id % 7 == 0 else "train"


def ingest(out: Path, point: str, backend: str) -> None:
    from miro_edge.memory.store import SampleStore
    from miro_edge.memory.store.backends import slots, slots_write, sqlite

    real_commit = {b: b._commit for b in (sqlite.SqliteBackend, slots.SlotsBackend)}
    if point == "after_payload_sync":  # payloads on disk, COMMIT not yet done
        real = slots._datasync
        slots._datasync = lambda fd: (real(fd), die_if_armed())
    elif point == "before_commit":
        sqlite.SqliteBackend._commit = lambda self: die_if_armed() or real_commit[type(self)](self)
        slots.SlotsBackend._commit = sqlite.SqliteBackend._commit
    elif point == "after_commit":  # committed, not yet acknowledged
        def commit_then_die(self):
            real_commit[type(self)](self)
            die_if_armed()
        sqlite.SqliteBackend._commit = commit_then_die
        slots.SlotsBackend._commit = commit_then_die
    elif point == "mid_put_records":  # half of a batch's rows written inside the transaction
        real_put = {c: c.put_records for c in (sqlite._Txn, slots_write._SlotTxn)}

        def half_then_die(self, rows):
            real_put[type(self)](self, rows[:len(rows) // 2] if ARMED[0] else rows)
            die_if_armed()
        sqlite._Txn.put_records = half_then_die
        slots_write._SlotTxn.put_records = half_then_die
    with SampleStore(out / "store", backend=backend) as store:
        first = store.summary().next_id // BATCH  # a rerun goes on after what is durable
        print("ready", flush=True)
        for b in range(first, BATCHES):
            ids = range(b * BATCH, (b + 1) * BATCH)
            ARMED[0] = point != "none" and b >= 3
            got = store.ingest_batch(np.stack([sample(i) for i in ids]), [label_of(i) for i in ids], task_id=b // 4,
                                     splits=[split_of(i) for i in ids])
            assert got == list(ids), (got, list(ids))
            print("acked", b, flush=True)


def checkpoint(out: Path, point: str) -> None:
    import torch

    from miro_edge.model.architectures import create_model
    from miro_edge.model.checkpoint import save_checkpoint
    from miro_edge.utils.atomic import remove_stale_temps

    folder = out / "checkpoints"
    remove_stale_temps(folder, "task-*.pt")  # what a rerun's Session does first
    if point == "before_replace":
        real_replace = os.replace
        os.replace = lambda a, b: die() if str(b).endswith("task-002.pt") else real_replace(a, b)
    elif point == "during_fsync":
        real_fsync = os.fsync
        calls = []

        def fsync_then_die(fd):
            calls.append(fd)
            if len(calls) == 5:  # the third checkpoint's file (each write syncs the file, then its folder)
                die()
            real_fsync(fd)
        os.fsync = fsync_then_die
    done = sorted(folder.glob("task-*.pt")) if folder.is_dir() else []
    print("ready", flush=True)
    for task in range(len(done), 5):
        torch.manual_seed(task)
        model = create_model("cnn1d", [3, 32], 5, width=8)
        save_checkpoint(folder / f"task-{task:03d}.pt", model, "cnn1d", [3, 32], width=8, task_id=task)
        print("saved", task, flush=True)


def export(out: Path, point: str) -> None:
    from miro_edge.export.pipeline import export_checkpoint
    from miro_edge.utils import atomic

    if point == "before_move":
        real = atomic.os.replace
        atomic.os.replace = lambda a, b: die() if str(b).endswith("model.onnx") else real(a, b)
    print("ready", flush=True)
    export_checkpoint(out / "source.pt", out / "exported", run_parity=False)
    print("exported", flush=True)


def publish(out: Path, point: str) -> None:
    from miro_edge.registry import model_registry
    from miro_edge.registry.model_registry import ModelRegistry

    if point == "before_pointer":  # renamed into versions/, CURRENT not moved
        real_pointer = model_registry.ModelRegistry._set_pointer
        model_registry.ModelRegistry._set_pointer = \
            lambda self, version: die() if version == 2 else real_pointer(self, version)
    elif point == "before_history":  # CURRENT moved, HISTORY not yet appended
        real = model_registry.ModelRegistry._record_current
        model_registry.ModelRegistry._record_current = \
            lambda self: die() if self.current_version() == 2 else real(self)
    elif point == "mid_copy":  # half of an artifact copied into .staging
        real_copy = model_registry._copy_fsync

        def half(src, dst):
            if dst.name == "model.onnx" and len(list((out / "registry" / "versions").iterdir())) >= 1:
                dst.write_bytes(src.read_bytes()[:100])
                die()
            return real_copy(src, dst)
        model_registry._copy_fsync = half
    reg = ModelRegistry(out / "registry")
    print("ready", flush=True)
    live = set(reg.made_current() or []) | ({reg.current_version()} - {None})  # publishes that went live
    for n in range(len(live), 4):
        res = reg.publish({"model.onnx": out / "model.onnx", "checkpoint.pt": out / "source.pt"},
                          metrics={"val_accuracy": 0.5 + 0.1 * n}, task_id=n)
        print("published", res.version, flush=True)


if __name__ == "__main__":
    scenario, where, at = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    if scenario == "ingest":
        ingest(where, at, sys.argv[4])
    else:
        {"checkpoint": checkpoint, "export": export, "publish": publish}[scenario](where, at)
