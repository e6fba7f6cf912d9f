"""Slot-file backend of the sample store: payloads in one fixed-stride file, the index in SQLite.

Why it exists: with payloads inside a B-tree (``sqlite``, ``lmdb``) every random read walks
pages scattered over the whole database, GBs at 1M records, so reads slow down as the store
grows. Here a read is a lookup in a RAM array and ONE ``os.pread`` at ``slot * stride``.

Files (created 0600): ``slots-index.sqlite3``, SQLite in WAL mode with ``synchronous=FULL``,
holds all transactional state (records without payload but with their slot, the per-class
ordinal index, class counts, info, the free-slot list and a commit generation), and
``slots.bin``, where slot ``k`` lives at byte ``k * stride``: a 40-byte header (record id,
label, task id, CRC32, metadata length, payload length, split), the payload and padding (see
``_stride``). Metadata (JSON, variable length) stays in SQLite.

Durability: a write transaction pwrites payloads only into slots that no committed record
references (slots freed by EARLIER commits, or past the end of the file), fdatasyncs
``slots.bin``, then COMMITs. A commit therefore never references unsynced bytes, and a crash
before COMMIT leaves only unreferenced bytes. Slots a transaction frees (eviction, delete) join
the free list in that same commit, so only a later transaction overwrites them.

Reads: each process keeps a RAM index, per (split, label) an int64 array ordinal ->
``slot << 32 | (record id & 0xFFFFFFFF)`` (8 bytes per record), built at open and swapped for a
new immutable one after each of this process's commits. Commits of other ``SampleStore``
instances of the process are seen at once; those of other processes through SQLite's
``PRAGMA data_version`` (checked at most every ``recheck_s``, 1 ms by default) and the commit
generation, after which the index is reloaded. Every slot read is checked against what the
index says (split, label, the id's low 32 bits); a mismatch (a stale index, a reused slot) is
resolved through SQLite, so a wrong-class record is never served. In one process a lock keeps
readers from reading a slot while a writer overwrites it, and writers do not reuse slots that an
open snapshot may still read; across processes such a torn read fails its CRC and is skipped
(counted as corrupt, never served).
"""
import errno
import itertools
import logging
import os
import sqlite3
import struct
import threading
import time
import weakref
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from miro_edge.errors import CorruptRecordError, StoreError, StoreFullError
from miro_edge.memory import store_sqlite
from miro_edge.memory.store_backend import STORE_BACKENDS, RawRecord, ReadTxn, pad_params
from miro_edge.memory.store_sqlite import SqliteBackend, map_error, map_os_error
from miro_edge.utils.atomic import fsync_dir

logger = logging.getLogger(__name__)

INDEX_NAME = "slots-index.sqlite3"
SLOTS_NAME = "slots.bin"
SLOT_LAYOUT = 1  # version of the slot header format, kept in the slot_file table
# record id, label, task id, crc32, meta length (-1: none), payload length, split; padded to 40 bytes
_HDR = struct.Struct("<qqqIiIB3x")
_PAGE = 4096
_HOLE = -1  # an index entry that points nowhere (only in a damaged store)
_TAG = 0xFFFFFFFF
_MAX_SLOTS = 1 << 31  # slot numbers must fit the high half of an int64 index entry
_RUN = 256  # slots per pwrite call (and per hold of the slot lock)
_datasync = getattr(os, "fdatasync", os.fsync)  # fdatasync where the OS has it (Linux); tests patch it
_OPTIONS = dict(store_sqlite._OPTIONS)
_OPTIONS["cache_kib"] = "SQLite page cache per connection for the index in KiB (default 8192)"
_OPTIONS["max_slot_bytes"] = "cap on the size of slots.bin; used to simulate a full disk in tests"
_OPTIONS["recheck_s"] = ("how long a read may rely on the last check for commits of OTHER processes (default "
                         "0.001 s; 0: check on every read). Commits of this process are seen at once")
