"""The crash-safe sample store: the disk tier of HEM, holding every sample ever ingested.

``SampleStore`` appends samples (array bytes, integer label, task id, split, optional JSON
metadata) to an embedded transactional database and acknowledges them only after a durable
commit. Each record carries a CRC32 over its id, label, task id, split, metadata and payload;
a record that fails it is never served (``read`` raises, ``read_many`` skips and counts).

Per-class draws are uniform and cost O(log N): every class keeps dense ordinals
``0 .. count-1`` in an index, so a draw is ``count`` random integers and one index probe, and
eviction fills its holes by moving the class's last ordinals into them. Class counts live in
the database. ``draw`` (the swap worker's call) draws and reads records of several labels at once
and decodes them in one pass.

Backends (one module each, registered in ``STORE_BACKENDS``): ``slots`` (the default, chosen with
``benches/store_reads.py``, see docs/store.md: payloads in a fixed-stride file read with one
``pread`` each, index in SQLite, 8 bytes of RAM per record), ``sqlite`` (everything in one SQLite
file, nothing per record in RAM) and ``lmdb`` (extra ``lmdb``).
"""
import dataclasses
import heapq
import json
import logging
import os
import struct
import threading
import time
import zlib
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

import miro_edge
from miro_edge.config import field, require
from miro_edge.errors import ConfigError, CorruptRecordError, InputError, StoreError, StoreFullError
from miro_edge.memory import store_lmdb, store_slots, store_sqlite
from miro_edge.memory.store_backend import (INFO_FORMAT_VERSION, SPLITS, STORE_BACKENDS, RawRecord, ReadTxn,
                                            StoreBackend, WriteTxn, detect_backend)
from miro_edge.memory.types import StoredSample

logger = logging.getLogger(__name__)

BACKEND_MODULES = (store_lmdb, store_slots, store_sqlite)  # importing them registers the backends
FORMAT_VERSION = 1
DEFAULT_BACKEND = "slots"  # decided by benches/store_reads.py; numbers and reasons in docs/store.md
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
_CRC_HEAD = struct.Struct("<qqqB")
_NUMERIC_KINDS = "biufc"
_MAX_CORRUPT_WARNINGS = 20

PathLike = Union[str, "os.PathLike[str]"]


class RecordNotFoundError(StoreError, KeyError):
    """No record has this id (never ingested, or evicted/deleted since)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class StoreVersionError(StoreError):
    """The store was written in a format this version of miro_edge cannot read."""


@dataclasses.dataclass(frozen=True)
class StoreConfig:
    """The ``store`` section of the config (the path is given where the store is opened)."""

    backend: Optional[str] = field(None, help="how the samples are stored: slots, sqlite or lmdb; null: "
                                              "the one already at the path, else slots")
    quota_bytes: Optional[int] = field(None, help="cap on stored sample bytes (payload + metadata); "
                                                  "over it, ingest evicts class-balanced")
    quota_samples: Optional[int] = field(None, help="cap on the number of stored samples; over it, "
                                                    "ingest evicts class-balanced")
    allow_nonfinite: bool = field(False, help="accept float samples containing NaN or inf")

    def __post_init__(self) -> None:
        require(self.backend is None or self.backend in STORE_BACKENDS, "store.backend",
                "unknown backend {!r}; choose one of: {}".format(self.backend, ", ".join(STORE_BACKENDS.names())))
        require(self.quota_bytes is None or self.quota_bytes > 0, "store.quota_bytes", "must be positive or null")
        require(self.quota_samples is None or self.quota_samples > 0, "store.quota_samples",
                "must be positive or null")


@dataclasses.dataclass
class StoreStats:
    """Counters since this ``SampleStore`` was opened (read them via ``store.stats``)."""

    ingested: int = 0
    evicted: int = 0
    records_read: int = 0
    corrupt_skipped: int = 0
    missing_skipped: int = 0


class VerifyReport(NamedTuple):
    """What ``SampleStore.verify`` found; ``ok`` when nothing is wrong."""

    records_checked: int
    corrupt_ids: List[int]
    problems: List[str]

    @property
    def ok(self) -> bool:
        return not self.corrupt_ids and not self.problems


def _split_code(split: object) -> int:
    if split not in SPLITS:
        raise InputError("split must be one of {}, got {!r}".format(", ".join(repr(s) for s in SPLITS), split))
    return SPLITS.index(split)  # type: ignore[arg-type]


def _as_int(value: object, what: str, minimum: int = _INT64_MIN) -> int:
    if type(value) is int and minimum <= value <= _INT64_MAX:  # type: ignore[operator]  # the common case, fast
        return value  # type: ignore[return-value]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise InputError("{} must be an integer (python int or numpy integer), got {!r} of type {}; map class "
                         "names or other values to integer ids before ingesting".format(
                             what, value, type(value).__name__))
    out = int(value)
    if not minimum <= out <= _INT64_MAX:
        raise InputError("{} must be an integer in [{}, 2**63 - 1], got {}".format(what, minimum, out))
    return out


def _as_ints(values: object, what: str) -> List[int]:
    """``_as_int`` over a sequence (or integer array), with one cheap pass when all are plain ints."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "iu" and values.dtype.itemsize <= 8:
        out = values.tolist()
        if values.dtype.kind == "i" or not out or max(out) <= _INT64_MAX:
            return out
    out = list(values)  # type: ignore[call-overload]
    for v in out:
        if type(v) is not int:
            return [_as_int(v, what) for v in out]
    if out and (min(out) < _INT64_MIN or max(out) > _INT64_MAX):
        return [_as_int(v, what) for v in out]
    return out


