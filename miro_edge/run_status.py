"""What a run directory holds: tasks done, their accuracies and energy, the store's contents and
the controller's latest choice. Read-only; ``miro-edge status`` prints it."""
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

from miro_edge.errors import InputError
from miro_edge.recorder import read_events


@dataclass(frozen=True)
class RunStatus:
    run_dir: str
    tasks_done: List[int]
    last_accuracies: List[float]
    average_accuracy: Optional[float]
    energy_j: float
    energy_label: Optional[str]
    last_choice: Optional[Dict[str, Any]]
    store_records: Optional[int]
    store_class_counts: Dict[int, int]
    finished: bool


def run_status(run_dir: Union[str, Path]) -> RunStatus:
    run = Path(run_dir)
    results = run / "results.jsonl"
    if not results.is_file():
        raise InputError("{} is not a miro_edge run directory (no results.jsonl); pass the out_dir of a run"
                         .format(run))
    events = list(read_events(results))
    tasks = [e for e in events if e["kind"] == "task"]
    choices = [e for e in events if e["kind"] == "choice"]
    records, counts = None, {}  # type: Optional[int], Dict[int, int]
    if (run / "store").is_dir():
        from miro_edge.memory.store import SampleStore
        with SampleStore(run / "store", create=False) as store:
            records, counts = len(store), store.class_counts()
    return RunStatus(str(run), [e["task_id"] for e in tasks], tasks[-1]["accuracies"] if tasks else [],
                     tasks[-1]["average_accuracy"] if tasks else None,
                     sum(e.get("energy_j", 0.0) + e.get("profile_energy_j", 0.0) for e in tasks),
                     tasks[-1].get("energy_label") if tasks else None, choices[-1] if choices else None,
                     records, counts, any(e["kind"] == "session_end" for e in events))