_SCHEMA = store_sqlite.COMMON_SCHEMA + (
    "CREATE TABLE IF NOT EXISTS records(id INTEGER PRIMARY KEY, split INTEGER NOT NULL, "
    "label INTEGER NOT NULL, ord INTEGER NOT NULL, task_id INTEGER NOT NULL, meta BLOB, slot INTEGER NOT NULL)",
    store_sqlite.CLASS_INDEX,
    "CREATE UNIQUE INDEX IF NOT EXISTS records_by_slot ON records(slot)",  # no two records share a slot
    # freed_gen: the generation whose commit freed the slot (a snapshot older than that still reads it)
    "CREATE TABLE IF NOT EXISTS free_slots(slot INTEGER PRIMARY KEY, freed_gen INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS slot_file(id INTEGER PRIMARY KEY CHECK (id = 0), layout INTEGER NOT NULL, "
    "gen INTEGER NOT NULL, slot_count INTEGER NOT NULL, payload_bytes INTEGER, stride INTEGER)",
    "INSERT OR IGNORE INTO slot_file(id, layout, gen, slot_count, payload_bytes, stride) "
    "VALUES (0, {}, 0, 0, NULL, NULL)".format(SLOT_LAYOUT),
)
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


class _Shared(object):
    """What every ``SlotsBackend`` of this process shares for one ``slots.bin``: the slot lock
    (readers vs a writer overwriting a reused slot), a count of this process's commits, and the
    generations open snapshots may still read (their slots are not reused meanwhile)."""

    __slots__ = ("lock", "commits", "snaps", "snap_lock", "__weakref__")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.commits = 0
        self.snaps = {}  # type: Dict[int, int]  # generation -> open snapshots reading at or after it
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


_SHARED = weakref.WeakValueDictionary()  # type: weakref.WeakValueDictionary
_SHARED_GUARD = threading.Lock()


def _shared_for(fd: int) -> _Shared:
    st = os.fstat(fd)
    with _SHARED_GUARD:
        got = _SHARED.get((st.st_dev, st.st_ino))
        if got is None:
            got = _Shared()
            _SHARED[(st.st_dev, st.st_ino)] = got
        return got


class _Index(object):
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
        classes = {}  # type: Dict[Tuple[int, int], np.ndarray]
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


class _Work(object):
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
        self.classes = {}  # type: Dict[Tuple[int, int], np.ndarray]
        self.freed = []  # type: List[int]
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


