"""The slots backend's data structures: the slot format, the per-process RAM index and a write's work.

``slots.bin``: slot ``k`` lives at byte ``k * stride``: a 40-byte header (record id, label, task
id, CRC32, metadata length, payload length, split), the payload and padding (see ``_stride``).

The RAM index: per (split, label) an int64 array ordinal -> ``slot << 32 | (record id &
0xFFFFFFFF)`` (8 bytes per record), built at open and replaced by a new immutable one after each
commit of this process (``_Index``); a write transaction changes copy-on-write arrays (``_Work``).
``_Shared`` is what every backend of this process opened on one ``slots.bin`` shares.
"""
import itertools
import os
import sqlite3
import struct
import threading
import weakref
from typing import Dict, List, Optional, Tuple

import numpy as np

from miro_edge.memory.store.backends.base import RawRecord

INDEX_NAME = "slots-index.sqlite3"
SLOTS_NAME = "slots.bin"
SLOT_LAYOUT = 1  # version of the slot header format, kept in the slot_file table
# record id, label, task id, crc32, meta length (-1: none), payload length, split; padded to 40 bytes
_HDR = struct.Struct("<qqqIiIB3s")  # the 3 padding bytes are zero (checked on read)
_PAD = bytes(3)
_PAGE = 4096
_HOLE = -1  # an index entry that points nowhere (only in a damaged store)
_TAG = 0xFFFFFFFF
_MAX_SLOTS = 1 << 31  # slot numbers must fit the high half of an int64 index entry
_RUN = 256  # slots per pwrite call (and per hold of the slot lock)

_ROW_SQL = "SELECT id, split, label, ord, task_id, meta, slot FROM records"
Row = Tuple[int, int, int, int, int, Optional[bytes], int]  # a records row, in _ROW_SQL's order


