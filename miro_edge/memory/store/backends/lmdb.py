"""LMDB backend of the sample store (``pip install 'miro-edge[lmdb]'``; imported lazily).

Durability: the environment is opened with ``sync=True, metasync=True`` (LMDB's defaults), so
every commit flushes the data pages and then the meta page before it returns; LMDB's
copy-on-write B-tree means a power cut leaves the last committed state. Files are created 0600.
The environment reserves ``map_size_bytes`` of address space (not disk); a full map or a full
disk raises ``StoreFullError``.
"""
import errno
import struct
from pathlib import Path
from typing import Any, Dict, List, Literal, Mapping, Optional, Sequence, Tuple

from miro_edge.errors import ConfigError, CorruptRecordError, StoreError, StoreFullError
from miro_edge.memory.store.backends.base import STORE_BACKENDS, RawRecord, StoreBackend, WriteTxn
from miro_edge.utils.atomic import fsync_dir
from miro_edge.utils.optional import require

DATA_NAME = "data.mdb"
_REC = struct.Struct(">Q")  # record id (big-endian so a cursor walks ids in order)
_ORD = struct.Struct(">BqQ")  # split, label, ord -> record id
_CLS = struct.Struct(">Bq")  # split, label -> count
_CNT = struct.Struct("<Q")
_HDR = struct.Struct("<IqqBQi")  # crc, label, task id, split, ord, meta length (-1: no meta)
_OPTIONS = {
    "map_size_bytes": "address space reserved for the database; the file grows up to it (default 1 TiB)",
    "max_readers": "concurrent read transactions across processes (default 126)",
}


def _lmdb() -> Any:
    return require("lmdb", "lmdb", "the LMDB sample-store backend")


def _map_error(exc: BaseException, path: Path, what: str) -> StoreError:
    lmdb = _lmdb()
    text = str(exc)
    if isinstance(exc, lmdb.MapFullError) or getattr(exc, "errno", None) == errno.ENOSPC \
            or "No space left" in text or "MDB_MAP_FULL" in text:
        return StoreFullError(
            f"{what} failed: the store at {path} is full ({exc}); nothing from this call was stored. Free disk "
            "space, raise backend option map_size_bytes, or set a quota (quota_bytes / quota_samples)"
            )
    if isinstance(exc, (lmdb.CorruptedError, lmdb.PageNotFoundError, lmdb.InvalidError)):
        return CorruptRecordError(
            f"{what} failed: LMDB reports damage in {path} ({exc}); restore the store from a backup")
    return StoreError(f"{what} failed on {path}: {exc}")


def _decode(record_id: int, value: bytes) -> RawRecord:
    if len(value) < _HDR.size:
        return RawRecord(record_id, -1, 0, 0, 0, 0, None, b"")  # fails its checksum upstream
    crc, label, task_id, split, ordinal, meta_len = _HDR.unpack_from(value)
    start = _HDR.size + max(meta_len, 0)
    view = memoryview(value)  # slices of a view, not copies: crc32, len and np.frombuffer take them
    meta = None if meta_len < 0 else bytes(view[_HDR.size:start])
    return RawRecord(record_id, split, label, ordinal, task_id, crc, meta, view[start:])


def _encode(rec: RawRecord) -> bytes:
    meta = rec.meta
    head = _HDR.pack(rec.crc, rec.label, rec.task_id, rec.split, rec.ord, -1 if meta is None else len(meta))
    return b"".join((head, meta or b"", rec.payload))