class _SlotTxn(store_sqlite._Txn):
    """Statements of the slots backend over SQLite (the writer's view, reads by id, scans)."""

    def __init__(self, conn: sqlite3.Connection, backend: "SlotsBackend") -> None:
        super().__init__(conn, backend.db_path)
        self.backend = backend
        self.work = None  # type: Optional[_Work]

    # The draw calls take the interface's generic versions here (the reader overrides them).
    counts_for = ReadTxn.counts_for
    records_at = ReadTxn.records_at
    records_at_fractions = ReadTxn.records_at_fractions

    def layout(self) -> Optional[Tuple[int, int]]:
        """(payload bytes, stride) of the slots, or None before the first record."""
        w = self.work
        if w is not None and w.payload_bytes is not None and w.stride is not None:
            return w.payload_bytes, w.stride
        return self.backend._layout(self.conn)

    def rows_by_id(self, ids: Sequence[int]) -> Dict[int, Row]:
        if len(ids) == 1:
            row = self.conn.execute(_ROW_SQL + " WHERE id=?", (int(ids[0]),)).fetchone()
            return {} if row is None else {row[0]: row}
        found = {}  # type: Dict[int, Row]
        for start in range(0, len(ids), 512):
            size, params = pad_params([int(i) for i in ids[start:start + 512]])
            for row in self.conn.execute(_ROW_SQL + " WHERE id IN ({})".format(",".join("?" * size)), params):
                found[row[0]] = row
        return found

    def from_rows(self, rows: Sequence[Row], again: bool = True) -> List[Optional[RawRecord]]:
        """Records of SQLite rows with their slots read (None: the record is gone).

        SQLite is the truth for id, class, task and metadata; the slot header must agree with it
        and gives the CRC, the payload follows. A slot that holds another record id was reused
        after the rows were read: the id is looked up once more. Any other disagreement is damage:
        the record comes back with an empty payload, so ``SampleStore`` counts it as corrupt.
        """
        layout = self.layout()
        if layout is None:  # rows but no slot layout: a damaged index; the records fail their checks
            return [_damaged(r) for r in rows]
        nbytes, stride = layout
        datas = self.backend._pread([r[6] for r in rows], _HDR.size + nbytes, stride)  # not the padding
        out = []  # type: List[Optional[RawRecord]]
        redo = []  # type: List[int]
        end = _HDR.size + nbytes
        for i, (row, data) in enumerate(zip(rows, datas)):
            if len(data) < end:  # the file is shorter than the index says
                out.append(_damaged(row))
                continue
            rid, label, task, crc, _, _, split = _HDR.unpack_from(data)
            if rid != row[0] and again:
                redo.append(i)
                out.append(None)
            elif rid != row[0]:  # still another record: reused after this snapshot began, or a damaged header
                out.append(None if self._reused(row) else _damaged(row))
            elif label != row[2] or task != row[4] or split != row[1]:
                out.append(_damaged(row))
            else:
                out.append(RawRecord(row[0], split, label, row[3], task, crc, row[5], memoryview(data)[_HDR.size:end]))
        if redo:
            fresh = self.rows_by_id([rows[i][0] for i in redo])
            for i in redo:
                row = fresh.get(rows[i][0])
                out[i] = None if row is None else self.from_rows([row], again=False)[0]
        return out

    def _reused(self, row: Row) -> bool:
        """Whether the record of ``row`` has left its slot since (the writer's view: never)."""
        return False

    def records(self, record_ids: Sequence[int]) -> List[Optional[RawRecord]]:
        try:
            found = self.rows_by_id(record_ids)
            rows = [found[int(i)] for i in record_ids if int(i) in found]
            got = {r.record_id: r for r in self.from_rows(rows) if r is not None}
        except sqlite3.DatabaseError as exc:
            raise map_error(exc, self.path, "reading records") from exc
        return [got.get(int(i)) for i in record_ids]

    def scan(self, after_id: int, limit: int) -> List[RawRecord]:
        try:
            rows = self.conn.execute(_ROW_SQL + " WHERE id>? ORDER BY id LIMIT ?",
                                     (int(after_id), int(limit))).fetchall()
            return [r for r in self.from_rows(rows) if r is not None]
        except sqlite3.DatabaseError as exc:
            raise map_error(exc, self.path, "scanning records") from exc

    # ------------------------------------------------------------ writes (the writer's txn only)
    def _w(self) -> _Work:
        w = self.work
        if w is None:
            gen, slot_count, payload_bytes, stride = self.conn.execute(
                "SELECT gen, slot_count, payload_bytes, stride FROM slot_file").fetchone()
            base = self.backend._index
            if base is None or base.gen != gen:  # another process committed since: rebuild
                base = self.backend._load(self.conn, in_txn=True)
            w = self.work = _Work(base, int(gen), int(slot_count), payload_bytes, stride)
        return w

    def _allocate(self, n: int) -> List[int]:
        """``n`` slots no committed record references: the lowest free ones, then the end."""
        w = self._w()
        oldest = self.backend._shared.oldest()  # a snapshot of this process may still read slots freed after it
        if oldest is None:
            cur = self.conn.execute("SELECT slot FROM free_slots ORDER BY slot LIMIT ?", (n,))
        else:
            cur = self.conn.execute("SELECT slot FROM free_slots WHERE freed_gen <= ? ORDER BY slot LIMIT ?",
                                    (oldest, n))
        got = [int(r[0]) for r in cur]
        if got:
            self.conn.executemany("DELETE FROM free_slots WHERE slot=?", [(slot,) for slot in got])
        more = n - len(got)
        if w.slot_count + more > _MAX_SLOTS:
            raise StoreFullError("the slot file of {} is full ({} slots); nothing from this call was stored. Set a "
                                 "quota (quota_samples) so that evicted slots are reused".format(self.path, _MAX_SLOTS))
        got.extend(range(w.slot_count, w.slot_count + more))
        w.slot_count += more
        return got

    def put_records(self, rows: Sequence[RawRecord]) -> None:
        if not rows:
            return
        w = self._w()
        if w.payload_bytes is None or w.stride is None:
            w.payload_bytes = len(rows[0].payload)
            w.stride = _stride(w.payload_bytes)
        nbytes, stride = w.payload_bytes, w.stride
        if any(len(r.payload) != nbytes for r in rows):
            raise StoreError("the slot file of {} holds {}-byte payloads; got other sizes".format(self.path, nbytes))
        slots = self._allocate(len(rows))
        pad = bytes(stride - _HDR.size - nbytes)
        pack = _HDR.pack
        blobs = [b"".join((pack(r.record_id, r.label, r.task_id, r.crc, -1 if r.meta is None else len(r.meta),
                                nbytes, r.split), r.payload, pad)) for r in rows]
        w.wrote = True
        self.backend._pwrite(slots, blobs, stride, w.start_count)
        self.conn.executemany("INSERT INTO records(id, split, label, ord, task_id, meta, slot) VALUES (?,?,?,?,?,?,?)",
                              [(r.record_id, r.split, r.label, r.ord, r.task_id, r.meta, s)
                               for r, s in zip(rows, slots)])
        by_class = {}  # type: Dict[Tuple[int, int], Tuple[List[int], List[int]]]
        for r, s in zip(rows, slots):
            ords, entries = by_class.setdefault((r.split, r.label), ([], []))
            ords.append(r.ord)
            entries.append((s << 32) | (r.record_id & _TAG))
        for key, (ords, entries) in by_class.items():
            arr = w.array(key, max(max(ords) + 1, w.length(key)))  # new records: ordinals after the last
            arr[ords] = entries

    def delete_record(self, record_id: int) -> Optional[RawRecord]:
        row = self.conn.execute(_ROW_SQL + " WHERE id=?", (int(record_id),)).fetchone()
        if row is None:
            return None
        w = self._w()
        rec = self.from_rows([row])[0]
        if rec is None or (w.payload_bytes is not None and len(rec.payload) != w.payload_bytes):
            rec = _damaged(row)._replace(payload=bytes(w.payload_bytes or 0))  # keeps data_bytes exact
        self.conn.execute("DELETE FROM records WHERE id=?", (int(record_id),))
        w.freed.append(int(row[6]))  # reusable once this transaction has committed
        arr = w.array((row[1], row[2]))
        if 0 <= row[3] < len(arr):
            arr[row[3]] = _HOLE
        return rec

    def move(self, record_id: int, split: int, label: int, old_ord: int, new_ord: int) -> None:
        super().move(record_id, split, label, old_ord, new_ord)
        arr = self._w().array((split, label))
        if 0 <= old_ord < len(arr) and 0 <= new_ord < len(arr):
            arr[new_ord] = arr[old_ord]
            arr[old_ord] = _HOLE

    def set_count(self, split: int, label: int, count: int) -> None:
        super().set_count(split, label, count)
        self._w().array((split, label), count)


