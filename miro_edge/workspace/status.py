"""``miro-edge status DIR``: what a workspace holds, read-only (no lock; works while the daemon
and the server run). Journal lines are deduplicated by their key (a cycle's number, a task's id),
so a step recorded twice across a kill is counted once."""
import dataclasses
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, TypeVar

from miro_edge.events import CycleEvent, Event, TaskEvent
from miro_edge.model.label_map import LabelMap
from miro_edge.recorder import read_typed
from miro_edge.workspace.inbox import Inbox
from miro_edge.workspace.state import WorkspaceState

E = TypeVar("E", bound=Event)


def latest_by_key(events: Iterable[E], key: str) -> List[E]:
    """The last event per ``key`` value, in key order (a line rewritten after a kill wins)."""
    found: Dict[Any, E] = {}
    for event in events:
        found[getattr(event, key)] = event
    return [found[k] for k in sorted(found)]


def _pick(event: Event, names: Iterable[str]) -> Dict[str, Any]:
    values = dataclasses.asdict(event)
    return {k: values[k] for k in names}


def workspace_status(root: Path) -> Dict[str, Any]:
    root = Path(root)
    state = WorkspaceState(root / "state.json").load().data
    labels = LabelMap.load(root / "labels.json")
    journal = root / "results.jsonl"
    cycles: List[CycleEvent] = []
    tasks: List[TaskEvent] = []
    if journal.is_file():
        events = list(read_typed(journal, CycleEvent, TaskEvent))
        cycles = latest_by_key((e for e in events if isinstance(e, CycleEvent)), "cycle")
        tasks = latest_by_key((e for e in events if isinstance(e, TaskEvent)), "task_id")
    waiting, waiting_labels = Inbox(root / "inbox").waiting()
    per_label: Dict[str, Dict[str, int]] = {}
    store_records: Optional[int] = None
    if (root / "store").is_dir():
        from miro_edge.memory.store import SampleStore

        with SampleStore(root / "store", create=False, read_only=True) as store:  # read-only media too
            store_records = len(store)
            for split in ("train", "val"):
                for cid, count in store.class_counts(split).items():
                    name = str(labels.label(cid)) if cid < len(labels) else f"class {cid}"
                    per_label.setdefault(name, {"train": 0, "val": 0, "waiting": 0})[split] = count
    for label in waiting_labels:
        per_label.setdefault(str(label), {"train": 0, "val": 0, "waiting": 0})["waiting"] += 1
    versions: List[Dict[str, Any]] = []
    current = None
    if (root / "registry").is_dir():
        from miro_edge.registry.model_registry import ModelRegistry

        registry = ModelRegistry(root / "registry")
        current = registry.current_version()
        for m in registry.versions(include_rejected=True):
            versions.append({"version": m.version, "status": "current" if m.version == current else m.status,
                             "reason": m.reason, "cycle": m.task_id, "val_accuracy": m.metrics.get("val_accuracy"),
                             "labels": m.label_map})
    last = cycles[-1] if cycles else None
    energy = sum(c.energy_j + c.profile_energy_j for c in cycles)
    return {
        "workspace": str(root), "labels": labels.to_json(), "samples_per_label": per_label,
        "store_records": store_records, "samples_waiting": waiting, "cycles_done": state.get("cycles_done", 0),
        "cycle_in_progress": state.get("cycle") and {"number": state["cycle"]["number"],
                                                     "step": state["cycle"].get("step")},
        "current_version": current, "versions": versions,
        "last_cycle": None if last is None else _pick(
            last, ("cycle", "val_accuracy", "class_accuracy", "em_size", "sb_size", "swap_ratio", "energy_j",
                   "energy_label", "energy_source", "version", "published", "publish_reason", "new_labels")),
        "energy_j": energy, "energy_label": last.energy_label if last else None,
        "cycles": [_pick(c, ("cycle", "new_samples", "val_accuracy", "version", "published")) for c in cycles],
        "tasks": [_pick(t, ("task_id", "average_accuracy", "em_size", "sb_size", "energy_j")) for t in tasks],
    }
