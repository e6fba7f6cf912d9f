"""Crash-safe file writes: temp file in the same directory, fsync, os.replace, fsync dir.

A power cut at any instant leaves either the old file or the new one, never a torn one.
"""
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, List, Union

PathLike = Union[str, "os.PathLike[str]"]

logger = logging.getLogger(__name__)


def fsync_dir(path: PathLike) -> None:
    """Flush a directory entry so a rename inside it survives a power cut."""
    fd = os.open(str(path), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: PathLike, write: Callable[[Any], None], mode: str = "wb",
                 perms: int = 0o600) -> Path:
    """Write ``path`` atomically; ``write`` receives an open file object."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + target.name + ".", suffix=".tmp", dir=str(target.parent))
    try:
        os.fchmod(fd, perms)
        with os.fdopen(fd, mode) as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, str(target))
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.filename is None:  # say which file could not be written
            raise OSError(exc.errno, exc.strerror or str(exc), str(target)) from exc
        raise
    fsync_dir(target.parent)
    return target


def atomic_write_bytes(path: PathLike, data: bytes, perms: int = 0o600) -> Path:
    return atomic_write(path, lambda f: f.write(data), "wb", perms)


def atomic_write_json(path: PathLike, obj: Any, perms: int = 0o600) -> Path:
    text = json.dumps(obj, indent=2, sort_keys=True, default=str)
    return atomic_write(path, lambda f: f.write(text), "w", perms)


def temp_name_glob(name_glob: str) -> str:
    """The glob of the temporary files ``atomic_write`` leaves behind for targets matching ``name_glob``."""
    return "." + name_glob + ".*.tmp"


def remove_stale_temps(directory: PathLike, name_glob: str) -> List[Path]:
    """Delete temporary files a killed ``atomic_write`` left in ``directory`` for targets matching
    ``name_glob`` (e.g. ``"state.json"``, ``"task-*.pt"``). Only the directory's one writer may call
    this (a concurrent atomic write's temp file would go too). Returns what was removed."""
    folder = Path(directory)
    if not folder.is_dir():
        return []
    removed = []
    for tmp in sorted(folder.glob(temp_name_glob(name_glob))):
        try:
            tmp.unlink()
            removed.append(tmp)
        except FileNotFoundError:
            pass
    if removed:
        logger.info("removed %d temporary file(s) an interrupted write left in %s", len(removed), folder)
    return removed