def _as_array(x: object) -> np.ndarray:
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch tensor, without importing torch
        return x.detach().cpu().numpy()  # type: ignore[attr-defined]
    return np.asarray(x)


def _check_dtype(dtype: object) -> np.dtype:
    try:
        dt = np.dtype(dtype)  # type: ignore[call-overload]
    except TypeError as exc:
        raise InputError("dtype {!r} is not a numpy dtype ({})".format(dtype, exc)) from None
    if dt.kind not in _NUMERIC_KINDS or dt.fields is not None or dt.subdtype is not None:
        raise InputError("the store holds numeric arrays (bool, int, uint, float, complex); dtype {} is not "
                         "one".format(dt))
    return dt


def _meta_bytes(meta: object, index: int) -> Optional[bytes]:
    if meta is None:
        return None
    if not isinstance(meta, Mapping):
        raise InputError("meta of sample {} must be a dict of JSON values or None, got {}".format(
            index, type(meta).__name__))
    try:
        return json.dumps(dict(meta), sort_keys=True, separators=(",", ":"), allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise InputError("meta of sample {} is not JSON-serialisable ({}); use str/int/float/bool/list/dict "
                         "values".format(index, exc)) from None


def checksum(record_id: int, label: int, task_id: int, split: int, meta: Optional[bytes], payload: bytes) -> int:
    """CRC32 of everything a record says (its ordinal, an index detail, is not covered)."""
    crc = zlib.crc32(_CRC_HEAD.pack(record_id, label, task_id, split))
    if meta is not None:
        crc = zlib.crc32(meta, crc)
    return zlib.crc32(payload, crc)


class SampleStore:
    """Durable, checksummed, class-indexed sample store; implements ``types.SampleSource``.

    ``path`` is a directory (created 0700; its files 0600). ``sample_shape``/``dtype`` are fixed by
    the first ingest (or given here) and persisted. ``backend`` defaults to the one already in
    ``path``, else ``DEFAULT_BACKEND``. Thread-safe: many readers (e.g. the swap worker) and
    writers may share one instance; writers are serialised.
    """

    def __init__(self, path: PathLike, *, sample_shape: Optional[Sequence[int]] = None,
                 dtype: Optional[object] = None, create: bool = True, quota_bytes: Optional[int] = None,
                 quota_samples: Optional[int] = None, backend: Optional[str] = None,
                 allow_nonfinite: bool = False, backend_options: Optional[Mapping[str, Any]] = None,
                 seed: Optional[int] = None) -> None:
        self.path = Path(path)
        for name, quota in (("quota_bytes", quota_bytes), ("quota_samples", quota_samples)):
            if quota is not None and (_as_int(quota, name) <= 0):
                raise ConfigError("{} must be positive or None, got {}".format(name, quota))
        self.quota_bytes = None if quota_bytes is None else int(quota_bytes)
        self.quota_samples = None if quota_samples is None else int(quota_samples)
        self.allow_nonfinite = bool(allow_nonfinite)
        self.stats = StoreStats()
        self._stats_lock = threading.Lock()
        self._lock = threading.RLock()
        self._rng = np.random.default_rng(seed)
        self._closed = True
        self.sample_shape = None  # type: Optional[tuple]
        self.dtype = None  # type: Optional[np.dtype]
        self._nbytes = 0
        self._layout_fixed = False
        self._corrupt_warned = 0
        # whether the last draw had to be settled in a snapshot (repeats are likely when labels ask
        # for many records of small classes): then the next draw starts there, read once, not twice
        self._draw_exact_first = False

        want_shape = None if sample_shape is None else tuple(_as_int(d, "sample_shape entry", 0) for d in sample_shape)
        want_dtype = None if dtype is None else _check_dtype(dtype)
        if self.path.exists() and not self.path.is_dir():
            raise StoreError("{} exists and is not a directory; a store is a directory, pick another path"
                             .format(self.path))
        found = detect_backend(self.path, STORE_BACKENDS.names()) if self.path.is_dir() else None
        if found is not None and backend is not None and backend != found:
            raise ConfigError("the store at {} uses backend {!r}, not {!r}; open it with backend={!r} (or None)"
                              .format(self.path, found, backend, found))
        if found is None:
            if not create:
                raise StoreError("no sample store at {}; pass create=True to make one".format(self.path))
            self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(str(self.path), 0o700)
        self.backend_name = found or backend or DEFAULT_BACKEND
        factory = STORE_BACKENDS.get(self.backend_name)
        self._backend = factory(self.path, create, dict(backend_options or {}))  # type: StoreBackend
        try:
            self._init_info(want_shape, want_dtype)
        except BaseException:
            self._backend.close()
            raise
        self._closed = False
        logger.info("opened %s sample store at %s (%d records, shape %s, dtype %s)", self.backend_name,
                    self.path, len(self), self.sample_shape, self.dtype)

    @classmethod
    def from_config(cls, path: PathLike, config: StoreConfig, create: bool = True) -> "SampleStore":
        """Open the store at ``path`` with the settings of a ``StoreConfig``."""
        return cls(path, create=create, backend=config.backend, quota_bytes=config.quota_bytes,
                   quota_samples=config.quota_samples, allow_nonfinite=config.allow_nonfinite)

    # ---------------------------------------------------------------- open / layout
    def _init_info(self, want_shape: Optional[tuple], want_dtype: Optional[np.dtype]) -> None:
        with self._lock, self._backend.write() as txn:
            info = txn.info()
            if not info:
                info = {INFO_FORMAT_VERSION: str(FORMAT_VERSION), "backend": self.backend_name,
                        "next_id": "0", "data_bytes": "0", "created_unix": "{:.3f}".format(time.time()),
                        "created_by": "miro_edge {}".format(miro_edge.__version__)}
                txn.put_info(info)
            version = info.get(INFO_FORMAT_VERSION)
            if version is None or not version.isdigit():
                raise StoreError("{} holds a database that is not a miro_edge sample store (no format version); "
                                 "point the store at an empty directory".format(self.path))
            if int(version) != FORMAT_VERSION:
                raise StoreVersionError(
                    "the store at {} has format version {}, this miro_edge ({}) reads version {}; {}".format(
                        self.path, version, miro_edge.__version__, FORMAT_VERSION,
                        "upgrade miro_edge to open it" if int(version) > FORMAT_VERSION
                        else "no migration exists from that version; re-ingest into a new store"))
            if "sample_shape" in info:
                self._set_layout(tuple(json.loads(info["sample_shape"])), np.dtype(info["dtype"]))
                if want_shape is not None and want_shape != self.sample_shape or \
                        want_dtype is not None and want_dtype != self.dtype:
                    raise InputError("the store at {} holds samples of shape {} and dtype {}, but shape {} and "
                                     "dtype {} were requested; open it without sample_shape/dtype or use another "
                                     "path".format(self.path, self.sample_shape, self.dtype, want_shape, want_dtype))
            elif want_shape is not None and want_dtype is not None:
                txn.put_info(self._layout_info(want_shape, want_dtype))
                self._set_layout(want_shape, want_dtype)
            else:  # a half-given layout is completed by the first ingest
                self.sample_shape, self.dtype = want_shape, want_dtype

    @staticmethod
    def _layout_info(shape: tuple, dtype: np.dtype) -> Dict[str, str]:
        return {"sample_shape": json.dumps(list(shape)), "dtype": dtype.str}

    def _set_layout(self, shape: tuple, dtype: np.dtype) -> None:
        self.sample_shape, self.dtype = shape, dtype
        self._nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        self._layout_fixed = True

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the sample store at {} is closed; open a new SampleStore".format(self.path))
        if not self._layout_fixed:
            self._adopt_layout()

    def _adopt_layout(self) -> None:
        """Take the layout another instance or process gave the store after this one opened it
        empty; without it, this instance could not decode (and would count as corrupt) their records."""
        with self._backend.read(snapshot=False) as txn:
            info = txn.info()
        if "sample_shape" in info:
            with self._lock:
                if not self._layout_fixed:
                    self._set_layout(tuple(json.loads(info["sample_shape"])), np.dtype(info["dtype"]))

    # ---------------------------------------------------------------- ingest
    def ingest(self, x: object, label: object, task_id: object, split: str = "train",
               meta: Optional[Mapping[str, Any]] = None) -> int:
        """Append one sample durably; return its record id (its arrival index)."""
        return self.ingest_batch([x], [label], task_id, [split], [meta])[0]

    def ingest_batch(self, xs: object, labels: Sequence[object], task_id: object,
                     splits: Optional[Union[str, Sequence[str]]] = None,
                     metas: Optional[Sequence[Optional[Mapping[str, Any]]]] = None) -> List[int]:
        """Append samples in ONE durable transaction; return their record ids.

        ``xs`` is an array of shape ``(n, *sample_shape)`` or a sequence of ``n`` arrays. If any
        sample is invalid nothing is stored. Over a quota, older records are evicted
        class-balanced in the same transaction (never the ones of this call).
        """
        self._check_open()
        with self._lock:  # validation reads the layout, which the first ingest fixes
            payloads, shape, dtype = self._payloads(xs)
        n = len(payloads)
        labels = labels.tolist() if isinstance(labels, np.ndarray) and labels.dtype.kind in "iu" else list(labels)
        if len(labels) != n:
            raise InputError("ingest_batch got {} samples but {} labels; pass one label per sample".format(
                n, len(labels)))
        if splits is None:
            codes = [0] * n
        elif isinstance(splits, str):
            codes = [_split_code(splits)] * n
        else:
            codes = [_split_code(s) for s in splits]
        if len(codes) != n:
            raise InputError("ingest_batch got {} samples but {} splits".format(n, len(codes)))
        metas_b = [None] * n if metas is None else [_meta_bytes(m, i) for i, m in enumerate(metas)]
        if len(metas_b) != n:
            raise InputError("ingest_batch got {} samples but {} metas".format(n, len(metas_b)))
        labs = [_as_int(lab, "label of sample {}".format(i)) for i, lab in enumerate(labels)]
        task = _as_int(task_id, "task_id", 0)
        if n == 0:
            return []
        batch_bytes = n * len(payloads[0]) + sum(len(m) for m in metas_b if m is not None)
        if self.quota_samples is not None and n > self.quota_samples:
            raise StoreFullError("a batch of {} samples exceeds quota_samples={}; raise the quota or ingest "
                                 "smaller batches (nothing was stored)".format(n, self.quota_samples))
        if self.quota_bytes is not None and batch_bytes > self.quota_bytes:
            raise StoreFullError("a batch of {} bytes exceeds quota_bytes={}; raise the quota or ingest smaller "
                                 "batches (nothing was stored)".format(batch_bytes, self.quota_bytes))
        with self._lock:
            self._check_open()
            if self._layout_fixed and (shape, dtype) != (self.sample_shape, self.dtype):
                payloads, shape, dtype = self._payloads(xs)  # another thread fixed the layout: raises
            new_layout = not self._layout_fixed
            with self._backend.write() as txn:
                info = txn.info()
                if new_layout and "sample_shape" in info:  # another instance or process fixed it meanwhile
                    theirs = (tuple(json.loads(info["sample_shape"])), np.dtype(info["dtype"]))
                    if theirs != (shape, dtype):
                        raise InputError("the store at {} holds samples of shape {} and dtype {} (set by another "
                                         "instance or process); got shape {} and dtype {}; nothing was stored"
                                         .format(self.path, theirs[0], theirs[1], shape, dtype))
                elif new_layout:
                    txn.put_info(self._layout_info(shape, dtype))
                first = int(info["next_id"])
                data_bytes = int(info["data_bytes"])
                evicted, freed = self._make_room(txn, labs, codes, batch_bytes, data_bytes)
                counts = {}  # type: Dict[Tuple[int, int], int]
                rows = []
                for i in range(n):
                    key = (codes[i], labs[i])
                    if key not in counts:
                        counts[key] = txn.count(*key)
                    rid = first + i
                    rows.append(RawRecord(rid, codes[i], labs[i], counts[key], task,
                                          checksum(rid, labs[i], task, codes[i], metas_b[i], payloads[i]),
                                          metas_b[i], payloads[i]))
                    counts[key] += 1
                txn.put_records(rows)
                for key, count in counts.items():
                    txn.set_count(key[0], key[1], count)
                txn.put_info({"next_id": str(first + n), "data_bytes": str(data_bytes - freed + batch_bytes)})
            if new_layout:
                self._set_layout(shape, dtype)
        with self._stats_lock:
            self.stats.ingested += n
            self.stats.evicted += evicted
        if evicted:
            logger.info("store quota: evicted %d records (%d bytes) class-balanced", evicted, freed)
        return list(range(first, first + n))

    def _payloads(self, xs: object) -> Tuple[List[bytes], tuple, np.dtype]:
        """Validate samples against the layout; return their bytes, shape and dtype."""
        shape, dtype = self.sample_shape, self.dtype
        if isinstance(xs, np.ndarray) and xs.ndim >= 1 and len(xs) > 0:
            arrays = [xs]  # type: List[np.ndarray]
            batched = True
        else:
            arrays = [_as_array(x) for x in xs]  # type: ignore[attr-defined]
            batched = False
            if not arrays:
                return [], shape or (), dtype or np.dtype("u1")
        first = arrays[0][0] if batched else arrays[0]
        if shape is None:
            shape = tuple(int(d) for d in first.shape)
        if dtype is None:
            dtype = _check_dtype(first.dtype)
        for i, arr in enumerate(arrays):
            got_shape = tuple(arr.shape[1:]) if batched else tuple(arr.shape)
            if got_shape != shape or arr.dtype != dtype:
                where = "the samples" if batched else "sample {}".format(i)
                raise InputError("{} have shape {} and dtype {}, but the store at {} holds shape {} and dtype {}; "
                                 "reshape/cast before ingesting (nothing was stored)".format(
                                     where, got_shape, arr.dtype, self.path, shape, dtype))
            if dtype.kind in "fc" and not self.allow_nonfinite and not np.isfinite(arr).all():
                bad = int(np.flatnonzero(~np.isfinite(arr).reshape(len(arr), -1).all(axis=1))[0]) if batched else i
                raise InputError("sample {} contains NaN or inf; clean it, or open the store with "
                                 "allow_nonfinite=True to keep such samples (nothing was stored)".format(bad))
        if batched:
            buf = np.ascontiguousarray(arrays[0]).tobytes()
            size = len(buf) // len(arrays[0])
            return [buf[i * size:(i + 1) * size] for i in range(len(arrays[0]))], shape, dtype
        return [arr.tobytes() for arr in arrays], shape, dtype

    # ---------------------------------------------------------------- eviction
    def _make_room(self, txn: WriteTxn, labels: List[int], codes: List[int], batch_bytes: int,
                   data_bytes: int) -> Tuple[int, int]:
        """Evict existing records class-balanced until the batch fits the quotas; return (count, bytes)."""
        if self.quota_samples is None and self.quota_bytes is None:
            return 0, 0
        counts = {k: c for k, c in txn.counts().items() if c > 0}
        incoming = {}  # type: Dict[Tuple[int, int], int]
        for key in zip(codes, labels):
            incoming[key] = incoming.get(key, 0) + 1
        total = sum(counts.values())
        evicted = freed = 0
        while total > 0:
            k = 0
            if self.quota_samples is not None:
                k = max(k, total + len(labels) - self.quota_samples)
            if self.quota_bytes is not None:
                excess = data_bytes - freed + batch_bytes - self.quota_bytes
                if excess > 0:
                    per_record = max(1, (data_bytes - freed) // total)
                    k = max(k, -(-excess // per_record))
            if k <= 0:
                break
            plan = _water_fill(counts, incoming, min(k, total))
            for key, m in plan.items():
                removed = self._remove_random(txn, key, counts[key], m)
                counts[key] -= m
                freed += sum(r.nbytes for r in removed)
            evicted += sum(plan.values())
            total -= sum(plan.values())
        return evicted, freed

    def _remove_random(self, txn: WriteTxn, key: Tuple[int, int], count: int, m: int) -> List[RawRecord]:
        ords = distinct_ints(self._rng, count, m) if m < count else list(range(count))
        return _remove_ords(txn, key, count, ords, self.path)

    def delete(self, record_ids: Sequence[int]) -> int:
        """Delete records (e.g. ones ``verify`` found corrupt) durably; return how many existed."""
        self._check_open()
        ids = sorted({_as_int(i, "record id", 0) for i in record_ids})
        if not ids:
            return 0
        with self._lock, self._backend.write() as txn:
            groups = {}  # type: Dict[Tuple[int, int], List[int]]
            for raw in txn.records(ids):
                if raw is not None:
                    groups.setdefault((raw.split, raw.label), []).append(raw.ord)
            freed = removed = 0
            for key, ords in groups.items():
                gone = _remove_ords(txn, key, txn.count(*key), ords, self.path)
                freed += sum(r.nbytes for r in gone)
                removed += len(gone)
            info = txn.info()
            txn.put_info({"data_bytes": str(int(info["data_bytes"]) - freed)})
        return removed

    # ---------------------------------------------------------------- reads
    def class_counts(self, split: str = "train") -> Dict[int, int]:
        """Records per label for ``split``, read from the persisted counts (no scan)."""
        self._check_open()
        code = _split_code(split)
        with self._backend.read(snapshot=False) as txn:
            counts = txn.counts()
        return {lab: c for (s, lab), c in sorted(counts.items()) if s == code and c > 0}

    def labels(self, split: str = "train") -> List[int]:
        """Labels with at least one record in ``split``, ascending."""
        return sorted(self.class_counts(split))

    def __len__(self) -> int:
        self._check_open()
        with self._backend.read(snapshot=False) as txn:
            return sum(txn.counts().values())

    def sample_ids(self, label: int, n: int, rng: np.random.Generator, split: str = "train") -> List[int]:
        """Up to ``n`` distinct record ids of ``label``, uniformly at random (O(n log N))."""
        self._check_open()
        lab = _as_int(label, "label")
        code = _split_code(split)
        n = _as_int(n, "n", 0)
        # Fast path without an explicit snapshot: the count and the ordinal probes may see two
        # states of the store (a concurrent eviction moves records between ordinals), which shows
        # as an empty probe or as one record at two ordinals; then redo both inside one snapshot
        # (with ordinals dense, that never misses).
        for snapshot in (False, True):
            with self._backend.read(snapshot=snapshot) as txn:
                count = txn.count(code, lab)
                k = min(n, count)
                if k <= 0:
                    return []
                ids = txn.ids_at(code, lab, distinct_ints(rng, count, k))
            if None not in ids and len(set(ids)) == len(ids):
                break
        return [i for i in ids if i is not None]

    def draw(self, counts: Mapping[int, int], rng: np.random.Generator, split: str = "train") -> List[StoredSample]:
        """Draw and read random records of several labels at once: the swap worker's call.

        ``counts`` maps label -> how many; each label gets ``min(n, its record count)`` distinct
        records, a uniform random subset of its class, as ``sample_ids`` + ``read_many`` would
        give, usually in ONE statement for all labels (the class counts, the ordinal probes and
        the rows come from one consistent read). Samples come in no promised order (group them by
        ``label``); corrupt records are skipped and counted in ``stats``.
        """
        self._check_open()
        code = _split_code(split)
        wanted = {}  # type: Dict[int, int]
        for label, n in counts.items():
            if not (type(label) is int and type(n) is int and n >= 0 and _INT64_MIN <= label <= _INT64_MAX):
                label, n = _as_int(label, "label"), _as_int(n, "count of a label", 0)
            if n:
                wanted[label] = wanted.get(label, 0) + n
        if not wanted:
            return []
        # Each pick is a uniform double u: the record at ordinal floor(u * count) is a uniform
        # record of the class. Repeats within a label (likely only in small classes) and labels
        # asking for more than they hold are settled exactly below.
        labels = [lab for lab, k in wanted.items() for _ in range(k)]
        picks = sorted(zip(labels, rng.random(len(labels)).tolist()))  # sorted probes share index pages
        got = None if self._draw_exact_first else self._draw_once(code, wanted, picks, rng, exact=False)
        if got is None:  # a repeat or a shortfall somewhere: (re)do in one snapshot, exactly
            got = self._draw_once(code, wanted, picks, rng, exact=True)
        out, corrupt, missing, self._draw_exact_first = got  # type: ignore[misc]
        self._count_reads(len(out), corrupt, missing)
        return out

    def _draw_once(self, code: int, wanted: Dict[int, int], picks: List[Tuple[int, float]],
                   rng: np.random.Generator, exact: bool) -> Optional[Tuple[List[StoredSample], int, int, bool]]:
        """One attempt of ``draw``: (samples, corrupt, missing, whether it had to be settled), or
        None when not ``exact`` and some label came short (a repeated ordinal, or fewer records
        than asked)."""
        with self._backend.read(snapshot=exact) as txn:
            raws, lost = _isolating(txn.records_at_fractions, code, picks)
            expected = len(picks)
            settled = bool(lost or len(raws) != expected or len({raw[0] for raw in raws}) != expected)  # [0]: id
            if settled:
                if not exact:
                    return None
                raws, more_lost, expected = _top_up(txn, code, wanted, raws, rng)
                lost += more_lost
            samples, bad = self._decode_many(raws)  # inside: a backend may hand out views valid only here
        return samples, lost + bad, max(0, expected - len(raws) - lost), settled

    def read(self, record_id: int) -> StoredSample:
        """One record; raises ``RecordNotFoundError`` or ``CorruptRecordError``."""
        self._check_open()
        rid = _as_int(record_id, "record id")
        with self._backend.read(snapshot=False) as txn:
            raw = txn.records([rid])[0]
            if raw is None:
                raise RecordNotFoundError("record {} is not in the store at {} (never ingested, evicted or "
                                          "deleted)".format(rid, self.path))
            got, _ = self._decode_many([raw])  # inside: a backend may hand out views valid only in the txn
        if not got:
            raise CorruptRecordError("record {} in {} failed its checksum; it is not served. Run "
                                     "SampleStore.verify() and delete() the damaged records".format(rid, self.path))
        self._count_reads(1, 0, 0)
        return got[0]

    def read_many(self, record_ids: Sequence[int]) -> List[StoredSample]:
        """Records in input order; corrupt and missing ones are skipped and counted in ``stats``."""
        self._check_open()
        ids = _as_ints(record_ids, "record id")
        if not ids:
            return []
        missing = 0
        with self._backend.read(snapshot=len(ids) > 512) as txn:
            try:
                raws = txn.records(ids)
            except CorruptRecordError:  # the engine hit a damaged page: isolate it record by record
                raws = []
                for rid in ids:
                    try:
                        raws.append(txn.records([rid])[0])
                    except CorruptRecordError:
                        raws.append(RawRecord(rid, -1, 0, 0, 0, 0, None, b""))
            if None in raws:
                found = [raw for raw in raws if raw is not None]
                missing = len(raws) - len(found)
                raws = found
            out, corrupt = self._decode_many(raws)  # type: ignore[arg-type]
        self._count_reads(len(out), corrupt, missing)
        return out

    def _count_reads(self, read: int, corrupt: int, missing: int) -> None:
        with self._stats_lock:
            stats = self.stats
            stats.records_read += read
            stats.corrupt_skipped += corrupt
            stats.missing_skipped += missing

    def _decode_many(self, raws: Sequence[RawRecord]) -> Tuple[List[StoredSample], int]:
        """Check and decode records; return the good ones (in order) and how many failed.

        The hot path of every read, written for speed: ``checksum()`` inlined, and all payloads
        copied ONCE into one fresh writable buffer whose rows become the samples' arrays
        (non-overlapping views of it, owned by no database: valid after the transaction, even
        where the backend handed out views of its memory map). A failed record's row is zeroed.
        """
        nbytes, dtype, shape = self._nbytes, self.dtype, self.sample_shape
        if dtype is None or shape is None:  # records without a layout cannot be served
            for raw in raws:
                self._warn_corrupt(raw.record_id)
            return [], len(raws)
        n = len(raws)
        if not n:
            return [], 0
        try:
            buf = bytearray().join([raw[7] for raw in raws])  # one copy of every payload, owned by the arrays
        except TypeError:  # a damaged row holds something else than bytes
            buf = bytearray()
        if len(buf) != n * nbytes:  # a damaged payload somewhere: set those records aside first
            good = [raw for raw in raws if isinstance(raw[7], (bytes, memoryview)) and len(raw[7]) == nbytes]
            kept = {id(raw) for raw in good}
            for raw in raws:
                if id(raw) not in kept:
                    self._warn_corrupt(raw[0])
            out, corrupt = self._decode_many(good)
            return out, corrupt + n - len(good)
        rows = np.ndarray((n,) + shape, dtype, buf) if nbytes else np.zeros((n,) + shape, dtype)  # over buf, writable
        crc32, head, new, splits = zlib.crc32, _CRC_HEAD.pack, tuple.__new__, SPLITS
        out = []  # type: List[StoredSample]
        corrupt = 0
        for raw, x in zip(raws, rows):
            rid, split, label, _, task_id, crc, meta_b, payload = raw
            try:  # checksum() inlined: the hot path of every read
                if meta_b is None:
                    if crc == crc32(payload, crc32(head(rid, label, task_id, split))) and (split == 0 or split == 1):
                        out.append(new(StoredSample, (rid, x, label, task_id, splits[split], None)))
                        continue
                elif crc == crc32(payload, crc32(meta_b, crc32(head(rid, label, task_id, split)))) and \
                        (split == 0 or split == 1):
                    meta = json.loads(bytes(meta_b).decode("utf-8"))
                    out.append(new(StoredSample, (rid, x, label, task_id, splits[split], meta)))
                    continue
            except (TypeError, ValueError, struct.error):  # a damaged row can hold values of the wrong type
                pass
            x[...] = 0  # never keep a failed record's bytes in a buffer that is handed out
            self._warn_corrupt(rid)
            corrupt += 1
        return out, corrupt

    def _warn_corrupt(self, record_id: int) -> None:
        with self._stats_lock:
            self._corrupt_warned += 1
            seen = self._corrupt_warned
        if seen <= _MAX_CORRUPT_WARNINGS:
            logger.warning("record %d in %s failed its checksum and was skipped", record_id, self.path)

    # ---------------------------------------------------------------- maintenance
    def verify(self, chunk: int = 4096) -> VerifyReport:
        """Scan every record: checksums, per-class counts and dense ordinals (RAM: O(classes))."""
        self._check_open()
        seen = {}  # type: Dict[Tuple[int, int], List[int]]  # count, sum of ords, max ord
        corrupt = []  # type: List[int]
        checked, last = 0, -1
        with self._backend.read() as txn:
            stored = txn.counts()
            while True:
                rows = txn.scan(last, chunk)
                if not rows:
                    break
                good, bad = set(), 0  # type: set, int
                for start in range(0, len(rows), 64):  # small pieces: the decode buffer stays small
                    decoded, failed = self._decode_many(rows[start:start + 64])
                    good.update(sample.record_id for sample in decoded)
                    bad += failed
                for raw in rows:
                    checked += 1
                    if bad and raw.record_id not in good:
                        corrupt.append(raw.record_id)
                        continue
                    acc = seen.setdefault((raw.split, raw.label), [0, 0, -1])
                    acc[0] += 1
                    acc[1] += raw.ord
                    acc[2] = max(acc[2], raw.ord)
                last = rows[-1].record_id
        problems = []
        for key in sorted(set(stored) | set(seen)):
            want = stored.get(key, 0)
            got, total, top = seen.get(key, [0, 0, -1])
            name = "{}/{}".format(SPLITS[key[0]] if 0 <= key[0] < len(SPLITS) else key[0], key[1])
            if got != want and not corrupt:
                problems.append("class {}: count says {} but {} records found".format(name, want, got))
            elif not corrupt and (top != want - 1 or total != want * (want - 1) // 2):
                problems.append("class {}: ordinals are not dense 0..{}".format(name, want - 1))
        return VerifyReport(checked, corrupt, problems)

    @property
    def data_bytes(self) -> int:
        """Sample bytes (payload + metadata) currently stored; what ``quota_bytes`` caps."""
        self._check_open()
        with self._backend.read(snapshot=False) as txn:
            return int(txn.info()["data_bytes"])

    def size_bytes(self) -> int:
        """Bytes the store's files take on disk now (database overhead included)."""
        self._check_open()
        return sum(p.stat().st_size for p in self._backend.files())

    def files(self) -> List[Path]:
        """The files that make up the store."""
        self._check_open()
        return self._backend.files()

    def settings(self) -> Dict[str, Any]:
        """Engine settings that matter for durability, as the engine reports them."""
        self._check_open()
        return dict(self._backend.settings(), backend=self.backend_name, format_version=FORMAT_VERSION)

    def close(self) -> None:
        """Close the database (idempotent). Stop readers (the swap worker) first."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._backend.close()

    def __enter__(self) -> "SampleStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return "SampleStore({!r}, backend={!r}, shape={}, dtype={}{})".format(
            str(self.path), self.backend_name, self.sample_shape, self.dtype, ", closed" if self._closed else "")


def distinct_ints(rng: np.random.Generator, count: int, k: int) -> List[int]:
    """``k`` distinct uniform integers in ``[0, count)`` (a uniform random k-subset, in random order)."""
    return _more_ords(rng, count, k, set())


def _more_ords(rng: np.random.Generator, count: int, need: int, taken: set) -> List[int]:
    """``need`` more distinct ordinals in ``[0, count)`` not in ``taken`` (which this updates).

    Sequential rejection (each accepted value is uniform over those not yet taken), O(need)
    instead of the O(count) permutation ``Generator.choice`` may do; when more than a quarter
    of the free values are wanted, a permutation of them. An ordinal is ``floor(u * count)`` for
    a uniform double ``u`` in [0, 1), as ``draw`` does: one ``rng.random`` call for many values
    (a Generator call costs microseconds), uniform up to a relative bias below ``count / 2**53``,
    and always ``< count`` for counts below 2**53.
    """
    free = count - len(taken)
    need = min(need, free)
    if need <= 0:
        return []
    if need > 1 and 4 * need > free:
        pool = [o for o in range(count) if o not in taken]
        out = [pool[i] for i in rng.permutation(len(pool))[:need].tolist()]
        taken.update(out)
        return out
    out = []  # type: List[int]
    while len(out) < need:
        for u in rng.random(need - len(out)).tolist():
            o = int(u * count)
            if o not in taken:
                taken.add(o)
                out.append(o)
    return out


def _isolating(fetch: Callable[[int, Sequence[Any]], List[RawRecord]], code: int,
               items: Sequence[Any]) -> Tuple[List[RawRecord], int]:
    """``fetch(code, items)``; if the engine reports a damaged page, item by item, skipping the
    ones it cannot read. Returns (rows, unreadable items)."""
    try:
        return fetch(code, items), 0
    except CorruptRecordError:
        rows, lost = [], 0  # type: List[RawRecord], int
        for item in items:
            try:
                rows.extend(fetch(code, [item]))
            except CorruptRecordError:
                lost += 1
        return rows, lost


def _top_up(txn: ReadTxn, code: int, wanted: Mapping[int, int], raws: List[RawRecord],
            rng: np.random.Generator) -> Tuple[List[RawRecord], int, int]:
    """Settle a draw exactly inside its snapshot: drop repeated records, then draw each label's
    missing ordinals by sequential rejection (so each label's result stays a uniform random subset
    of its class). Returns (rows, unreadable slots, rows expected)."""
    have = txn.counts_for(code, list(wanted))
    kept, seen = [], {}  # type: List[RawRecord], Dict[int, set]
    for raw in raws:
        taken = seen.setdefault(raw.label, set())
        if raw.ord not in taken:
            taken.add(raw.ord)
            kept.append(raw)
    slots = []  # type: List[Tuple[int, int]]
    expected = 0
    for lab, count in have.items():
        want = min(wanted[lab], count)
        expected += want
        taken = seen.setdefault(lab, set())
        slots.extend((lab, o) for o in _more_ords(rng, count, want - len(taken), taken))
    lost = 0
    if slots:
        more, lost = _isolating(txn.records_at, code, slots)
        kept.extend(more)
    return kept, lost, expected


def _water_fill(counts: Mapping[Tuple[int, int], int], incoming: Mapping[Tuple[int, int], int],
                k: int) -> Dict[Tuple[int, int], int]:
    """How many existing records to evict per class: always from the currently largest class.

    Size counts what the class will hold after the incoming batch; only existing records
    (``counts``) can be evicted. Ties go to the lower (split, label).
    """
    heap = [(-(c + incoming.get(key, 0)), key) for key, c in counts.items() if c > 0]
    heapq.heapify(heap)
    left = dict(counts)
    plan = {}  # type: Dict[Tuple[int, int], int]
    while k > 0 and heap:
        size, key = heapq.heappop(heap)
        plan[key] = plan.get(key, 0) + 1
        left[key] -= 1
        k -= 1
        if left[key] > 0:
            heapq.heappush(heap, (size + 1, key))
    return plan


def _remove_ords(txn: WriteTxn, key: Tuple[int, int], count: int, ords: Sequence[int], path: Path) -> List[RawRecord]:
    """Delete the records at ``ords`` of one class and keep its ordinals dense.

    The class's last surviving ordinals move into the holes, so ordinals stay ``0 .. count-m-1``.
    """
    split, label = key
    dead = sorted(set(int(o) for o in ords))
    dead_ids = txn.ids_at(split, label, dead)
    keep = count - len(dead)
    dead_set = set(dead)
    movers = [o for o in range(keep, count) if o not in dead_set]
    mover_ids = txn.ids_at(split, label, movers)
    if any(i is None for i in dead_ids) or any(i is None for i in mover_ids):
        raise StoreError("the class index of the store at {} is damaged (class {} has holes); run "
                         "SampleStore.verify() and restore from a backup".format(path, key))
    removed = []
    for rid in dead_ids:
        rec = txn.delete_record(rid)  # type: ignore[arg-type]
        if rec is not None:
            removed.append(rec)
    holes = [o for o in dead if o < keep]
    for hole, old, rid in zip(holes, movers, mover_ids):
        txn.move(rid, split, label, old, hole)  # type: ignore[arg-type]
    txn.set_count(split, label, keep)
    return removed
