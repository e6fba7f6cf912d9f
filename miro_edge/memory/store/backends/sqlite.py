"""SQLite backend of the sample store (stdlib ``sqlite3``; no extra dependency).

Durability: WAL journal with ``synchronous=FULL``, so every COMMIT fsyncs the WAL before it
returns (with ``NORMAL`` a power cut could roll back the last commits). The database file is
created 0600 before SQLite opens it; SQLite gives its ``-wal`` and ``-shm`` files the same mode.
"""
import errno
import logging
import os
import sqlite3
import threading
import urllib.parse
from pathlib import Path
from typing import Any, Dict, List, Literal, Mapping, Optional, Sequence, Tuple, cast

from miro_edge.errors import ConfigError, StoreError
from miro_edge.memory.store.backends.base import (
    STORE_BACKENDS,
    RawRecord,
    ReadTxn,
    StoreBackend,
    WriteTxn,
    pad_params,
)
from miro_edge.memory.store.backends.errors import map_error, map_os_error, map_read_error
from miro_edge.utils.atomic import fsync_dir

logger = logging.getLogger(__name__)

DB_NAME = "samples.sqlite3"
_COLS = "id, split, label, ord, task_id, crc, meta, payload"
_OPTIONS: Dict[str, str] = {
    "cache_kib": "page cache per connection in KiB (default 8192)",
    "mmap_bytes": "bytes of the file SQLite may memory-map for reads (default 0: off)",
    "busy_timeout_s": "seconds to wait for another process's write lock (default 30)",
    "max_page_count": "cap on database pages; used to simulate a full disk in tests",
}
CLASS_INDEX = "CREATE UNIQUE INDEX IF NOT EXISTS records_by_class ON records(split, label, ord)"
COMMON_SCHEMA = (  # the tables every SQLite-indexed backend shares
    "CREATE TABLE IF NOT EXISTS info(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS classes(split INTEGER NOT NULL, label INTEGER NOT NULL, "
    "count INTEGER NOT NULL, PRIMARY KEY(split, label)) WITHOUT ROWID",
)
_SCHEMA = COMMON_SCHEMA + (
    "CREATE TABLE IF NOT EXISTS records(id INTEGER PRIMARY KEY, split INTEGER NOT NULL, "
    "label INTEGER NOT NULL, ord INTEGER NOT NULL, task_id INTEGER NOT NULL, crc INTEGER NOT NULL, "
    "meta BLOB, payload BLOB NOT NULL)",
    CLASS_INDEX,
)


_row = RawRecord._make  # sqlite3 returns int / bytes / None, the types RawRecord holds
_SLOT_SIZES = (8, 16, 32, 64, 128, 256, 512)  # padded lengths of a draw statement: few shapes, cache hot
_REC_COLS = "r.id, r.split, r.label, r.ord, r.task_id, r.crc, r.meta, r.payload"
# CROSS JOIN keeps the VALUES list as the outer loop: per slot one probe of records_by_class, which
# stores the rowid, then the row. A slot padded with ordinal (or fraction) -1 matches no row.
_AT_SQL = {size: "SELECT {} FROM (VALUES {}) AS v CROSS JOIN records AS r ON r.split=? AND r.label=v.column1 "
                 "AND r.ord=v.column2".format(_REC_COLS, ",".join(["(?,?)"] * size)) for size in _SLOT_SIZES}
# The same with the class count read in the statement (one consistent read, no snapshot needed):
# ord = CAST(u * count AS INTEGER), the same IEEE double product and truncation as Python's int(u * count).
_FRACTION_SQL = {size: "SELECT {} FROM (VALUES {}) AS v CROSS JOIN classes AS c ON c.split=? AND "
                       "c.label=v.column1 CROSS JOIN records AS r ON r.split=c.split AND r.label=c.label AND "
                       "r.ord=CAST(v.column2 * c.count AS INTEGER)".format(_REC_COLS, ",".join(["(?,?)"] * size))
                 for size in _SLOT_SIZES}


