"""``Workspace``: one directory holding a device's whole learning state, one writer at a time.

Layout::

    DIR/
      workspace.yaml    the config (commented YAML, validated on open)
      .writer.lock      flock of the one writer (update, daemon, run); readers never take it
      labels.json       the label map: the user's labels <-> class ids, append-only
      inbox/            samples waiting for the next cycle (any process may add; see ``inbox``)
      store/            every sample ever learnt, with a held-out validation slice (crash-safe)
      state.json        cycles done, the learner's checkpoint and EM, the cycle in progress
      checkpoints/      cycle-NNNNNN.pt (model + label map + validation metrics)
      exports/          cycle-NNNNNN/model.onnx (parity-checked)
      registry/         published versions, CURRENT, rejected candidates
      live/load.json    the serving process's load, read by the daemon's idle policy
      results.jsonl     the journal: one JSON line per step and cycle

Use it as a context manager: ``with Workspace.open(DIR) as ws: ws.ingest(x, labels); ws.update()``.
Opening for writing takes the writer lock; ``Workspace.open(DIR, writer=False)`` and ``ingest``
need none (ingest writes to the inbox, which the writer drains).
"""
import contextlib
import logging
from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence, Union

import numpy as np

from miro_edge.errors import ConfigError, InputError, MiroEdgeError
from miro_edge.events import Event
from miro_edge.model.label_map import Label, LabelMap
from miro_edge.workspace.config import WorkspaceConfig, load_config, write_config
from miro_edge.workspace.inbox import Inbox, validate_samples
from miro_edge.workspace.lock import WriterLock
from miro_edge.workspace.state import WorkspaceState

logger = logging.getLogger(__name__)

CONFIG_NAME = "workspace.yaml"
PathLike = Union[str, Path]
Progress = Callable[[str], None]


class NotAWorkspaceError(InputError):
    """The directory holds no workspace (no workspace.yaml)."""


