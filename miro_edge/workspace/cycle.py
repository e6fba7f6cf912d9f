"""The update cycle: drain → hold out → [profile, apply] → train → update EM → validate →
checkpoint → export (parity) → canary → publish. Resumable after every step.

Each finished step is recorded in ``state.json`` (atomically) before the next starts; what a step
writes is either idempotent or checked on resume:

- drain: the label map is saved, then the cycle's batch is committed to the store in ONE durable
  transaction, then the inbox files are deleted. A cut before the commit redoes the drain from the
  same files; a cut after it is recognised (the first record id is in the store) and the files are
  only deleted.
- train (profile, train, EM, validate, checkpoint): a cut restarts it from the previous cycle's
  checkpoint and EM, with the same seeds.
- export: rewritten whole.
- publish: before publishing, the registry is searched for a version of this cycle's checkpoint
  (by sha256), so a cut between the registry's commit and ``state.json`` never publishes twice.
"""
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from miro_edge.config import to_dict
from miro_edge.data.holdout import holdout_splits
from miro_edge.errors import CorruptRecordError, InputError, MiroEdgeError, StoreError
from miro_edge.events import CycleEvent, CycleStepEvent, IngestEvent, StoreLossAcceptedEvent
from miro_edge.model.label_map import Label, LabelMap
from miro_edge.recorder import Recorder
from miro_edge.utils.faults import fault_point
from miro_edge.utils.hashing import sha256_file

logger = logging.getLogger(__name__)

VAL_PER_CLASS = 256  # held-out samples per class scored each cycle (seeded choice when more)


@dataclass(frozen=True)
class CycleResult:
    """What one update cycle did (also one ``cycle`` line of the journal)."""

    cycle: int
    new_samples: int
    new_labels: List[Label]
    labels: List[Label]
    val_accuracy: float
    class_accuracy: Dict[str, float]
    em_size: int
    sb_size: int
    swap_ratio: float
    energy_j: float
    energy_label: str
    profile_energy_j: float
    train_seconds: float
    sample_passes: int
    swaps_done: int
    checkpoint: str
    version: Optional[int]
    published: bool
    publish_reason: str
    resumed_from: Optional[str]

    def as_dict(self) -> Dict[str, Any]:
        import dataclasses

        return dataclasses.asdict(self)


class CycleStopped(MiroEdgeError):
    """The cycle was asked to stop (SIGTERM) at a step or batch boundary; the next update resumes it."""