class _Txn(WriteTxn):
    def __init__(self, txn: Any, dbs: Dict[str, Any], path: Path) -> None:
        self.txn = txn
        self.dbs = dbs
        self.path = path

    def info(self) -> Dict[str, str]:
        with self.txn.cursor(self.dbs["info"]) as cur:
            return {bytes(k).decode(): bytes(v).decode() for k, v in cur}

    def counts(self) -> Dict[Tuple[int, int], int]:
        out = {}
        with self.txn.cursor(self.dbs["classes"]) as cur:
            for k, v in cur:
                out[_CLS.unpack(bytes(k))] = _CNT.unpack(bytes(v))[0]
        return out

    def count(self, split: int, label: int) -> int:
        v = self.txn.get(_CLS.pack(split, label), db=self.dbs["classes"])
        return _CNT.unpack(v)[0] if v is not None else 0

    def ids_at(self, split: int, label: int, ords: Sequence[int]) -> List[Optional[int]]:
        db, get = self.dbs["ords"], self.txn.get
        out: List[Optional[int]] = []
        for o in ords:
            v = get(_ORD.pack(split, label, int(o)), db=db)
            out.append(_REC.unpack(v)[0] if v is not None else None)
        return out

    def records(self, record_ids: Sequence[int]) -> List[Optional[RawRecord]]:
        db, get = self.dbs["records"], self.txn.get
        out: List[Optional[RawRecord]] = []
        try:
            for rid in record_ids:
                v = get(_REC.pack(int(rid)), db=db)
                out.append(_decode(int(rid), v) if v is not None else None)
        except _lmdb().Error as exc:
            raise _map_error(exc, self.path, "reading records") from exc
        return out

    def records_at(self, split: int, slots: Sequence[Tuple[int, int]]) -> List[RawRecord]:
        odb, rdb, get = self.dbs["ords"], self.dbs["records"], self.txn.get
        pack, unpack = _ORD.pack, _REC.unpack
        out: List[RawRecord] = []
        try:
            for label, ord_ in slots:
                key = get(pack(split, label, ord_), db=odb)  # the record's key (its packed id)
                if key is not None:
                    v = get(key, db=rdb)
                    if v is not None:
                        out.append(_decode(unpack(key)[0], v))
        except _lmdb().Error as exc:
            raise _map_error(exc, self.path, "reading records") from exc
        return out

    def scan(self, after_id: int, limit: int) -> List[RawRecord]:
        out: List[RawRecord] = []
        try:
            with self.txn.cursor(self.dbs["records"]) as cur:
                if not cur.set_range(_REC.pack(max(0, int(after_id) + 1))):
                    return out
                for k, v in cur:
                    out.append(_decode(_REC.unpack(bytes(k))[0], v))
                    if len(out) >= limit:
                        break
        except _lmdb().Error as exc:
            raise _map_error(exc, self.path, "scanning records") from exc
        return out

    def put_info(self, items: Mapping[str, str]) -> None:
        for k, v in items.items():
            self.txn.put(str(k).encode(), str(v).encode(), db=self.dbs["info"])

    def set_count(self, split: int, label: int, count: int) -> None:
        self.txn.put(_CLS.pack(split, label), _CNT.pack(count), db=self.dbs["classes"])

    def put_records(self, rows: Sequence[RawRecord]) -> None:
        put, rdb, odb = self.txn.put, self.dbs["records"], self.dbs["ords"]
        for rec in rows:
            key = _REC.pack(rec.record_id)
            if not put(key, _encode(rec), db=rdb, overwrite=False):
                raise StoreError(f"record id {rec.record_id} already exists in {self.path}")
            put(_ORD.pack(rec.split, rec.label, rec.ord), key, db=odb)

    def delete_record(self, record_id: int) -> Optional[RawRecord]:
        key = _REC.pack(int(record_id))
        v = self.txn.get(key, db=self.dbs["records"])
        if v is None:
            return None
        rec = _decode(int(record_id), v)
        self.txn.delete(key, db=self.dbs["records"])
        self.txn.delete(_ORD.pack(rec.split, rec.label, rec.ord), db=self.dbs["ords"])
        return rec

    def move(self, record_id: int, split: int, label: int, old_ord: int, new_ord: int) -> None:
        key = _REC.pack(int(record_id))
        v = self.txn.get(key, db=self.dbs["records"])
        if v is None:
            raise StoreError(f"record {record_id} vanished during a move in {self.path}")
        self.txn.put(key, _encode(_decode(int(record_id), v)._replace(ord=int(new_ord))), db=self.dbs["records"])
        self.txn.delete(_ORD.pack(split, label, int(old_ord)), db=self.dbs["ords"])
        self.txn.put(_ORD.pack(split, label, int(new_ord)), key, db=self.dbs["ords"])


class _Read:
    """A read transaction as a context manager (``_Write`` adds commit and error mapping)."""

    __slots__ = ("backend", "txn")

    def __init__(self, backend: "LmdbBackend") -> None:
        self.backend = backend
        self.txn: Any = None

    def __enter__(self) -> _Txn:
        b = self.backend
        if b.env is None:
            raise StoreError(f"the store at {b.path} is closed")
        self.txn = self._begin(b)
        return _Txn(self.txn, b.dbs, b.path)

    def _begin(self, b: "LmdbBackend") -> Any:
        # buffers=True: values are views of the map, valid until the transaction ends;
        # SampleStore decodes (and copies) records inside the ``with`` block.
        return b.env.begin(write=False, buffers=True)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        self.txn.abort()
        if isinstance(exc, _lmdb().Error):
            raise _map_error(exc, self.backend.path, "reading") from exc
        if isinstance(exc, UnicodeDecodeError):
            raise CorruptRecordError(f"reading failed: the info table of {self.backend.path} holds text that is not UTF-8 ({exc}); run "
                                     f"`miro-edge store verify {self.backend.path} --repair` or restore the store from a backup") from exc