class _ReadStatements(ReadTxn):
    """Read statements over one connection; the backend opens and closes the transaction around it."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path

    def info(self) -> Dict[str, str]:
        return {str(k): str(v) for k, v in self.conn.execute("SELECT key, value FROM info")}

    def counts(self) -> Dict[Tuple[int, int], int]:
        return {(int(s), int(lab)): int(c) for s, lab, c in self.conn.execute("SELECT split, label, count FROM classes")}

    def count(self, split: int, label: int) -> int:
        row = self.conn.execute("SELECT count FROM classes WHERE split=? AND label=?", (split, label)).fetchone()
        return int(row[0]) if row else 0

    def ids_at(self, split: int, label: int, ords: Sequence[int]) -> List[Optional[int]]:
        if len(ords) == 1:
            row = self.conn.execute("SELECT id FROM records WHERE split=? AND label=? AND ord=?",
                                    (split, label, int(ords[0]))).fetchone()
            return [int(row[0]) if row else None]
        found: Dict[int, int] = {}
        for start in range(0, len(ords), 512):
            size, params = pad_params([int(o) for o in ords[start:start + 512]])
            sql = "SELECT ord, id FROM records WHERE split=? AND label=? AND ord IN ({})".format(
                ",".join("?" * size))
            found.update((int(o), int(i)) for o, i in self.conn.execute(sql, [split, label] + params))
        return [found.get(int(o)) for o in ords]

    def records(self, record_ids: Sequence[int]) -> List[Optional[RawRecord]]:
        try:
            if len(record_ids) == 1:
                row = self.conn.execute(f"SELECT {_COLS} FROM records WHERE id=?",
                                        (int(record_ids[0]),)).fetchone()
                return [_row(row) if row else None]
            found: Dict[int, RawRecord] = {}
            for start in range(0, len(record_ids), 512):
                size, params = pad_params([int(i) for i in record_ids[start:start + 512]])
                sql = "SELECT {} FROM records WHERE id IN ({})".format(_COLS, ",".join("?" * size))
                for row in self.conn.execute(sql, params):
                    rec = _row(row)
                    found[rec.record_id] = rec
            return [found.get(int(i)) for i in record_ids]
        except sqlite3.DatabaseError as exc:
            raise map_error(exc, self.path, "reading records") from exc

    def records_at(self, split: int, slots: Sequence[Tuple[int, int]]) -> List[RawRecord]:
        return self._slot_query(_AT_SQL, split, slots, -1)

    def records_at_fractions(self, split: int, picks: Sequence[Tuple[int, float]]) -> List[RawRecord]:
        return self._slot_query(_FRACTION_SQL, split, picks, -1.0)

    def _slot_query(self, sqls: Dict[int, str], split: int, slots: Sequence[Tuple[int, Any]],
                    pad: object) -> List[RawRecord]:
        out: List[RawRecord] = []
        top = _SLOT_SIZES[-1]
        try:
            for start in range(0, len(slots), top):
                chunk = slots[start:start + top]
                size = next(s for s in _SLOT_SIZES if s >= len(chunk))
                params: List[Any] = [v for slot in chunk for v in slot]
                params += (0, pad) * (size - len(chunk))
                params.append(split)
                out.extend(map(_row, self.conn.execute(sqls[size], params).fetchall()))
        except sqlite3.DatabaseError as exc:
            raise map_error(exc, self.path, "reading records") from exc
        return out

    def max_record_id(self) -> Optional[int]:
        row = self.conn.execute("SELECT MAX(id) FROM records").fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def class_sizes(self) -> Dict[Tuple[int, int], int]:  # an index-only scan of records_by_class
        return {(int(s), int(lab)): int(n) for s, lab, n in
                self.conn.execute("SELECT split, label, COUNT(*) FROM records GROUP BY split, label")}

    def scan(self, after_id: int, limit: int) -> List[RawRecord]:
        try:
            rows = self.conn.execute(f"SELECT {_COLS} FROM records WHERE id>? ORDER BY id LIMIT ?",
                                     (int(after_id), int(limit))).fetchall()
        except sqlite3.DatabaseError as exc:
            raise map_error(exc, self.path, "scanning records") from exc
        return [_row(r) for r in rows]



class _Txn(_ReadStatements, WriteTxn):
    """The writer's statements: the reads above plus the writes."""

    def put_info(self, items: Mapping[str, str]) -> None:
        self.conn.executemany("INSERT OR REPLACE INTO info(key, value) VALUES (?, ?)",
                              [(str(k), str(v)) for k, v in items.items()])

    def set_count(self, split: int, label: int, count: int) -> None:
        self.conn.execute("INSERT OR REPLACE INTO classes(split, label, count) VALUES (?, ?, ?)",
                          (split, label, count))

    def put_records(self, rows: Sequence[RawRecord]) -> None:
        self.conn.executemany(f"INSERT INTO records({_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)

    def delete_record(self, record_id: int) -> Optional[RawRecord]:
        row = self.conn.execute(f"SELECT {_COLS} FROM records WHERE id=?", (int(record_id),)).fetchone()
        if row is None:
            return None
        self.conn.execute("DELETE FROM records WHERE id=?", (int(record_id),))
        return _row(row)

    def move(self, record_id: int, split: int, label: int, old_ord: int, new_ord: int) -> None:
        self.conn.execute("UPDATE records SET ord=? WHERE id=?", (int(new_ord), int(record_id)))


class _Read:
    """Context manager for a read on one thread's connection (optionally a snapshot)."""

    __slots__ = ("txn", "snapshot")

    def __init__(self, txn: _ReadStatements, snapshot: bool) -> None:
        self.txn = txn
        self.snapshot = snapshot

    def __enter__(self) -> _ReadStatements:
        if self.snapshot:
            self.txn.conn.execute("BEGIN")
        return self.txn

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self.txn.conn.in_transaction:
            self.txn.conn.execute("ROLLBACK")
        mapped = None if exc is None else map_read_error(exc, self.txn.path)
        if mapped is not None:
            raise mapped from exc


class _Write:
    __slots__ = ("backend",)

    def __init__(self, backend: "SqliteBackend") -> None:
        self.backend = backend

    def __enter__(self) -> _Txn:
        b = self.backend
        try:
            b._wconn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise map_error(exc, b.db_path, "starting a write") from exc
        b._begin_write()
        return cast(_Txn, b._wtxn)  # write() refused a read-only store, whose _wtxn only reads

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Literal[False]:
        b = self.backend
        if exc_type is None:
            try:
                b._commit()
            except sqlite3.Error as commit_exc:
                b._rollback()
                raise map_error(commit_exc, b.db_path, "committing") from commit_exc
            except OSError as commit_exc:
                b._rollback()
                raise map_os_error(commit_exc, b.path, "committing") from commit_exc
            if not b._dir_synced:  # SQLite syncs the directory for a new WAL too; once more is cheap
                fsync_dir(b.path)
                b._dir_synced = True
            return False
        b._rollback()
        if isinstance(exc, sqlite3.Error):
            raise map_error(exc, b.db_path, "writing") from exc
        if isinstance(exc, OSError) and getattr(exc, "errno", None) == errno.ENOSPC:
            raise map_os_error(exc, b.path, "writing") from exc
        return False


@STORE_BACKENDS.register("sqlite")
class SqliteBackend(StoreBackend):
    """One SQLite database file in WAL mode; one writer connection, one reader per thread.

    The class attributes and the ``_new_txn``/``_begin_write``/``_commit``/``_rollback`` hooks let
    a backend that keeps its index in SQLite (``slots.py``) reuse the connection handling.
    """

    name = "sqlite"
    db_name = DB_NAME
    schema: Tuple[str, ...] = _SCHEMA
    options_help: Mapping[str, str] = _OPTIONS

    @classmethod
    def detect(cls, path: Path) -> bool:
        return (path / cls.db_name).is_file()

    def __init__(self, path: Path, create: bool, options: Mapping[str, Any], read_only: bool = False) -> None:
        unknown = sorted(set(options) - set(self.options_help))
        if unknown:
            raise ConfigError("unknown {} store option(s) {}; known: {}".format(
                self.name, ", ".join(unknown),
                "; ".join(f"{k} ({v})" for k, v in sorted(self.options_help.items()))))
        self.path = path
        self.db_path = path / self.db_name
        self._cache_kib = int(options.get("cache_kib", 8192))
        self._mmap = int(options.get("mmap_bytes", 0))
        self._timeout = float(options.get("busy_timeout_s", 30.0))
        self._dir_synced = False
        self.read_only = read_only
        self._immutable = False  # read-only media without the WAL index file: SQLite reads it as immutable
        if not self.db_path.exists():
            if not create or read_only:
                raise StoreError(f"no SQLite store at {self.db_path}; pass create=True to make one")
            fd = os.open(str(self.db_path), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            try:
                os.fchmod(fd, 0o600)  # SQLite copies this mode to the -wal and -shm files
            finally:
                os.close(fd)
        self._local = threading.local()
        self._readers: List[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._closed = False
        try:
            if read_only:
                self._wconn = self._open_read_only()
                self._wtxn = self._new_txn(self._wconn, False)
                return
            self._wconn = self._connect()
            mode = self._wconn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(f"SQLite refused WAL mode on {self.db_path} (got {mode!r}); the store needs a local "
                                 "filesystem that supports shared memory (not NFS)")
            self._wconn.execute("PRAGMA synchronous=FULL")
            if "max_page_count" in options:
                self._wconn.execute("PRAGMA max_page_count={:d}".format(int(options["max_page_count"])))
            self._wconn.execute("BEGIN IMMEDIATE")
            for stmt in self.schema:
                self._wconn.execute(stmt)
            self._wconn.execute("COMMIT")
        except sqlite3.Error as exc:
            self.close()
            raise map_error(exc, self.db_path, "opening the store") from exc
        self._wtxn = self._new_txn(self._wconn, True)

    def _new_txn(self, conn: sqlite3.Connection, writer: bool) -> _ReadStatements:
        """The statements object over ``conn`` (the writer's, or one reader thread's)."""
        return _Txn(conn, self.db_path) if writer else _ReadStatements(conn, self.db_path)

    def _open_read_only(self) -> sqlite3.Connection:
        """A first read-only connection. A WAL database needs its ``-shm`` index file; on read-only
        media where it is absent (the last writer closed cleanly) SQLite opens it as immutable."""
        conn = None
        try:
            conn = self._connect()
            conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            return conn
        except sqlite3.OperationalError as exc:
            if conn is not None:
                conn.close()
            if Path(str(self.db_path) + "-wal").exists():  # unsynced commits may live there: never skip them
                raise StoreError(f"cannot read {self.db_path} on read-only media: its write-ahead log {self.db_path}-wal holds commits that "
                                 f"need the -shm file SQLite cannot create here ({exc}); open it once where it is "
                                 "writable") from None
            self._immutable = True
            conn = self._connect()
            conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            return conn

    def raw_connect(self, timeout: Optional[float] = None) -> sqlite3.Connection:
        """A plain connection to the database (read-only when the backend is)."""
        if self.read_only:
            uri = "file:{}?mode=ro{}".format(urllib.parse.quote(str(self.db_path)),
                                             "&immutable=1" if self._immutable else "")
            return sqlite3.connect(uri, uri=True, timeout=self._timeout if timeout is None else timeout,
                                   isolation_level=None, check_same_thread=False, cached_statements=64)
        return sqlite3.connect(str(self.db_path), timeout=self._timeout if timeout is None else timeout,
                               isolation_level=None, check_same_thread=False, cached_statements=64)

    def _connect(self) -> sqlite3.Connection:
        conn = self.raw_connect()
        try:
            conn.execute(f"PRAGMA cache_size=-{self._cache_kib:d}")
            if self._mmap:
                conn.execute(f"PRAGMA mmap_size={self._mmap:d}")
        except BaseException:
            conn.close()  # never leak a connection (it would keep the file, and its mount, busy)
            raise
        return conn

    def _reader(self) -> _ReadStatements:
        txn = getattr(self._local, "txn", None)
        if txn is None:
            txn = self._new_txn(self._reader_conn(), False)
            self._local.txn = txn
        return txn

    def _reader_conn(self) -> sqlite3.Connection:
        """A new read-only connection, closed with the backend."""
        if self._closed:
            raise StoreError(f"the store at {self.path} is closed")
        conn = self._connect()
        conn.execute("PRAGMA query_only=ON")
        with self._readers_lock:
            self._readers.append(conn)
        return conn

    def _begin_write(self) -> None:
        """Called right after BEGIN IMMEDIATE (the write lock is held)."""

    def _commit(self) -> None:
        """Make the open write transaction durable (COMMIT fsyncs the WAL)."""
        self._wconn.execute("COMMIT")

    def _rollback(self) -> None:
        if self._wconn.in_transaction:
            try:
                self._wconn.execute("ROLLBACK")
            except sqlite3.Error:  # SQLite may already have rolled back (SQLITE_FULL, IOERR)
                logger.debug("rollback after a failed write reported an error", exc_info=True)

    def read(self, snapshot: bool = True) -> _Read:
        return _Read(self._reader(), snapshot)

    def write(self) -> _Write:
        if self.read_only:
            raise StoreError(f"the store at {self.path} is open read-only; open it without read_only to write")
        return _Write(self)

    def files(self) -> List[Path]:
        return [p for p in (self.db_path, Path(str(self.db_path) + "-wal"), Path(str(self.db_path) + "-shm"))
                if p.exists()]

    def settings(self) -> Dict[str, Any]:
        conn = self._wconn
        return {
            "journal_mode": conn.execute("PRAGMA journal_mode").fetchone()[0],
            "synchronous": {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get(
                conn.execute("PRAGMA synchronous").fetchone()[0]),
            "page_size": conn.execute("PRAGMA page_size").fetchone()[0],
            "sqlite_version": sqlite3.sqlite_version,
        }

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._readers_lock:
            readers, self._readers = self._readers, []
        for conn in readers:
            conn.close()
        wconn = getattr(self, "_wconn", None)
        if wconn is not None:
            wconn.close()  # the last connection to close checkpoints the WAL into the main file
