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

Backends (one module each in ``backends/``, registered in ``STORE_BACKENDS``): ``slots`` (the default, chosen with
``benches/store_reads.py``, see docs/store.md: payloads in a fixed-stride file read with one
``pread`` each, index in SQLite, 8 bytes of RAM per record), ``sqlite`` (everything in one SQLite
file, nothing per record in RAM) and ``lmdb`` (extra ``lmdb``).
"""
import dataclasses
import logging
import os
import threading
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from miro_edge.errors import ConfigError, CorruptRecordError, InputError, StoreError, StoreFullError
from miro_edge.memory.store import backends  # noqa: F401  (importing it registers every backend)
from miro_edge.memory.store.backends.base import STORE_BACKENDS, RawRecord, StoreBackend, detect_backend
from miro_edge.memory.store.config import DEFAULT_BACKEND, StoreConfig
from miro_edge.memory.store.decode import decode_many
from miro_edge.memory.store.draw import distinct_ints, draw_once
from miro_edge.memory.store.errors import RecordNotFoundError
from miro_edge.memory.store.eviction import make_room
from miro_edge.memory.store.integrity import StoreSummary, checked_layout, seal, summarize
from miro_edge.memory.store.layout import FORMAT_VERSION, layout_info, layout_nbytes, new_info, parse_layout
from miro_edge.memory.store.records import (
    INT64_MAX,
    INT64_MIN,
    as_int,
    as_ints,
    check_dtype,
    record_fields,
    sample_payloads,
    split_code,
)
from miro_edge.memory.store.verify import VerifyReport, verify_records
from miro_edge.memory.store.writes import append_records, delete_records
from miro_edge.memory.types import StoredSample

logger = logging.getLogger(__name__)

_MAX_CORRUPT_WARNINGS = 20

PathLike = Union[str, "os.PathLike[str]"]


@dataclasses.dataclass
class StoreStats:
    """Counters since this ``SampleStore`` was opened (read them via ``store.stats``)."""

    ingested: int = 0
    evicted: int = 0
    records_read: int = 0
    corrupt_skipped: int = 0
    missing_skipped: int = 0


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
                 seed: Optional[int] = None, read_only: bool = False) -> None:
        self.path = Path(path)
        self.read_only = bool(read_only)
        for name, quota in (("quota_bytes", quota_bytes), ("quota_samples", quota_samples)):
            if quota is not None and (as_int(quota, name) <= 0):
                raise ConfigError(f"{name} must be positive or None, got {quota}")
        self.quota_bytes = None if quota_bytes is None else int(quota_bytes)
        self.quota_samples = None if quota_samples is None else int(quota_samples)
        self.allow_nonfinite = bool(allow_nonfinite)
        self.stats = StoreStats()
        self._stats_lock = threading.Lock()
        self._lock = threading.RLock()
        self._rng = np.random.default_rng(seed)
        self._closed = True
        self.sample_shape: Optional[tuple] = None
        self.dtype: Optional[np.dtype] = None
        self._nbytes = 0
        self._layout_fixed = False
        self._corrupt_warned = 0
        # whether the last draw had to be settled in a snapshot (repeats are likely when labels ask
        # for many records of small classes): then the next draw starts there, read once, not twice
        self._draw_exact_first = False

        want_shape = None if sample_shape is None else tuple(as_int(d, "sample_shape entry", 0) for d in sample_shape)
        want_dtype = None if dtype is None else check_dtype(dtype)
        if self.path.exists() and not self.path.is_dir():
            raise StoreError(f"{self.path} exists and is not a directory; a store is a directory, pick another path"
                             )
        found = detect_backend(self.path, STORE_BACKENDS.names()) if self.path.is_dir() else None
        if found is not None and backend is not None and backend != found:
            raise ConfigError(f"the store at {self.path} uses backend {found!r}, not {backend!r}; open it with backend={found!r} (or None)"
                              )
        if found is None:
            if not create or read_only:
                raise StoreError(f"no sample store at {self.path}; pass create=True to make one")
            self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(str(self.path), 0o700)
        self.backend_name = found or backend or DEFAULT_BACKEND
        factory = STORE_BACKENDS.get(self.backend_name)
        self._backend: StoreBackend = factory(self.path, create and not read_only, dict(backend_options or {}),
                                read_only=self.read_only)
        try:
            if self.read_only:
                self._read_info()
            else:
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
            changed = not info
            if changed:
                info = new_info(self.backend_name)
                txn.put_info(info)
            self._check_metadata(txn, info)
            if self.sample_shape is not None and self.dtype is not None:
                if want_shape is not None and want_shape != self.sample_shape or \
                        want_dtype is not None and want_dtype != self.dtype:
                    raise InputError(f"the store at {self.path} holds samples of shape {self.sample_shape} and dtype {self.dtype}, but shape {want_shape} and "
                                     f"dtype {want_dtype} were requested; open it without sample_shape/dtype or use another "
                                     "path")
            elif want_shape is not None and want_dtype is not None:
                txn.put_info(layout_info(want_shape, want_dtype))
                self._set_layout(want_shape, want_dtype)
                changed = True
            else:  # a half-given layout is completed by the first ingest
                self.sample_shape, self.dtype = want_shape, want_dtype
            if changed:
                seal(txn)

    def _read_info(self) -> None:
        """Open read-only: nothing is written (stores on read-only media, readers such as ``status``)."""
        with self._backend.read() as txn:
            info = txn.info()
            if not info:  # created but never initialised: an empty store
                return
            self._check_metadata(txn, info)

    def _check_metadata(self, txn: Any, info: Mapping[str, str]) -> None:
        layout = checked_layout(txn, info, self._backend, self.path)
        if layout is not None:
            self._set_layout(*layout)

    def _set_layout(self, shape: tuple, dtype: np.dtype) -> None:
        self.sample_shape, self.dtype = shape, dtype
        self._nbytes = layout_nbytes(shape, dtype)
        self._layout_fixed = True

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"the sample store at {self.path} is closed; open a new SampleStore")
        if not self._layout_fixed:
            self._adopt_layout()

    def _adopt_layout(self) -> None:
        """Take the layout another instance or process gave the store after this one opened it
        empty; without it, this instance could not decode (and would count as corrupt) their records."""
        with self._backend.read(snapshot=False) as txn:
            info = txn.info()
        layout = parse_layout(info)
        if layout is not None:
            with self._lock:
                if not self._layout_fixed:
                    self._set_layout(*layout)

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
        labs, codes, metas_b, task = record_fields(n, labels, task_id, splits, metas)
        if n == 0:
            return []
        batch_bytes = n * len(payloads[0]) + sum(len(m) for m in metas_b if m is not None)
        if self.quota_samples is not None and n > self.quota_samples:
            raise StoreFullError(f"a batch of {n} samples exceeds quota_samples={self.quota_samples}; raise the quota or ingest "
                                 "smaller batches (nothing was stored)")
        if self.quota_bytes is not None and batch_bytes > self.quota_bytes:
            raise StoreFullError(f"a batch of {batch_bytes} bytes exceeds quota_bytes={self.quota_bytes}; raise the quota or ingest smaller "
                                 "batches (nothing was stored)")
        with self._lock:
            self._check_open()
            if self._layout_fixed and (shape, dtype) != (self.sample_shape, self.dtype):
                payloads, shape, dtype = self._payloads(xs)  # another thread fixed the layout: raises
            new_layout = not self._layout_fixed
            with self._backend.write() as txn:
                info = txn.info()
                theirs = parse_layout(info) if new_layout else None
                if theirs is not None:  # another instance or process fixed it meanwhile
                    if theirs != (shape, dtype):
                        raise InputError(f"the store at {self.path} holds samples of shape {theirs[0]} and dtype {theirs[1]} (set by another "
                                         f"instance or process); got shape {shape} and dtype {dtype}; nothing was stored"
                                         )
                elif new_layout:
                    txn.put_info(layout_info(shape, dtype))
                first, evicted, freed = append_records(
                    txn, info, payloads, labs, codes, metas_b, task, batch_bytes, self.path,
                    lambda tally: make_room(txn, self.quota_samples, self.quota_bytes, self._rng, labs, codes,
                                            batch_bytes, int(info["data_bytes"]), self.path, tally))
            if new_layout:
                self._set_layout(shape, dtype)
        with self._stats_lock:
            self.stats.ingested += n
            self.stats.evicted += evicted
        if evicted:
            logger.info("store quota: evicted %d records (%d bytes) class-balanced", evicted, freed)
        return list(range(first, first + n))

    def _payloads(self, xs: object) -> Tuple[List[bytes], tuple, np.dtype]:
        return sample_payloads(xs, self.sample_shape, self.dtype, self.allow_nonfinite, self.path)

    # ---------------------------------------------------------------- eviction
    def delete(self, record_ids: Sequence[int]) -> int:
        """Delete records (e.g. ones ``verify`` found corrupt) durably; return how many existed."""
        self._check_open()
        ids = sorted({as_int(i, "record id", 0) for i in record_ids})
        if not ids:
            return 0
        with self._lock, self._backend.write() as txn:
            return delete_records(txn, ids, self.path)

    # ---------------------------------------------------------------- reads
    def class_counts(self, split: str = "train") -> Dict[int, int]:
        """Records per label for ``split``, read from the persisted counts (no scan)."""
        self._check_open()
        code = split_code(split)
        with self._backend.read(snapshot=False) as txn:
            counts = txn.counts()
        return {lab: c for (s, lab), c in sorted(counts.items()) if s == code and c > 0}

    def summary(self) -> StoreSummary:
        """What the store holds by its checksummed metadata: next id, records per task and split,
        per class, bytes, layout. O(classes), no record read; what a resume compares with its state."""
        self._check_open()
        with self._backend.read() as txn:
            return summarize(txn.info(), txn.counts())

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
        lab = as_int(label, "label")
        code = split_code(split)
        n = as_int(n, "n", 0)
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
        code = split_code(split)
        wanted: Dict[int, int] = {}
        for label, n in counts.items():
            if not (type(label) is int and type(n) is int and n >= 0 and INT64_MIN <= label <= INT64_MAX):
                label, n = as_int(label, "label"), as_int(n, "count of a label", 0)
            if n:
                wanted[label] = wanted.get(label, 0) + n
        if not wanted:
            return []
        # Each pick is a uniform double u: the record at ordinal floor(u * count) is a uniform
        # record of the class. Repeats within a label (likely only in small classes) and labels
        # asking for more than they hold are settled exactly below.
        labels = [lab for lab, k in wanted.items() for _ in range(k)]
        picks = sorted(zip(labels, rng.random(len(labels)).tolist()))  # sorted probes share index pages
        got = None if self._draw_exact_first else draw_once(self._backend, self._decode_many, code, wanted, picks, rng,
                                                                 exact=False)
        if got is None:  # a repeat or a shortfall somewhere: (re)do in one snapshot, exactly
            got = draw_once(self._backend, self._decode_many, code, wanted, picks, rng, exact=True)
        out, corrupt, missing, self._draw_exact_first = got  # type: ignore[misc]
        self._count_reads(len(out), corrupt, missing)
        return out

    def read(self, record_id: int) -> StoredSample:
        """One record; raises ``RecordNotFoundError`` or ``CorruptRecordError``."""
        self._check_open()
        rid = as_int(record_id, "record id")
        with self._backend.read(snapshot=False) as txn:
            raw = txn.records([rid])[0]
            if raw is None:
                raise RecordNotFoundError(f"record {rid} is not in the store at {self.path} (never ingested, evicted or "
                                          "deleted)")
            got, _ = self._decode_many([raw])  # inside: a backend may hand out views valid only in the txn
        if not got:
            raise CorruptRecordError(f"record {rid} in {self.path} failed its checksum; it is not served. Run "
                                     "SampleStore.verify() and delete() the damaged records")
        self._count_reads(1, 0, 0)
        return got[0]

    def read_many(self, record_ids: Sequence[int]) -> List[StoredSample]:
        """Records in input order; corrupt and missing ones are skipped and counted in ``stats``."""
        self._check_open()
        ids = as_ints(record_ids, "record id")
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
            found = [raw for raw in raws if raw is not None]
            missing = len(raws) - len(found)
            out, corrupt = self._decode_many(found)
        self._count_reads(len(out), corrupt, missing)
        return out

    def _count_reads(self, read: int, corrupt: int, missing: int) -> None:
        with self._stats_lock:
            stats = self.stats
            stats.records_read += read
            stats.corrupt_skipped += corrupt
            stats.missing_skipped += missing

    def _decode_many(self, raws: Sequence[RawRecord]) -> Tuple[List[StoredSample], int]:
        """Check and decode records (``decode.decode_many`` with this store's layout)."""
        return decode_many(raws, self.sample_shape, self.dtype, self._nbytes, self._warn_corrupt)

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
        return verify_records(self._backend, self._decode_many, chunk)

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