class _Write(_Read):
    __slots__ = ()

    def _begin(self, b: "LmdbBackend") -> Any:
        try:
            return b.env.begin(write=True, buffers=False)
        except _lmdb().Error as exc:
            raise _map_error(exc, b.path, "starting a write") from exc

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Literal[False]:
        lmdb = _lmdb()
        b = self.backend
        if exc_type is None:
            try:
                self.txn.commit()
            except lmdb.Error as commit_exc:
                self.txn.abort()
                raise _map_error(commit_exc, b.path, "committing") from commit_exc
            if not b._dir_synced:
                fsync_dir(b.path)
                b._dir_synced = True
            return False
        self.txn.abort()
        if isinstance(exc, lmdb.Error) or (isinstance(exc, OSError) and exc.errno == errno.ENOSPC):
            raise _map_error(exc, b.path, "writing") from exc
        return False


@STORE_BACKENDS.register("lmdb")
class LmdbBackend(StoreBackend):
    """One LMDB environment (a directory with data.mdb and lock.mdb) with four named databases."""

    name = "lmdb"

    @classmethod
    def detect(cls, path: Path) -> bool:
        return (path / DATA_NAME).is_file()

    def __init__(self, path: Path, create: bool, options: Mapping[str, Any], read_only: bool = False) -> None:
        unknown = sorted(set(options) - set(_OPTIONS))
        if unknown:
            raise ConfigError("unknown lmdb store option(s) {}; known: {}".format(
                ", ".join(unknown), "; ".join(f"{k} ({v})" for k, v in sorted(_OPTIONS.items()))))
        lmdb = _lmdb()
        self.path = path
        self.env: Any = None
        self._dir_synced = False
        self.read_only = read_only
        if not (path / DATA_NAME).exists() and (read_only or not create):
            raise StoreError(f"no LMDB store at {path}; pass create=True to make one")
        try:
            self.env = self._open_env(lmdb, path, create, options, lock=True)
            names = ("info", "classes", "records", "ords")
            if read_only:  # handles opened outside a transaction: valid for every later read
                self.dbs = {name: self.env.open_db(name.encode(), create=False) for name in names}
            else:
                with self.env.begin(write=True) as txn:
                    self.dbs = {name: self.env.open_db(name.encode(), txn=txn) for name in names}
        except lmdb.Error as exc:
            self.close()
            raise _map_error(exc, path, "opening the store") from exc

    def _open_env(self, lmdb: Any, path: Path, create: bool, options: Mapping[str, Any], lock: bool) -> Any:
        try:
            return lmdb.open(str(path), map_size=int(options.get("map_size_bytes", 1 << 40)), subdir=True,
                             sync=True, metasync=True, map_async=False, writemap=False, readahead=False,
                             meminit=False, lock=lock, create=create and not self.read_only, mode=0o600, max_dbs=4,
                             max_readers=int(options.get("max_readers", 126)), readonly=self.read_only)
        except lmdb.Error as exc:  # read-only media: the lock file cannot be opened for writing
            if self.read_only and lock and getattr(exc, "errno", None) in (errno.EROFS, errno.EACCES):
                return self._open_env(lmdb, path, create, options, lock=False)
            raise

    def read(self, snapshot: bool = True) -> _Read:
        return _Read(self)

    def write(self) -> _Write:
        if self.read_only:
            raise StoreError(f"the store at {self.path} is open read-only; open it without read_only to write")
        return _Write(self)

    def files(self) -> List[Path]:
        return [p for p in (self.path / DATA_NAME, self.path / "lock.mdb") if p.exists()]

    def settings(self) -> Dict[str, Any]:
        flags = self.env.flags()
        return {"sync": flags.get("sync"), "metasync": flags.get("metasync"), "map_async": flags.get("map_async"),
                "writemap": flags.get("writemap"), "map_size_bytes": self.env.info()["map_size"],
                "lmdb_version": ".".join(str(v) for v in _lmdb().version())}

    def close(self) -> None:
        if self.env is not None:
            self.env.close()
            self.env = None
