"""``state.json``: where the device's learning stands, rewritten atomically after every step.

It says how many update cycles completed, which checkpoint and EM the learner resumes from, and,
for the cycle in progress, the last step that finished and what it produced. A cycle cut at any
instant resumes after its last finished step, and nothing is ingested or published twice.
"""
import json
from pathlib import Path
from typing import Any, Dict, Optional

from miro_edge.errors import InputError
from miro_edge.utils.atomic import atomic_write_json

FORMAT = 1
STEPS = ("drained", "trained", "exported", "published")  # the order a cycle's steps finish in


class WorkspaceState:
    """The document and its atomic saves; callers mutate ``data`` and ``save()``."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.data: Dict[str, Any] = {"format_version": FORMAT, "cycles_done": 0, "next_id": 0, "checkpoint": None,
                     "learner": {}, "cycle": None, "published": []}

    def load(self) -> "WorkspaceState":
        if self.path.is_file():
            try:
                data = json.loads(self.path.read_text())
            except (OSError, ValueError) as exc:
                raise InputError(f"{self.path} is unreadable ({exc}); restore it from a backup, or move the workspace "
                                 "away and `miro-edge init` a new one") from None
            if data.get("format_version") != FORMAT:
                raise InputError("{} has format {}, this miro_edge reads {}".format(
                    self.path, data.get("format_version"), FORMAT))
            self.data.update(data)
        return self

    def save(self) -> None:
        atomic_write_json(self.path, self.data, perms=0o644)

    @property
    def cycle(self) -> Optional[Dict[str, Any]]:
        return self.data.get("cycle")

    @property
    def cycles_done(self) -> int:
        return int(self.data.get("cycles_done", 0))

    def step_done(self, step: str) -> bool:
        """Whether the cycle in progress finished ``step`` already."""
        cyc = self.cycle
        return cyc is not None and cyc.get("step") in STEPS and STEPS.index(cyc["step"]) >= STEPS.index(step)

    def finish_step(self, step: str, **produced: Any) -> None:
        cyc = self.cycle
        assert cyc is not None
        cyc.update(produced)
        cyc["step"] = step
        self.save()