class _SlotReadTxn(_SlotTxn):
    """A reader thread's statements: the draw calls use the RAM index pinned for this read."""

    def __init__(self, conn: sqlite3.Connection, backend: "SlotsBackend") -> None:
        super().__init__(conn, backend)
        self.idx = None  # type: Optional[_Index]  # pinned by _SlotRead for the duration of one read
        self.seen_version = None  # type: Optional[int]  # PRAGMA data_version when seen_index was checked
        self.seen_index = None  # type: Optional[_Index]
        self.seen_commits = -1  # this process's commit count then
        self.seen_at = 0.0  # and the monotonic time

    def _reused(self, row: Row) -> bool:
        # A snapshot cannot see later commits; another connection can. (Writers of this process
        # never reuse a slot an open snapshot may read; one of another process may.)
        found = self.backend._probe().execute("SELECT 1 FROM records WHERE id=? AND slot=?", (row[0], row[6]))
        return found.fetchone() is None

    def count(self, split: int, label: int) -> int:
        arr = self.idx.classes.get((split, label))  # type: ignore[union-attr]
        return 0 if arr is None else len(arr)

    def counts_for(self, split: int, labels: Sequence[int]) -> Dict[int, int]:
        classes = self.idx.classes  # type: ignore[union-attr]
        out = {}  # type: Dict[int, int]
        for label in labels:
            arr = classes.get((split, label))
            if arr is not None and len(arr):
                out[label] = len(arr)
        return out

    def ids_at(self, split: int, label: int, ords: Sequence[int]) -> List[Optional[int]]:
        arr = self.idx.classes.get((split, label))  # type: ignore[union-attr]
        n = 0 if arr is None else len(arr)
        layout = self.layout()
        entries = [arr.item(o) if 0 <= o < n and layout else _HOLE for o in ords]  # type: ignore[union-attr]
        heads = self.backend._pread([e >> 32 for e in entries if e >= 0], _HDR.size, layout[1]) if layout else []
        out = []  # type: List[Optional[int]]
        it = iter(heads)
        for o, e in zip(ords, entries):
            head = next(it) if e >= 0 else b""
            if len(head) == _HDR.size:
                rid, lab, _, _, _, _, sp = _HDR.unpack(head)
                if lab == label and sp == split and (rid ^ e) & _TAG == 0:
                    out.append(rid)
                    continue
            if 0 <= o < n and self.conn.in_transaction:  # a stale entry or a damaged header: SQLite decides
                # only inside a snapshot: there SQLite's state is the pinned index's. Outside one,
                # SQLite may be newer and hand out a record that another ordinal's entry (pinned at
                # the older state) already names: a duplicate. None makes the caller redo it in one.
                row = self.conn.execute("SELECT id FROM records WHERE split=? AND label=? AND ord=?",
                                        (split, label, int(o))).fetchone()
                out.append(None if row is None else int(row[0]))
            else:
                out.append(None)
        return out

    def records_at(self, split: int, slots: Sequence[Tuple[int, int]]) -> List[RawRecord]:
        return self._read_picks(split, slots, False)

    def records_at_fractions(self, split: int, picks: Sequence[Tuple[int, float]]) -> List[RawRecord]:
        return self._read_picks(split, picks, True)

    def _read_picks(self, split: int, picks: Sequence[Tuple[int, Any]], fractions: bool) -> List[RawRecord]:
        """The hot path: per (label, ord) (or (label, u) with ord = floor(u * count)) one index
        lookup and one pread, checked against the index; all in one loop, it runs per sample."""
        b = self.backend
        layout = b._slot_layout or self.layout()
        if not picks or layout is None:
            return []
        nbytes, stride = layout
        classes = self.idx.classes  # type: ignore[union-attr]
        fd, pread, unpack, new, hs = b._fd, os.pread, _HDR.unpack_from, tuple.__new__, _HDR.size
        end = hs + nbytes
        out = []  # type: List[RawRecord]
        append = out.append
        with_meta = []  # type: List[int]
        stale = []  # type: List[Tuple[int, int]]
        last, arr, n = None, None, 0  # picks come grouped by label: one class lookup per label
        try:
            with b._slot_lock:  # never while a writer of this process overwrites a reused slot
                for label, v in picks:
                    if label != last:
                        last, arr = label, classes.get((split, label))
                        n = 0 if arr is None else len(arr)
                    o = int(v * n) if fractions else int(v)
                    if not 0 <= o < n:
                        continue
                    e = arr.item(o)  # type: ignore[union-attr]
                    data = pread(fd, end, (e >> 32) * stride) if e >= 0 else b""
                    try:
                        rid, lab, task, crc, mlen, _, sp = unpack(data)
                    except struct.error:  # a hole in the index, or past the end of the file
                        stale.append((label, o))
                        continue
                    if lab == label and sp == split and not (rid ^ e) & _TAG:  # the slot holds what the index says
                        if mlen >= 0:
                            with_meta.append(len(out))
                        append(new(RawRecord, (rid, split, label, o, task, crc, None, memoryview(data)[hs:end])))
                    else:
                        stale.append((label, o))
        except OSError as exc:
            raise b._read_error(exc) from exc
        if with_meta or stale:
            self._finish(split, out, with_meta, stale)
        return out

    def _finish(self, split: int, out: List[RawRecord], with_meta: List[int], stale: List[Tuple[int, int]]) -> None:
        """The rare parts of a read: metadata from SQLite, and slots that did not match the index."""
        try:
            if with_meta:  # metadata lives in SQLite; a record evicted meanwhile is left out
                metas = {int(i): m for i, m in self._metas([out[k].record_id for k in with_meta])}
                gone = set()
                for k in with_meta:
                    rid = out[k].record_id
                    if rid in metas:
                        out[k] = out[k]._replace(meta=metas[rid])
                    else:
                        gone.add(k)
                if gone:
                    out[:] = [r for k, r in enumerate(out) if k not in gone]
            if stale and self.conn.in_transaction:  # a stale index, a reused slot or a damaged header: SQLite
                # decides, inside a snapshot only (its state is the pinned index's). Outside one they are
                # left out: mixing a newer state in could serve one record twice; the shortfall makes
                # ``SampleStore.draw`` settle the draw in a snapshot.
                rows = [self.conn.execute(_ROW_SQL + " WHERE split=? AND label=? AND ord=?", (split, lab, o)).fetchone()
                        for lab, o in stale]
                out.extend(r for r in self.from_rows([r for r in rows if r is not None]) if r is not None)
        except sqlite3.DatabaseError as exc:
            raise map_error(exc, self.path, "reading records") from exc

    def _metas(self, ids: List[int]) -> List[Tuple[int, Optional[bytes]]]:
        out = []  # type: List[Tuple[int, Optional[bytes]]]
        for start in range(0, len(ids), 512):
            size, params = pad_params(ids[start:start + 512])
            out.extend(self.conn.execute("SELECT id, meta FROM records WHERE id IN ({})".format(
                ",".join("?" * size)), params))
        return out