class UpdateCycle:
    """The machinery of a workspace's cycles: store, meter, learner and registry, opened once."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.root = Path(ws.root)
        self.config = ws.config
        self._store: Any = None
        self._meter: Any = None
        self._learner: Any = None
        self._recorder: Optional[Recorder] = None
        self.accept_store_loss = False
        self.frame_gap: Any = None  # a FrameGap: each training batch starts between two live frames
        self._val: Optional[Tuple[int, np.ndarray, np.ndarray]] = None
        ws._stack.callback(self.close)

    # -- resources, opened on first use --------------------------------------------------------------
    @property
    def recorder(self) -> Recorder:
        if self._recorder is None:
            self._recorder = Recorder(self.root / "results.jsonl")
        return self._recorder

    @property
    def store(self) -> Any:
        if self._store is None:
            from miro_edge.memory.store import SampleStore

            path = self.root / "store"
            expected = self.ws.state.data.get("store_counts")
            if expected and not path.is_dir():
                raise StoreError(f"{path} is gone but state.json says it holds {sum(sum(v.values()) for v in expected.values())} samples; restore it from a backup "
                                 "(the workspace cannot learn on without its old samples)")
            self._store = SampleStore.from_config(path, self.config.memory.store, create=not expected)
            try:
                self._check_store(expected)
            except BaseException:
                self._store.close()
                self._store = None
                raise
        return self._store

    def _check_store(self, expected: Optional[Dict[str, Dict[str, int]]]) -> None:
        """What state.json says the last committed drain left in the store must be there (per split
        and class); a lost WAL, a restored old copy or a deleted file shows here, not as a quiet
        resume at lower accuracy."""
        cyc = self.ws.state.cycle
        if not expected or (cyc is not None and cyc.get("drain") and not cyc["drain"].get("committed")):
            return  # nothing recorded yet, or a drain whose commit is being checked by the drain step
        got = _counts(self._store)
        if got == expected:
            return
        lost = []
        for split in ("train", "val"):
            for cid, n in sorted(expected.get(split, {}).items(), key=lambda kv: int(kv[0])):
                have = got.get(split, {}).get(cid, 0)
                if have != n:
                    lost.append(f"class {cid} {split}: {have} of {n}")
        if self.accept_store_loss:
            logger.warning("accepting the store as it is: %s", "; ".join(lost))
            self.ws.state.data["store_counts"] = got
            self.ws.state.save()
            self.recorder.write(StoreLossAcceptedEvent(differences=lost))
            return
        raise StoreError("the store does not hold what state.json recorded after the last cycle ({}). Restore {} "
                         "from a backup, or accept the loss with `miro-edge update {} --accept-store-loss` (lost "
                         "samples are not learnt again)".format("; ".join(lost[:6]) + (" ..." if len(lost) > 6 else ""),
                                                                self.root / "store", self.root))

    @property
    def meter(self) -> Any:
        if self._meter is None:
            from miro_edge.energy.config import meter_from_config

            self._meter = meter_from_config(self.config.energy).__enter__()
        return self._meter

    def registry(self) -> Any:
        from miro_edge.registry import CanaryConfig, ModelRegistry

        return ModelRegistry(self.root / "registry", keep_last=self.config.update.keep_versions,
                             canary=CanaryConfig(max_drop=self.config.update.canary_max_drop))

    def learner(self, shape: Tuple[int, ...]) -> Any:
        if self._learner is None:
            from miro_edge.workspace.learner import Learner, make_controller

            controller = make_controller(self.config.controller, self.config.train, self.meter, self.recorder)
            self._learner = Learner(self.config.memory, self.config.train, self.store, self.recorder, self.meter,
                                    shape, controller)
            state = self.ws.state.data
            if state.get("checkpoint"):
                restored, missing = self._learner.restore(self.root / state["checkpoint"], state["learner"])
                if missing and not self.accept_store_loss:
                    raise StoreError(
                        f"the store lost {missing} of the {restored + missing} replay samples the last cycle kept (restored {restored}); the store "
                        "does not match state.json. Restore it from a backup, or go on without them: "
                        f"`miro-edge update {self.root} --accept-store-loss`")
        return self._learner

    def close(self) -> None:
        if self._meter is not None:
            self._meter.__exit__(None, None, None)
            self._meter = None
        if self._store is not None:
            self._store.close()
            self._store = None
        if self._recorder is not None:
            self._recorder.close()
            self._recorder = None
        self._learner = None

    # -- the cycle -----------------------------------------------------------------------------------
    def run(self, progress: Callable[[str], None], stop: Optional[Callable[[], bool]] = None,
            gate: Any = None) -> Optional[CycleResult]:
        state = self.ws.state
        _ = self.store  # opened and checked against state.json before anything is written
        resumed = state.cycle["step"] if state.cycle is not None else None
        if state.cycle is None:
            names = self.ws.inbox.names()
            if not names:
                progress(f"nothing to learn: no samples waiting in {self.ws.inbox.path}")
                return None
            state.data["cycle"] = {"number": state.cycles_done, "step": None, "files": names,
                                   "started_unix": time.time()}
            state.save()
        else:
            progress("resuming cycle {} after step {!r}".format(state.cycle["number"], resumed))
        number = int(state.cycle["number"])
        steps = [("drained", self._drain), ("trained", self._train), ("exported", self._export),
                 ("published", self._publish)]
        for name, step in steps:
            if state.step_done(name):
                continue
            if name in ("exported", "published") and not self.config.update.publish:
                state.finish_step(name)  # a simulation that measures learning only
                continue
            if stop is not None and stop():
                raise CycleStopped(f"stopped before step {name!r} of cycle {number}; `miro-edge update` resumes it")
            t0 = time.perf_counter()
            try:
                produced, line = step(number, progress, stop, gate)
            except BaseException:
                self._learner = None  # its RAM state may be mid-step: rebuilt from state.json next time
                raise
            fault_point(f"step:{name}:before-state")
            state.finish_step(name, **produced)
            self.recorder.write(CycleStepEvent(cycle=number, step=name, seconds=time.perf_counter() - t0,
                                               count=produced.get("count"), version=produced.get("version"),
                                               accepted=produced.get("accepted")))
            progress(f"{name:<9} {line} ({time.perf_counter() - t0:.1f} s)")
        return self._finish(number, resumed)

    # -- steps ---------------------------------------------------------------------------------------
    def _drain(self, number: int, progress: Callable[[str], None], stop: Any, gate: Any) -> Tuple[Dict[str, Any], str]:
        ws, state = self.ws, self.ws.state
        cyc = state.cycle
        names = list(cyc["files"])
        pending = cyc.get("drain")
        if pending is not None and self._committed(pending["first_id"], pending["count"]):
            state.data["next_id"] = int(pending["first_id"]) + int(pending["count"])
            state.data["store_counts"] = _counts(self.store)
            state.save()
            ws.inbox.remove(names)  # the commit happened before the cut: only the cleanup is left
            return {"drain": dict(pending, committed=True)}, "{} samples (committed before a restart)".format(
                pending["count"])
        batches = list(ws.inbox.batches(names))
        x = np.concatenate([b.x for b in batches]) if batches else np.zeros((0,), np.float32)
        labels = [lab for b in batches for lab in b.labels]
        shape = ws.input_shape or tuple(x.shape[1:])
        if tuple(x.shape[1:]) != tuple(shape):
            raise InputError(f"the inbox holds samples of shape {tuple(x.shape[1:])} but this workspace takes {tuple(shape)}")
        label_map = ws.labels
        before = len(label_map)
        new_labels = label_map.new_labels(labels)
        class_ids = np.asarray(label_map.extend(labels), dtype=np.int64)
        label_map.save(self.root / "labels.json")  # append-only: safe to keep if the commit below never happens
        rng = np.random.default_rng([self.config.train.seed, number, 0x401D])
        splits = holdout_splits(class_ids, self.config.memory.val_fraction, rng)
        first_id = int(state.data.get("next_id", 0))
        drain = {"first_id": first_id, "count": int(len(class_ids)), "labels_before": before,
                 "new_labels": new_labels, "committed": False}
        state.data["input_shape"] = [int(v) for v in shape]
        cyc["drain"] = drain
        state.save()
        fault_point("drain:before-commit")
        ids = self.store.ingest_batch(x, class_ids, number, splits=splits)
        fault_point("drain:after-commit")
        if ids and int(ids[0]) != first_id:
            raise StoreError(f"the store gave record ids from {ids[0]} but state.json expected {first_id}: the store and the "
                             f"workspace disagree; run `miro-edge verify {self.root}`")
        state.data["next_id"] = int(ids[-1]) + 1 if ids else first_id
        state.data["store_counts"] = _counts(self.store)  # evictions by a quota included
        drain["committed"] = True
        state.save()
        fault_point("drain:before-inbox-cleanup")
        ws.inbox.remove(names)
        self.recorder.write(IngestEvent(cycle=number, count=len(ids), new_labels=new_labels,
                                        first_id=first_id, val=int(sum(1 for s in splits if s == "val"))))
        return {"drain": drain}, "{} samples, {} new labels{}".format(
            len(ids), len(new_labels), " ({})".format(", ".join(map(str, new_labels))) if new_labels else "")

    def _committed(self, first_id: int, count: int) -> bool:
        if count == 0:
            return True
        try:
            self.store.read(first_id)
        except CorruptRecordError:
            return True  # present, though damaged: the commit happened
        except StoreError:
            return False
        return True

    def _cycle_samples(self, number: int) -> Tuple[np.ndarray, np.ndarray]:
        drain = self.ws.state.cycle["drain"]
        ids = list(range(drain["first_id"], drain["first_id"] + drain["count"]))
        got = [s for s in self.store.read_many(ids) if s.split == "train"]
        shape = tuple(self.ws.state.data["input_shape"])
        x = np.stack([s.x for s in got]).astype(np.float32) if got else np.zeros((0,) + shape, np.float32)
        return x, np.array([s.label for s in got], dtype=np.int64)

    def validation_set(self, number: int) -> Tuple[np.ndarray, np.ndarray]:
        """The store's held-out slice, up to ``VAL_PER_CLASS`` per class (a seeded choice); read once
        per cycle (validate, export's parity samples and the canary use the same samples)."""
        if self._val is not None and self._val[0] == number:
            return self._val[1], self._val[2]
        rng = np.random.default_rng([self.config.train.seed, number, 0x7A1])
        xs, ys = [], []
        for label, count in sorted(self.store.class_counts("val").items()):
            ids = self.store.sample_ids(label, min(count, VAL_PER_CLASS), rng, split="val")
            for s in self.store.read_many(sorted(ids)):
                xs.append(s.x)
                ys.append(s.label)
        shape = tuple(self.ws.state.data["input_shape"])
        x = np.stack(xs).astype(np.float32) if xs else np.zeros((0,) + shape, np.float32)
        self._val = (number, x, np.array(ys, dtype=np.int64))
        return self._val[1], self._val[2]

    def _train(self, number: int, progress: Callable[[str], None], stop: Any, gate: Any) -> Tuple[Dict[str, Any], str]:
        from miro_edge.model.checkpoint import save_checkpoint

        state = self.ws.state
        drain = state.cycle["drain"]
        shape = tuple(state.data["input_shape"])
        learner = self.learner(shape)
        label_map = self.ws.labels
        tx, ty = self._cycle_samples(number)
        old = [c for c in sorted(self.store.class_counts()) if c < drain["labels_before"]]
        learner.begin(number)
        callbacks = _control_callbacks(stop, gate, self.frame_gap)
        learner.trainer.callbacks = callbacks
        report = learner.learn(number, tx, ty, old, len(label_map))
        if any(getattr(cb, "stopped", False) for cb in callbacks):
            raise CycleStopped(f"stopped while training cycle {number}; `miro-edge update` resumes it")
        vx, vy = self.validation_set(number)
        class_acc = score_classes(learner.model, vx, vy, label_map)
        val_acc = float(np.mean(list(class_acc.values()))) if class_acc else float("nan")
        ckpt = self.root / "checkpoints" / f"cycle-{number:06d}.pt"
        metrics = {"val_accuracy": val_acc, "val_samples": float(len(vy))}
        fault_point("train:before-checkpoint")
        save_checkpoint(ckpt, learner.model, self.config.train.model, shape, self.config.train.width,
                        {"train": to_dict(self.config.train), "cycle": number}, number, metrics,
                        label_map.to_json(), class_acc)
        produced = {"checkpoint": str(ckpt.relative_to(self.root)), "metrics": metrics, "class_metrics": class_acc,
                    "learner": learner.state(), "report": {
                        "em_size": report.em_size, "sb_size": report.sb_size, "swap_ratio": learner.swap_ratio,
                        "energy_j": report.energy_j, "energy_label": report.energy_label,
                        "energy_source": report.energy_source, "profile_energy_j": report.profile_energy_j,
                        "train_seconds": report.fit.seconds, "sample_passes": report.fit.sample_passes,
                        "swaps_done": report.swaps_done, "profile": report.profile}}
        return produced, f"val accuracy {val_acc:.3f} over {len(class_acc)} classes, EM {report.em_size}, SB {report.sb_size}, {report.energy_j:.1f} J ({report.energy_label})"

    def _export(self, number: int, progress: Callable[[str], None], stop: Any, gate: Any) -> Tuple[Dict[str, Any], str]:
        from miro_edge.export.pipeline import export_checkpoint

        ckpt = self.root / self.ws.state.cycle["checkpoint"]
        vx, _ = self.validation_set(number)
        out = self.root / "exports" / f"cycle-{number:06d}"
        result = export_checkpoint(ckpt, out, self.config.update.target, samples=vx[:64] if len(vx) else None,
                                   engine=self.config.update.engine)
        parity = result.parity
        fault_point("export:after-onnx")
        return ({"export": str(result.onnx.path.relative_to(self.root)),
                 "parity": None if parity is None else parity.as_dict()},
                "{} (parity {})".format(result.onnx.path.relative_to(self.root),
                                         f"passed, max |diff| {parity.max_abs_diff:.2g}" if parity else "off"))

    def _publish(self, number: int, progress: Callable[[str], None], stop: Any, gate: Any) -> Tuple[Dict[str, Any], str]:
        from miro_edge.export.pipeline import publish_model

        cyc = self.ws.state.cycle
        ckpt = self.root / cyc["checkpoint"]
        registry = self.registry()
        digest = sha256_file(ckpt)
        for manifest in registry.versions(include_rejected=True):
            if manifest.artifacts.get("checkpoint.pt", {}).get("sha256") == digest:  # published before a cut
                return _published(manifest.version, manifest.status == "accepted", manifest.reason)
        current = registry.current_version()
        current_classes = None
        if current is not None and "checkpoint.pt" in registry.manifest(current).artifacts:
            from miro_edge.model.checkpoint import model_from_checkpoint, read_checkpoint

            cur_ckpt = registry.artifacts(current)["checkpoint.pt"]
            cur_map = LabelMap.from_json(read_checkpoint(cur_ckpt).get("label_map") or [])
            vx, vy = self.validation_set(number)
            known = np.isin(vy, np.arange(len(cur_map)))
            current_classes = score_classes(model_from_checkpoint(cur_ckpt), vx[known], vy[known], self.ws.labels)
        fault_point("publish:before")
        result = publish_model(registry, self.root / cyc["export"], ckpt, run_parity=False,
                               config={"cycle": number}, task_id=number, current_class_metrics=current_classes)
        fault_point("publish:after-registry")
        return _published(result.version, result.accepted, result.reason)

    # -- the end of a cycle --------------------------------------------------------------------------
    def _finish(self, number: int, resumed: Optional[str]) -> CycleResult:
        state = self.ws.state
        cyc = state.cycle
        rep = cyc["report"]
        result = CycleResult(
            number, int(cyc["drain"]["count"]), list(cyc["drain"]["new_labels"]), self.ws.labels.to_json(),
            float(cyc["metrics"]["val_accuracy"]), dict(cyc["class_metrics"]), int(rep["em_size"]),
            int(rep["sb_size"]), float(rep["swap_ratio"]), float(rep["energy_j"]), str(rep["energy_label"]),
            float(rep["profile_energy_j"]), float(rep["train_seconds"]), int(rep["sample_passes"]),
            int(rep["swaps_done"]), str(cyc["checkpoint"]), cyc.get("version"), bool(cyc.get("accepted")),
            str(cyc.get("reason", "not published (update.publish is false)")),
            resumed)
        self.recorder.write(CycleEvent(**result.as_dict(), energy_source=rep["energy_source"],
                                       profile=rep["profile"]))
        fault_point("finish:after-journal")
        state.data.update({"cycles_done": number + 1, "checkpoint": cyc["checkpoint"], "learner": cyc["learner"],
                           "cycle": None, "last_cycle": result.as_dict()})
        state.save()
        return result


def _counts(store: Any) -> Dict[str, Dict[str, int]]:
    """Records per split and class id (JSON keys: strings) as the store reports them."""
    return {split: {str(c): int(n) for c, n in store.class_counts(split).items()} for split in ("train", "val")}


def _published(version: int, accepted: bool, reason: str) -> Tuple[Dict[str, Any], str]:
    return ({"version": version, "accepted": accepted, "reason": reason},
            "v{:06d} {}: {}".format(version, "current" if accepted else "REJECTED", reason))


def score_classes(model: Any, x: np.ndarray, y: np.ndarray, label_map: LabelMap) -> Dict[str, float]:
    """Accuracy per class on held-out samples, keyed by the user's label (as text)."""
    if len(y) == 0:
        return {}
    from miro_edge.train.trainer import predict

    pred = predict(model, x)
    return {str(label_map.label(int(c))): float((pred[y == c] == c).mean()) for c in np.unique(y)}


def import_training_stack() -> None:
    """Import what a cycle runs (torch, the learner, the controller, the exporter) now: a resident
    daemon pays those seconds of CPU and disk once at start, not inside its first idle window."""
    import miro_edge.export.pipeline  # noqa: F401
    import miro_edge.model.checkpoint  # noqa: F401
    import miro_edge.workspace.control  # noqa: F401
    import miro_edge.workspace.learner  # noqa: F401


def _control_callbacks(stop: Optional[Callable[[], bool]], gate: Any, gap: Any = None) -> List[Any]:
    """Batch-boundary hooks: pause while the live path is busy (``gate``), start each batch between
    two live frames (``gap``, a ``FrameGap``), stop on request."""
    if stop is None and gate is None and gap is None:
        return []
    from miro_edge.workspace.control import BatchControl

    return [BatchControl(stop, gate, gap=gap)]