class Workspace:
    """A device's learning state in one directory."""

    def __init__(self, root: Path, config: WorkspaceConfig, writer: bool, what: str = "writer") -> None:
        self.root = Path(root)
        self.config = config
        self.lock = WriterLock(self.root, what)
        self.writer = writer
        self.inbox = Inbox(self.root / "inbox")
        self.state = WorkspaceState(self.root / "state.json")
        self._stack = contextlib.ExitStack()
        self._cycle: Any = None  # the UpdateCycle machinery, built on first update

    # -- creating and opening ------------------------------------------------------------------------
    @classmethod
    def init(cls, root: PathLike, config: Optional[WorkspaceConfig] = None) -> Path:
        """Create a workspace directory (refuses one that exists with content)."""
        root = Path(root)
        if (root / CONFIG_NAME).exists():
            raise InputError(f"{root} is already a workspace; open it, or pick another directory")
        if root.exists() and any(p.name != ".writer.lock" for p in root.iterdir()):
            raise InputError(f"{root} exists and is not empty; `miro-edge init` needs a new or empty directory")
        root.mkdir(parents=True, exist_ok=True)
        with WriterLock(root, "init"):
            write_config(root / CONFIG_NAME, config or WorkspaceConfig())
            for sub in ("inbox", "checkpoints", "exports", "live"):
                (root / sub).mkdir(exist_ok=True)
            WorkspaceState(root / "state.json").save()
            LabelMap().save(root / "labels.json")
        return root

    @classmethod
    def open(cls, root: PathLike, writer: bool = True, what: str = "writer") -> "Workspace":
        root = Path(root)
        if not (root / CONFIG_NAME).is_file():
            raise NotAWorkspaceError(f"{root} is not a miro_edge workspace (no {CONFIG_NAME}); create one with `miro-edge init "
                                     f"{root}`")
        config = load_config(root / CONFIG_NAME)
        return cls(root, config, writer, what)

    def __enter__(self) -> "Workspace":
        if self.writer:
            self.lock.acquire()
            self._stack.callback(self.lock.release)
            self.inbox.clean_temporaries()
            _clean_temporaries(self.root)
        self.state.load()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._cycle = None
        self._stack.close()

    # -- what the app calls ---------------------------------------------------------------------------
    @property
    def labels(self) -> LabelMap:
        return LabelMap.load(self.root / "labels.json")

    @property
    def input_shape(self) -> Optional[tuple]:
        if self.config.input_shape is not None:
            return tuple(self.config.input_shape)
        return self.state.data.get("input_shape") and tuple(self.state.data["input_shape"])

    def validate(self, x: Any, labels: Sequence[Any], where: str = "sample", first_index: int = 0) -> Any:
        """Check samples against this workspace (see ``ingest``) without queueing them."""
        shape = self.input_shape or _waiting_shape(self.inbox)
        return validate_samples(x, labels, shape, where, self.config.memory.store.allow_nonfinite, first_index)

    def ingest(self, x: Any, labels: Sequence[Any], source: str = "api") -> int:
        """Queue labelled samples durably for the next update cycle; returns how many.

        Any process may call it (no writer lock). Samples are validated first: shape (the
        workspace's input shape, fixed by the config or the first cycle), numeric dtype, finite
        values, one non-empty int or str label each; a bad batch raises InputError naming the
        sample and nothing is queued.
        """
        arr, checked = self.validate(x, labels)
        self.inbox.put(arr, checked, source)
        return len(checked)

    def feedback(self, x: Any, label: Label) -> None:
        """One labelled sample from the live path (the serving process's feedback hook)."""
        self.ingest(np.asarray(x)[None], [label], source="live-feedback")

    def waiting(self) -> int:
        return self.inbox.waiting()[0]

    def update(self, progress: Optional[Progress] = None, stop: Optional[Callable[[], bool]] = None,
               gate: Any = None, accept_store_loss: bool = False, frame_gap: Any = None) -> Any:
        """Run one update cycle (or finish the one a kill interrupted); see ``cycle.UpdateCycle``.
        ``gate`` (an ``IdleGate``) pauses training at a batch boundary while the live path is busy;
        ``frame_gap`` (a ``FrameGap``) starts each batch between two live frames.

        Returns a ``CycleResult``; ``None`` when there was nothing to learn."""
        self._check_writer()
        if self._cycle is None:
            from miro_edge.workspace.cycle import UpdateCycle

            self._cycle = UpdateCycle(self)
        self._cycle.accept_store_loss = accept_store_loss
        self._cycle.frame_gap = frame_gap
        return self._cycle.run(progress or (lambda line: None), stop, gate)

    def write(self, event: Event) -> None:
        """One line in the workspace's journal (``results.jsonl``), through the cycle's recorder."""
        self._check_writer()
        if self._cycle is None:
            from miro_edge.workspace.cycle import UpdateCycle

            self._cycle = UpdateCycle(self)
        self._cycle.recorder.write(event)

    def _check_writer(self) -> None:
        if not (self.writer and self.lock.held):
            raise MiroEdgeError("this Workspace was opened read-only or outside `with`; open it with "
                                "`with Workspace.open(dir) as ws:` to update it")

    def set_config(self, config: WorkspaceConfig) -> None:
        """Replace the config (writer only); the next cycle uses it."""
        self._check_writer()
        if self.config.input_shape is not None and config.input_shape not in (None, self.config.input_shape):
            raise ConfigError(f"input_shape cannot change from {self.config.input_shape} to {config.input_shape} in a workspace that holds samples")
        write_config(self.root / CONFIG_NAME, config)
        self.config = config
        self._cycle = None


def _waiting_shape(inbox: Inbox) -> Optional[tuple]:
    """Before the first cycle fixes the shape, the first batch waiting in the inbox does."""
    names = inbox.names()
    if not names:
        return None
    return tuple(inbox.read(names[0]).x.shape[1:])


def _clean_temporaries(root: Path) -> List[Path]:
    """Leftovers of atomic writes cut by a kill (``.NAME.*.tmp``) in the workspace's own folders."""
    removed = []
    for folder in (root, root / "checkpoints"):  # not live/: the server writes there without the lock
        if not folder.is_dir():
            continue
        for p in folder.iterdir():
            if p.name.startswith(".") and p.name.endswith(".tmp") and p.is_file():
                try:
                    p.unlink()
                    removed.append(p)
                except OSError:
                    pass
    return removed
