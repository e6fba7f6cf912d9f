"""Samples waiting to be learnt: an append-only, durable inbox of small ``.npz`` files.

Any process may ingest (the app, ``miro-edge ingest``, the serving process's live feedback)
without being the workspace's writer: each batch is written to a temp file, fsynced, renamed
into ``inbox/`` and the directory fsynced, so it is either wholly there or absent after a power
cut. The update cycle, the one writer, drains the inbox into the store in one durable
transaction and only then deletes the files; the labels are the user's own (ints or strings)
and get their class ids when drained, in arrival order.
"""
import json
import os
import time
from pathlib import Path
from typing import Any, Iterator, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from miro_edge.errors import InputError
from miro_edge.model.label_map import Label, check_label
from miro_edge.utils.atomic import fsync_dir

SUFFIX = ".npz"
_counter = [0]


class InboxBatch(NamedTuple):
    name: str
    x: np.ndarray
    labels: List[Label]
    source: str


def validate_samples(x: Any, labels: Sequence[Any], input_shape: Optional[Sequence[int]],
                     where: str = "sample", allow_nonfinite: bool = False,
                     first_index: int = 0) -> Tuple[np.ndarray, List[Label]]:
    """Check a batch before anything is written: one label per sample, shape, dtype, finite
    values, non-empty labels. Errors name the sample's index (or the ``where`` the caller gives)."""
    try:
        arr = np.asarray(x)
    except Exception as exc:
        raise InputError(f"samples cannot be read as an array: {exc}") from None
    if arr.dtype == object or arr.dtype.kind not in "fiub":
        raise InputError(f"samples must be numeric arrays, got dtype {arr.dtype}")
    labels = list(labels)
    if arr.ndim < 2:
        raise InputError(f"samples must be an array of shape (n, *sample_shape), got shape {arr.shape}")
    if len(labels) != len(arr):
        raise InputError(f"got {len(arr)} samples but {len(labels)} labels; pass one label per sample")
    if len(arr) == 0:
        raise InputError("no samples to ingest")
    if input_shape is not None and tuple(arr.shape[1:]) != tuple(input_shape):
        raise InputError(f"{where}s {first_index}..{first_index + len(arr) - 1} have shape {tuple(arr.shape[1:])} but this workspace takes samples of shape {tuple(input_shape)}")
    arr = arr.astype(np.float32, copy=False)
    if not allow_nonfinite:
        bad = np.flatnonzero(~np.isfinite(arr.reshape(len(arr), -1)).all(axis=1))
        if len(bad):
            raise InputError(f"{where} {first_index + int(bad[0])} contains NaN or inf ({len(bad)} such samples); nothing was ingested")
    checked = [check_label(lab, f"{where} {first_index + i}") for i, lab in enumerate(labels)]
    return arr, checked


class Inbox:
    """``inbox/`` of a workspace."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def put(self, x: np.ndarray, labels: Sequence[Label], source: str = "api", name: Optional[str] = None) -> str:
        """Write one validated batch durably; returns its file name. A caller that must queue a
        batch at most once names it (``name``): the name is the batch's identity."""
        self.path.mkdir(parents=True, exist_ok=True)
        _counter[0] += 1
        if name is None:
            name = f"{time.time_ns():020d}-{os.getpid():07d}-{_counter[0]:06d}{SUFFIX}"
        elif not name.endswith(SUFFIX) or "/" in name or name.startswith("."):
            raise InputError(f"inbox batch name {name!r} must be a plain file name ending in {SUFFIX}")
        tmp = self.path / f".{name}.{os.getpid()}.tmp"
        try:
            with open(str(tmp), "wb") as handle:
                np.savez(handle, x=np.ascontiguousarray(x, dtype=np.float32),
                         labels=np.array(json.dumps(list(labels))), source=np.array(source))
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:  # a full disk: nothing queued; say which file (the CLI prints one line)
            if tmp.exists():
                tmp.unlink()
            raise OSError(exc.errno, exc.strerror or str(exc), str(self.path / name)) from exc
        os.rename(str(tmp), str(self.path / name))
        fsync_dir(self.path)
        return name

    def names(self) -> List[str]:
        """Waiting batches, oldest first (names sort by arrival time)."""
        if not self.path.is_dir():
            return []
        return sorted(p.name for p in self.path.iterdir() if p.name.endswith(SUFFIX) and not p.name.startswith("."))

    def read(self, name: str) -> InboxBatch:
        path = self.path / name
        try:
            with np.load(str(path), allow_pickle=False) as data:
                x = np.array(data["x"], dtype=np.float32)
                labels = json.loads(str(data["labels"]))
                source = str(data["source"])
        except Exception as exc:
            raise InputError(f"inbox file {path} is unreadable ({exc}); move it away to continue") from None
        return InboxBatch(name, x, [check_label(v, f"{path} entry {i}") for i, v in enumerate(labels)],
                          source)

    def batches(self, names: Optional[Sequence[str]] = None) -> Iterator[InboxBatch]:
        for name in (self.names() if names is None else names):
            yield self.read(name)

    def waiting(self) -> Tuple[int, List[Label]]:
        """(samples waiting, their labels), reading only the labels (the daemon asks every poll)."""
        labels: List[Label] = []
        for name in self.names():
            path = self.path / name
            try:
                with np.load(str(path), allow_pickle=False) as data:  # an .npz loads each array on access
                    labels.extend(json.loads(str(data["labels"])))
            except Exception as exc:
                raise InputError(f"inbox file {path} is unreadable ({exc}); move it away to continue") from None
        return len(labels), labels

    def remove(self, names: Sequence[str]) -> None:
        for name in names:
            try:
                (self.path / name).unlink()
            except FileNotFoundError:
                pass
        if names and self.path.is_dir():
            fsync_dir(self.path)

    def clean_temporaries(self) -> int:
        """Delete temp files of writers that died before their rename (their pid is gone)."""
        removed = 0
        if not self.path.is_dir():
            return 0
        for p in self.path.iterdir():
            if p.name.startswith(".") and p.name.endswith(".tmp"):
                try:
                    pid = int(p.name.rsplit(".", 2)[-2])
                except ValueError:
                    pid = -1
                if pid > 0 and _alive(pid):
                    continue
                try:
                    p.unlink()
                    removed += 1
                except OSError:
                    pass
        return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