def _stride(payload_bytes: int) -> int:
    """Bytes per slot, fixed (and stored) with the first record.

    Header + payload rounded up to 8 bytes; a slot of at least 3/4 of a whole number of 4 KiB
    pages is padded to those pages, so that it never straddles one more page than it needs: in
    a file of GBs each page a read touches costs a page-cache lookup that misses the CPU caches.
    (3 KB samples: 4096-byte slots, as much disk as the sqlite backend takes.)
    """
    size = (_HDR.size + payload_bytes + 7) // 8 * 8
    pages = -(-size // _PAGE) * _PAGE
    return pages if 4 * size >= 3 * pages else size


def _damaged(row: Row) -> RawRecord:
    """A record whose slot does not hold it intact: empty payload, so it fails ``SampleStore``'s checks."""
    return RawRecord(row[0], row[1], row[2], row[3], row[4], 0, row[5], b"")


class _Shared:
    """What every ``SlotsBackend`` of this process shares for one ``slots.bin``: the slot lock
    (readers vs a writer overwriting a reused slot), a count of this process's commits, and the
    generations open snapshots may still read (their slots are not reused meanwhile)."""

    __slots__ = ("lock", "commits", "snaps", "snap_lock", "__weakref__")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.commits = 0
        self.snaps: Dict[int, int] = {}  # generation -> open snapshots reading at or after it
        self.snap_lock = threading.Lock()

    def hold(self, gen: int) -> None:
        with self.snap_lock:
            self.snaps[gen] = self.snaps.get(gen, 0) + 1

    def release(self, gen: int) -> None:
        with self.snap_lock:
            left = self.snaps.get(gen, 0) - 1
            if left > 0:
                self.snaps[gen] = left
            else:
                self.snaps.pop(gen, None)

    def oldest(self) -> Optional[int]:
        with self.snap_lock:
            return min(self.snaps) if self.snaps else None

    def bump(self) -> None:
        with self.snap_lock:  # instances of this process may commit from several threads
            self.commits += 1


_SHARED: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
_SHARED_GUARD = threading.Lock()


def _shared_for(fd: int) -> _Shared:
    st = os.fstat(fd)
    with _SHARED_GUARD:
        got = _SHARED.get((st.st_dev, st.st_ino))
        if got is None:
            got = _Shared()
            _SHARED[(st.st_dev, st.st_ino)] = got
        return got


class _Index:
    """An immutable RAM index: commit generation and (split, label) -> read-only entry array."""

    __slots__ = ("gen", "classes")

    def __init__(self, gen: int, classes: Dict[Tuple[int, int], np.ndarray]) -> None:
        self.gen = gen
        self.classes = classes


def _gen(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT gen FROM slot_file").fetchone()[0])


def _load_index(conn: sqlite3.Connection, in_txn: bool) -> _Index:
    """Build the RAM index from the database (one consistent read; O(records))."""
    if not in_txn:
        conn.execute("BEGIN")
    try:
        gen = _gen(conn)
        classes: Dict[Tuple[int, int], np.ndarray] = {}
        for split, label, count in conn.execute("SELECT split, label, count FROM classes WHERE count > 0").fetchall():
            cur = conn.execute("SELECT ord, slot * 4294967296 + (id & 4294967295) FROM records "
                               "WHERE split=? AND label=? ORDER BY ord", (split, label))
            pairs = np.fromiter(itertools.chain.from_iterable(cur), np.int64).reshape(-1, 2)
            ords = pairs[:, 0]
            if len(ords) == count and (count == 0 or (ords[0] == 0 and ords[-1] == count - 1)):
                arr = np.ascontiguousarray(pairs[:, 1])  # the ordinals are 0..count-1 (unique, sorted)
            else:  # a damaged store: place what is there, leave holes
                arr = np.full(count, _HOLE, np.int64)
                ok = (ords >= 0) & (ords < count)
                arr[ords[ok]] = pairs[ok, 1]
            arr.flags.writeable = False
            classes[(int(split), int(label))] = arr
    finally:
        if not in_txn:
            conn.execute("ROLLBACK")
    return _Index(gen, classes)


class _Work:
    """One write transaction's changes: slot-file state and copy-on-write class arrays."""

    __slots__ = ("base", "gen", "slot_count", "start_count", "payload_bytes", "stride", "classes", "freed", "wrote")

    def __init__(self, base: _Index, gen: int, slot_count: int, payload_bytes: Optional[int],
                 stride: Optional[int]) -> None:
        self.base = base
        self.gen = gen
        self.slot_count = slot_count
        self.start_count = slot_count  # slots below it may be read by others: overwrite them under the lock
        self.payload_bytes = payload_bytes
        self.stride = stride
        self.classes: Dict[Tuple[int, int], np.ndarray] = {}
        self.freed: List[int] = []
        self.wrote = False

    def array(self, key: Tuple[int, int], length: Optional[int] = None) -> np.ndarray:
        """This transaction's writable copy of a class array (resized to ``length`` if given)."""
        arr = self.classes.get(key)
        if arr is None:  # first touch: copy the published array (readers keep using that one)
            old = self.base.classes.get(key)
            n_old = 0 if old is None else len(old)
            arr = np.full(n_old if length is None else length, _HOLE, np.int64)
            keep = min(n_old, len(arr))
            if keep:
                arr[:keep] = old[:keep]  # type: ignore[index]
        elif length is not None and length != len(arr):
            arr = arr[:length] if length < len(arr) else \
                np.concatenate([arr, np.full(length - len(arr), _HOLE, np.int64)])
        self.classes[key] = arr
        return arr

    def length(self, key: Tuple[int, int]) -> int:
        arr = self.classes.get(key)
        if arr is None:
            arr = self.base.classes.get(key)
        return 0 if arr is None else len(arr)

    def result(self) -> Optional[_Index]:
        """The index after the commit; None if a class array has holes (then readers reload)."""
        classes = dict(self.base.classes)
        for key, arr in self.classes.items():
            if len(arr) and int(arr.min()) < 0:
                return None
            arr.flags.writeable = False
            if len(arr):
                classes[key] = arr
            else:
                classes.pop(key, None)
        return _Index(self.gen + 1, classes)