class _SlotRead(object):
    """Context manager of one read: pins a RAM index that matches the committed state."""

    __slots__ = ("backend", "txn", "snapshot", "held")

    def __init__(self, backend: "SlotsBackend", txn: _SlotReadTxn, snapshot: bool) -> None:
        self.backend = backend
        self.txn = txn
        self.snapshot = snapshot
        self.held = None  # type: Optional[int]

    def __enter__(self) -> _SlotReadTxn:
        txn, b = self.txn, self.backend
        try:
            if self.snapshot:
                # Before the snapshot starts: a generation no newer than it, so that writers of this
                # process keep the slots it may read (freed by later commits) until it ends.
                idx = b._index
                self.held = idx.gen if idx is not None else 0
                b._shared.hold(self.held)
                txn.idx = b._snapshot_index(txn)
            else:
                txn.idx = b._fresh_index(txn)
        except BaseException as exc:
            self.__exit__()
            if isinstance(exc, sqlite3.DatabaseError):
                raise map_error(exc, b.db_path, "reading the index") from exc
            raise
        return txn

    def __exit__(self, *exc: object) -> None:
        self.txn.idx = None
        if self.held is not None:
            self.backend._shared.release(self.held)
            self.held = None
        if self.txn.conn.in_transaction:
            self.txn.conn.execute("ROLLBACK")


