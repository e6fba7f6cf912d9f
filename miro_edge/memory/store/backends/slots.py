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
import logging
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from miro_edge.errors import CorruptRecordError, StoreError
from miro_edge.memory.store.backends import sqlite as sqlite_backend
from miro_edge.memory.store.backends.base import STORE_BACKENDS
from miro_edge.memory.store.backends.slots_check import SLOT_FILE_CRC, slot_file_crc, slot_file_problems
from miro_edge.memory.store.backends.slots_index import (
    _HDR,
    _RUN,
    INDEX_NAME,
    SLOT_LAYOUT,
    SLOTS_NAME,
    _gen,
    _Index,
    _load_index,
    _Shared,
    _shared_for,
)
from miro_edge.memory.store.backends.slots_read import _SlotRead, _SlotReadTxn
from miro_edge.memory.store.backends.slots_write import _SlotTxn
from miro_edge.memory.store.backends.sqlite import SqliteBackend, _ReadStatements, map_error, map_os_error
from miro_edge.utils.atomic import fsync_dir

logger = logging.getLogger(__name__)

_datasync = getattr(os, "fdatasync", os.fsync)  # fdatasync where the OS has it (Linux); tests patch it
_OPTIONS = dict(sqlite_backend._OPTIONS)
_OPTIONS["cache_kib"] = "SQLite page cache per connection for the index in KiB (default 8192)"
_OPTIONS["max_slot_bytes"] = "cap on the size of slots.bin; used to simulate a full disk in tests"
_OPTIONS["recheck_s"] = ("how long a read may rely on the last check for commits of OTHER processes (default "
                         "0.001 s; 0: check on every read). Commits of this process are seen at once")
_SCHEMA = sqlite_backend.COMMON_SCHEMA + (
    "CREATE TABLE IF NOT EXISTS records(id INTEGER PRIMARY KEY, split INTEGER NOT NULL, "
    "label INTEGER NOT NULL, ord INTEGER NOT NULL, task_id INTEGER NOT NULL, meta BLOB, slot INTEGER NOT NULL)",
    sqlite_backend.CLASS_INDEX,
    "CREATE UNIQUE INDEX IF NOT EXISTS records_by_slot ON records(slot)",  # no two records share a slot
    # freed_gen: the generation whose commit freed the slot (a snapshot older than that still reads it)
    "CREATE TABLE IF NOT EXISTS free_slots(slot INTEGER PRIMARY KEY, freed_gen INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS slot_file(id INTEGER PRIMARY KEY CHECK (id = 0), layout INTEGER NOT NULL, "
    "gen INTEGER NOT NULL, slot_count INTEGER NOT NULL, payload_bytes INTEGER, stride INTEGER)",
    "INSERT OR IGNORE INTO slot_file(id, layout, gen, slot_count, payload_bytes, stride) "
    f"VALUES (0, {SLOT_LAYOUT}, 0, 0, NULL, NULL)",
)


@STORE_BACKENDS.register("slots")
class SlotsBackend(SqliteBackend):
    """SQLite index + fixed-stride ``slots.bin``; reads go through a per-process RAM index."""

    name = "slots"
    db_name = INDEX_NAME
    schema = _SCHEMA
    options_help = _OPTIONS

    def __init__(self, path: Path, create: bool, options: Mapping[str, Any], read_only: bool = False) -> None:
        self._fd = -1
        self._index: Optional[_Index] = None
        self._pub_lock = threading.Lock()  # held from our COMMIT to the new index's publication, and by reloads
        self.index_loads = 0  # how often the RAM index was (re)built; tests read it
        self._slot_layout: Optional[Tuple[int, int]] = None  # (payload bytes, stride), once known
        self._recheck_s = float(options.get("recheck_s", 0.001))
        cap = options.get("max_slot_bytes")
        self._max_slot_bytes = None if cap is None else int(cap)
        super().__init__(path, create, options, read_only)
        self.slots_path = path / SLOTS_NAME
        try:
            layout, slot_count = self._wconn.execute("SELECT layout, slot_count FROM slot_file").fetchone()
            if layout != SLOT_LAYOUT:
                raise StoreError(f"the slot file of {path} has layout {layout}, this miro_edge reads layout {SLOT_LAYOUT}; upgrade "
                                 "miro_edge")
            if not self.slots_path.exists():
                if slot_count:
                    raise StoreError(f"{self.slots_path} is missing but its index references {slot_count} slots; run `miro-edge store verify "
                                     f"{path} --repair` to keep what the index alone holds, or restore the store from a "
                                     "backup")
            if not self.slots_path.exists() and read_only:
                self._shared = _Shared()  # an empty store on read-only media: nothing to read
            else:
                if not self.slots_path.exists():
                    fd = os.open(str(self.slots_path), os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
                    os.fchmod(fd, 0o600)
                    os.fsync(fd)
                    fsync_dir(path)  # the file exists durably before any commit references it
                else:
                    fd = os.open(str(self.slots_path), os.O_RDONLY if read_only else os.O_RDWR)
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

    def _new_txn(self, conn: sqlite3.Connection, writer: bool) -> _ReadStatements:
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
        conn = self.raw_connect()
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
        return CorruptRecordError(f"reading {self.slots_path} failed ({exc}); run SampleStore.verify() to list the damaged "
                                  "records")

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
        conn.execute("INSERT OR REPLACE INTO info(key, value) VALUES (?, ?)",
                     (SLOT_FILE_CRC, slot_file_crc(SLOT_LAYOUT, w.gen + 1, w.slot_count, w.payload_bytes, w.stride)))
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

    def problems(self, deep: bool = False) -> List[str]:
        """The slot-file metadata against its checksum and against the data: slot count, stride,
        file length, and (``deep``) free slots that a record still occupies."""
        try:
            return slot_file_problems(self._wconn, self.slots_path, self._fd, deep)
        except sqlite3.DatabaseError as exc:
            raise map_error(exc, self.db_path, "checking the slot file") from exc

    def close(self) -> None:
        super().close()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self._index = None
