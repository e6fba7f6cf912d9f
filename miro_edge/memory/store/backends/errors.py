"""Engine and OS errors as the store's exception family: each names the file and the fix.

Used by every SQLite-indexed backend (``sqlite``, ``slots``): a full disk is ``StoreFullError``;
a malformed database, a damaged schema or a text column that is not UTF-8 is
``CorruptRecordError`` pointing at ``miro-edge store verify DIR --repair``; a read-only or
forbidden path says so.
"""
import errno
import sqlite3
from pathlib import Path
from typing import Optional

from miro_edge.errors import CorruptRecordError, StoreError, StoreFullError

_SQLITE_CORRUPT, _SQLITE_FULL, _SQLITE_NOTADB = 11, 13, 26


def _code(exc: BaseException) -> Optional[int]:
    code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+
    return None if code is None else int(code) & 0xFF


def _is_full(exc: BaseException) -> bool:
    return _code(exc) == _SQLITE_FULL or "disk is full" in str(exc)


def _is_corrupt(exc: BaseException) -> bool:
    text = str(exc)
    return _code(exc) in (_SQLITE_CORRUPT, _SQLITE_NOTADB) or "malformed" in text or "not a database" in text


def map_error(exc: sqlite3.Error, path: Path, what: str) -> StoreError:
    """Turn an engine error into the store's exception family, naming the fix."""
    if _is_full(exc):
        return StoreFullError(
            f"{what} failed: the disk holding {path} is full ({exc}); nothing from this call was stored. Free "
            "space or set a quota (quota_bytes / quota_samples) and retry")
    if _is_corrupt(exc) or "decode" in str(exc):
        return CorruptRecordError(
            f"{what} failed: SQLite reports damage in {path} ({exc}); run `miro-edge store verify {path.parent if path.suffix else path} --repair` to rebuild "
            "the store from the records that survive, or restore it from a backup")
    if _is_readonly(exc):
        return StoreError(f"{what} failed: {path} is on read-only media or not writable ({exc}); open the store read-only "
                          "(readers) or move it to writable storage")
    return StoreError(f"{what} failed on {path}: {exc}")


def _is_readonly(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "readonly" in text or "read-only" in text or "unable to open" in text


def map_read_error(exc: BaseException, path: Path) -> Optional[StoreError]:
    """The store error for an engine or decoding error raised inside a read (None: not one)."""
    if isinstance(exc, sqlite3.Error):
        return map_error(exc, path, "reading")
    if isinstance(exc, UnicodeDecodeError):
        return CorruptRecordError(f"reading failed: {path} holds text that is not UTF-8 ({exc}); the file is damaged. Run "
                                  f"`miro-edge store verify {path.parent} --repair` to rebuild the store from the records that "
                                  "survive, or restore it from a backup")
    return None


def map_os_error(exc: OSError, path: Path, what: str) -> StoreError:
    """The same for a failed file operation: a full disk is ``StoreFullError``."""
    code = getattr(exc, "errno", None)
    if code == errno.ENOSPC:
        return StoreFullError(f"{what} failed: no space left on the disk holding {path} ({exc}); nothing from this call was "
                              "stored. Free space or set a quota and retry")
    if code in (errno.EROFS, errno.EACCES, errno.EPERM):
        return StoreError(f"{what} failed: {path} is not writable ({exc.strerror or exc}); nothing from this call was stored. Make it "
                          "writable, move the store to writable storage, or open it read-only to read it")
    return StoreError(f"{what} failed on {path}: {exc}")