@STORE_BACKENDS.register("slots")
class SlotsBackend(SqliteBackend):
    """SQLite index + fixed-stride ``slots.bin``; reads go through a per-process RAM index."""

    name = "slots"
    db_name = INDEX_NAME
    schema = _SCHEMA
    options_help = _OPTIONS

    def __init__(self, path: Path, create: bool, options: Mapping[str, Any]) -> None:
        self._fd = -1
        self._index = None  # type: Optional[_Index]
        self._pub_lock = threading.Lock()  # held from our COMMIT to the new index's publication, and by reloads
        self.index_loads = 0  # how often the RAM index was (re)built; tests read it
        self._slot_layout = None  # type: Optional[Tuple[int, int]]  # (payload bytes, stride), once known
        self._recheck_s = float(options.get("recheck_s", 0.001))
        cap = options.get("max_slot_bytes")
        self._max_slot_bytes = None if cap is None else int(cap)
        super().__init__(path, create, options)
        self.slots_path = path / SLOTS_NAME
        try:
            layout, slot_count = self._wconn.execute("SELECT layout, slot_count FROM slot_file").fetchone()
            if layout != SLOT_LAYOUT:
                raise StoreError("the slot file of {} has layout {}, this miro_edge reads layout {}; upgrade "
                                 "miro_edge".format(path, layout, SLOT_LAYOUT))
            if not self.slots_path.exists():
                if slot_count:
                    raise StoreError("{} is missing but its index references {} slots; restore the store from a "
                                     "backup".format(self.slots_path, slot_count))
                fd = os.open(str(self.slots_path), os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
                os.fchmod(fd, 0o600)
                os.fsync(fd)
                fsync_dir(path)  # the file exists durably before any commit references it
            else:
                fd = os.open(str(self.slots_path), os.O_RDWR)
            self._fd = fd
            self._shared = _shared_for(fd)  # holding it keeps the shared state alive while open
            self._slot_lock = self._shared.lock
            self._index = self._load_fresh()
        except sqlite3.Error as exc:
            self.close()
            raise map_error(exc, self.db_path, "opening the store") from exc
        except OSError as exc:
            self.close()
            raise map_os_error(exc, self.slots_path, "opening the slot file") from exc
        except BaseException:
            self.close()
            raise

    @classmethod
    def detect(cls, path: Path) -> bool:
        return (path / INDEX_NAME).is_file()

    def _new_txn(self, conn: sqlite3.Connection, writer: bool) -> _SlotTxn:
        return _SlotTxn(conn, self) if writer else _SlotReadTxn(conn, self)

    # ------------------------------------------------------------ the RAM index
    def _load(self, conn: sqlite3.Connection, in_txn: bool) -> _Index:
        idx = _load_index(conn, in_txn)
        self.index_loads += 1
        return idx

    def _probe(self) -> sqlite3.Connection:
        """This thread's second connection: reads the latest state while its reader is in a snapshot."""
        conn = getattr(self._local, "probe", None)
        if conn is None:
            conn = self._local.probe = self._reader_conn()
        return conn

    def _load_fresh(self) -> _Index:
        """Load the latest index over a short-lived connection with a small page cache: the scan
        gains nothing from caching, and a full 8 MiB cache would stay in this process's memory."""
        conn = sqlite3.connect(str(self.db_path), timeout=self._timeout, isolation_level=None)
        try:
            conn.execute("PRAGMA cache_size=-256")
            return self._load(conn, in_txn=False)
        finally:
            conn.close()

    def _layout(self, conn: sqlite3.Connection) -> Optional[Tuple[int, int]]:
        """(payload bytes, stride); fixed once the first record is committed, then cached."""
        if self._slot_layout is None:
            row = conn.execute("SELECT payload_bytes, stride FROM slot_file").fetchone()
            if row is None or row[0] is None or row[1] is None:
                return None
            self._slot_layout = (int(row[0]), int(row[1]))
        return self._slot_layout

    def _index_at_least(self, conn: sqlite3.Connection, gen: int, in_txn: bool) -> _Index:
        """The published index if it is at generation ``gen`` or newer, else a reload."""
        idx = self._index
        if idx is not None and idx.gen >= gen:
            return idx
        with self._pub_lock:  # our own writer holds it between its COMMIT and publishing: wait, do not reload
            idx = self._index
            if idx is not None and idx.gen >= gen:
                return idx
            # another process (or connection) committed
            new = self._load(conn, in_txn=True) if in_txn else self._load_fresh()
            if self._index is None or new.gen > self._index.gen:
                self._index = new
            return new

    def _fresh_index(self, txn: _SlotReadTxn) -> _Index:
        """An index of the latest committed state.

        Commits of this process are seen at once (its commit counter). Commits of other
        processes are found with ``PRAGMA data_version`` (a SQLite read transaction, ~3 us),
        which a thread repeats at most every ``recheck_s`` seconds (default 1 ms)."""
        commits, now = self._shared.commits, time.monotonic()
        if commits == txn.seen_commits and now - txn.seen_at < self._recheck_s and txn.seen_index is not None:
            return txn.seen_index
        version = txn.conn.execute("PRAGMA data_version").fetchone()[0]
        if version == txn.seen_version and txn.seen_index is not None:
            idx = txn.seen_index  # no connection committed since that index was checked
        else:
            idx = self._index_at_least(txn.conn, _gen(txn.conn), in_txn=False)
        txn.seen_version, txn.seen_index, txn.seen_commits, txn.seen_at = version, idx, commits, now
        return idx

    def _snapshot_index(self, txn: _SlotReadTxn) -> _Index:
        """BEGIN a snapshot and return the index of exactly that snapshot."""
        conn = txn.conn
        conn.execute("BEGIN")
        for _ in range(8):
            gen = _gen(conn)  # the snapshot starts with this statement
            idx = self._index_at_least(conn, gen, in_txn=True)
            if idx.gen == gen:
                return idx
            conn.execute("ROLLBACK")  # the published index is newer than this snapshot: take a newer one
            conn.execute("BEGIN")
        return self._load(conn, in_txn=True)  # commits keep racing ahead: an index of this snapshot only

    # ------------------------------------------------------------ the slot file
    def _pread(self, slots: Sequence[int], size: int, stride: int) -> List[bytes]:
        fd, pread = self._fd, os.pread
        try:
            with self._slot_lock:  # never while a writer of this process overwrites a reused slot
                return [pread(fd, size, s * stride) for s in slots]
        except OSError as exc:
            raise self._read_error(exc) from exc

    def _read_error(self, exc: OSError) -> CorruptRecordError:
        return CorruptRecordError("reading {} failed ({}); run SampleStore.verify() to list the damaged "
                                  "records".format(self.slots_path, exc))

    def _pwrite(self, slots: Sequence[int], blobs: Sequence[bytes], stride: int, shared_below: int) -> None:
        """Write slot blobs, one pwrite per run of consecutive slots. Slots below ``shared_below``
        were reused from the free list: stale readers may still look at them, so those are
        written under the slot lock; slots past the old end are unknown to every reader."""
        if self._max_slot_bytes is not None and (max(slots) + 1) * stride > self._max_slot_bytes:
            raise map_os_error(OSError(errno.ENOSPC, "No space left on device (max_slot_bytes)"),
                               self.slots_path, "writing")
        order = sorted(range(len(slots)), key=slots.__getitem__)
        i = 0
        try:
            while i < len(order):
                j = i + 1
                while j < len(order) and j - i < _RUN and slots[order[j]] == slots[order[j - 1]] + 1:
                    j += 1
                first = slots[order[i]]
                data = b"".join(blobs[k] for k in order[i:j])
                if first < shared_below:
                    with self._slot_lock:
                        self._pwrite_all(data, first * stride)
                else:
                    self._pwrite_all(data, first * stride)
                i = j
        except OSError as exc:
            raise map_os_error(exc, self.slots_path, "writing") from exc

    def _pwrite_all(self, data: bytes, offset: int) -> None:
        view = memoryview(data)
        while view:
            done = os.pwrite(self._fd, view, offset)
            if done <= 0:
                raise OSError(errno.ENOSPC, "No space left on device (short write)")
            view, offset = view[done:], offset + done

    # ------------------------------------------------------------ transactions
    def read(self, snapshot: bool = True) -> _SlotRead:  # type: ignore[override]
        return _SlotRead(self, self._reader(), snapshot)  # type: ignore[arg-type]

    def _begin_write(self) -> None:
        self._wtxn.work = None  # type: ignore[attr-defined]

    def _commit(self) -> None:
        """Sync the payloads, then COMMIT, then publish the new index (under the publication lock)."""
        conn = self._wconn
        w = self._wtxn.work  # type: ignore[attr-defined]
        if w is None:  # nothing of the records or slots changed
            conn.execute("COMMIT")
            return
        conn.execute("UPDATE slot_file SET gen=?, slot_count=?, payload_bytes=?, stride=? WHERE id=0",
                     (w.gen + 1, w.slot_count, w.payload_bytes, w.stride))
        if w.freed:
            conn.executemany("INSERT OR IGNORE INTO free_slots(slot, freed_gen) VALUES (?, ?)",
                             [(s, w.gen + 1) for s in w.freed])
        if w.wrote:
            _datasync(self._fd)  # the commit below must never reference bytes that are not on disk
        new = w.result()
        with self._pub_lock:
            conn.execute("COMMIT")
            self._wtxn.work = None  # type: ignore[attr-defined]
            if new is None:
                logger.warning("the class index of %s has holes after a commit; rebuilding it", self.path)
            self._index = new  # None: the next read rebuilds it from the database
            self._shared.bump()  # readers of this process look for the new index now

    def _rollback(self) -> None:
        super()._rollback()
        self._wtxn.work = None  # type: ignore[attr-defined]

    def files(self) -> List[Path]:
        return super().files() + [p for p in (self.path / SLOTS_NAME,) if p.exists()]

    def settings(self) -> Dict[str, Any]:
        layout = self._layout(self._wconn)
        return dict(super().settings(), payload_file=SLOTS_NAME,
                    payload_sync="fdatasync" if _datasync is not os.fsync else "fsync",
                    payload_synced_before_commit=True, slot_header_bytes=_HDR.size,
                    slot_stride=None if layout is None else layout[1])

    def close(self) -> None:
        super().close()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self._index = None
