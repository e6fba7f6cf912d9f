"""Crash-safe file writes: temp file in the same directory, fsync, os.replace, fsync dir.

A power cut at any instant leaves either the old file or the new one, never a torn one.
"""
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Union

PathLike = Union[str, "os.PathLike[str]"]


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
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    fsync_dir(target.parent)
    return target


def atomic_write_bytes(path: PathLike, data: bytes, perms: int = 0o600) -> Path:
    return atomic_write(path, lambda f: f.write(data), "wb", perms)


def atomic_write_json(path: PathLike, obj: Any, perms: int = 0o600) -> Path:
    text = json.dumps(obj, indent=2, sort_keys=True, default=str)
    return atomic_write(path, lambda f: f.write(text), "w", perms)
