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
            "{} failed: the disk holding {} is full ({}); nothing from this call was stored. Free "
            "space or set a quota (quota_bytes / quota_samples) and retry".format(what, path, exc))
    if _is_corrupt(exc) or "decode" in str(exc):
        return CorruptRecordError(
            "{} failed: SQLite reports damage in {} ({}); run `miro-edge store verify {} --repair` to rebuild "
            "the store from the records that survive, or restore it from a backup".format(
                what, path, exc, path.parent if path.suffix else path))
    if _is_readonly(exc):
        return StoreError("{} failed: {} is on read-only media or not writable ({}); open the store read-only "
                          "(readers) or move it to writable storage".format(what, path, exc))
    return StoreError("{} failed on {}: {}".format(what, path, exc))


def _is_readonly(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "readonly" in text or "read-only" in text or "unable to open" in text


def map_read_error(exc: BaseException, path: Path) -> Optional[StoreError]:
    """The store error for an engine or decoding error raised inside a read (None: not one)."""
    if isinstance(exc, sqlite3.Error):
        return map_error(exc, path, "reading")
    if isinstance(exc, UnicodeDecodeError):
        return CorruptRecordError("reading failed: {} holds text that is not UTF-8 ({}); the file is damaged. Run "
                                  "`miro-edge store verify {} --repair` to rebuild the store from the records that "
                                  "survive, or restore it from a backup".format(path, exc, path.parent))
    return None


def map_os_error(exc: OSError, path: Path, what: str) -> StoreError:
    """The same for a failed file operation: a full disk is ``StoreFullError``."""
    code = getattr(exc, "errno", None)
    if code == errno.ENOSPC:
        return StoreFullError("{} failed: no space left on the disk holding {} ({}); nothing from this call was "
                              "stored. Free space or set a quota and retry".format(what, path, exc))
    if code in (errno.EROFS, errno.EACCES, errno.EPERM):
        return StoreError("{} failed: {} is not writable ({}); nothing from this call was stored. Make it "
                          "writable, move the store to writable storage, or open it read-only to read it".format(
                              what, path, exc.strerror or exc))
    return StoreError("{} failed on {}: {}".format(what, path, exc))
