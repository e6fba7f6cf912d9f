"""The small interface every sample-store backend implements, and the backend registry.

``SampleStore`` (``sample_store.py``) owns all the logic (validation, checksums, per-class ordinals,
class-balanced eviction, quotas); a backend only stores rows transactionally:

* ``records``: record id -> (split, label, ord, task id, crc32, meta JSON, payload bytes);
* a per-class ordinal index: (split, label, ord) -> record id, with ordinals kept dense
  (``0 .. count-1``) so a uniform random draw is ``count`` random integers and one index probe;
* ``classes``: (split, label) -> count, so class counts are read, never recomputed by a scan;
* ``info``: text key -> text value (format version, sample shape, dtype, next id, data bytes).

A write transaction is durable when its context exits without an exception, and rolled back
(nothing of it visible, ever) when it raises. Backends map "disk full" to ``StoreFullError``.
Adding a backend adds one module that registers a subclass in ``STORE_BACKENDS``.
"""
import abc
from pathlib import Path
from typing import (
    Any,
    ContextManager,
    Dict,
    Iterable,
    List,
    Mapping,
    NamedTuple,
    Optional,
    Sequence,
    Tuple,
    Union,
)

from miro_edge.utils.registry import Registry

SPLITS = ("train", "val")  # index in this tuple is the split code stored on disk
INFO_FORMAT_VERSION = "format_version"
BACKEND_INFO_PREFIX = "backend:"  # info keys a backend keeps itself (outside ``SampleStore``'s metadata checksum)


class RawRecord(NamedTuple):
    """One row as a backend stores it; ``SampleStore`` checks ``crc`` and decodes ``payload``."""

    record_id: int
    split: int
    label: int
    ord: int
    task_id: int
    crc: int
    meta: Optional[bytes]
    payload: Union[bytes, memoryview]  # a view over the backend's buffer where it can lend one

    @property
    def nbytes(self) -> int:
        """Logical size counted against ``quota_bytes``: payload plus metadata."""
        return len(self.payload) + (len(self.meta) if self.meta is not None else 0)


class ReadTxn(abc.ABC):
    """A consistent snapshot of the store (every call sees the same committed state)."""

    @abc.abstractmethod
    def info(self) -> Dict[str, str]:
        """All ``info`` entries."""

    @abc.abstractmethod
    def counts(self) -> Dict[Tuple[int, int], int]:
        """(split code, label) -> record count, zero counts included."""

    @abc.abstractmethod
    def count(self, split: int, label: int) -> int:
        """Record count of one class (0 if the class was never seen)."""

    @abc.abstractmethod
    def ids_at(self, split: int, label: int, ords: Sequence[int]) -> List[Optional[int]]:
        """Record ids at the given per-class ordinals, in input order (None where absent)."""

    @abc.abstractmethod
    def records(self, record_ids: Sequence[int]) -> List[Optional[RawRecord]]:
        """Rows of ``record_ids`` in input order (None where absent).

        Raises ``CorruptRecordError`` when the engine itself reports a damaged page.
        """

    @abc.abstractmethod
    def scan(self, after_id: int, limit: int) -> List[RawRecord]:
        """Up to ``limit`` rows with id > ``after_id``, in id order (for ``verify``)."""

    # The calls below serve ``SampleStore.draw`` (the swap worker's hot path). The defaults are
    # built from the calls above; a backend overrides them when it can do better (SQLite: one
    # statement instead of one per label).
    def counts_for(self, split: int, labels: Sequence[int]) -> Dict[int, int]:
        """label -> record count for ``labels`` of one split (labels without records are left out)."""
        out: Dict[int, int] = {}
        for label in labels:
            count = self.count(split, label)
            if count:
                out[label] = count
        return out

    def records_at(self, split: int, slots: Sequence[Tuple[int, int]]) -> List[RawRecord]:
        """Rows at the (label, ord) ``slots`` of one split; absent slots are left out.

        Raises ``CorruptRecordError`` when the engine itself reports a damaged page.
        """
        by_label: Dict[int, List[int]] = {}
        for label, ord_ in slots:
            by_label.setdefault(label, []).append(ord_)
        ids: List[int] = []
        for label, ords in by_label.items():
            ids.extend(i for i in self.ids_at(split, label, ords) if i is not None)
        return [r for r in self.records(ids) if r is not None]

    def records_at_fractions(self, split: int, picks: Sequence[Tuple[int, float]]) -> List[RawRecord]:
        """For each (label, u), 0 <= u < 1: the row at ordinal ``floor(u * count(label))``.

        A uniform ``u`` gives a uniform record of the class, and the count and the probe come
        from one consistent read (one statement where the engine allows). Labels without records
        give no row; equal ordinals give the row again. Raises ``CorruptRecordError`` as above.
        """
        counts = self.counts_for(split, sorted({label for label, _ in picks}))
        return self.records_at(split, [(label, int(u * counts[label])) for label, u in picks if label in counts])

    # Integrity queries (``SampleStore``'s open checks, ``verify`` and ``repair``). The defaults scan;
    # a backend overrides them when its index answers them directly.
    def max_record_id(self) -> Optional[int]:
        """The highest record id stored, or None in an empty store."""
        top, last = None, -1
        while True:
            rows = self.scan(last, 4096)
            if not rows:
                return top
            last = top = rows[-1].record_id

    def class_sizes(self) -> Dict[Tuple[int, int], int]:
        """(split, label) -> records actually stored (counted, not read from ``counts``)."""
        out: Dict[Tuple[int, int], int] = {}
        last = -1
        while True:
            rows = self.scan(last, 4096)
            if not rows:
                return out
            for raw in rows:
                key = (raw.split, raw.label)
                out[key] = out.get(key, 0) + 1
            last = rows[-1].record_id


class WriteTxn(ReadTxn):
    """A read-write transaction; see the module docstring for its durability contract."""

    @abc.abstractmethod
    def put_info(self, items: Mapping[str, str]) -> None:
        """Insert or replace ``info`` entries."""

    @abc.abstractmethod
    def set_count(self, split: int, label: int, count: int) -> None:
        """Store the record count of one class."""

    @abc.abstractmethod
    def put_records(self, rows: Sequence[RawRecord]) -> None:
        """Insert new rows (their ids and (split, label, ord) slots are free)."""

    @abc.abstractmethod
    def delete_record(self, record_id: int) -> Optional[RawRecord]:
        """Delete a row and its ordinal entry; return what it held (None if absent)."""

    @abc.abstractmethod
    def move(self, record_id: int, split: int, label: int, old_ord: int, new_ord: int) -> None:
        """Give a row a new ordinal in its class (``new_ord`` is free)."""


class StoreBackend(abc.ABC):
    """An open embedded database holding one store; a context manager."""

    name = ""

    @classmethod
    @abc.abstractmethod
    def detect(cls, path: Path) -> bool:
        """Whether directory ``path`` holds a store of this backend."""

    read_only = False

    @abc.abstractmethod
    def __init__(self, path: Path, create: bool, options: Mapping[str, Any], read_only: bool = False) -> None:
        """Open (or create, when ``create``) the database files inside directory ``path``.

        ``read_only``: open without writing anything (no schema, no lock file where the engine
        allows), so stores on read-only media can be read; ``write()`` then raises ``StoreError``.
        """

    @abc.abstractmethod
    def read(self, snapshot: bool = True) -> ContextManager[ReadTxn]:
        """A read transaction; ``snapshot=False`` lets a single-query read skip BEGIN/COMMIT."""

    @abc.abstractmethod
    def write(self) -> ContextManager[WriteTxn]:
        """A write transaction, durable on a clean exit; callers serialise writers."""

    @abc.abstractmethod
    def files(self) -> List[Path]:
        """The files that make up the store (for size and permission checks)."""

    @abc.abstractmethod
    def settings(self) -> Dict[str, Any]:
        """Durability-relevant engine settings as the engine reports them (for docs and tests)."""

    def problems(self, deep: bool = False) -> List[str]:
        """What is wrong with the engine's own files and metadata (empty: nothing found).

        Cheap checks run on every open; ``deep`` (from ``verify``) may scan the index too."""
        return []

    @abc.abstractmethod
    def close(self) -> None:
        """Release the database; idempotent."""

    def __enter__(self) -> "StoreBackend":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


STORE_BACKENDS: Registry[StoreBackend] = Registry("store backend")


def detect_backend(path: Path, names: Iterable[str]) -> Optional[str]:
    """Name of the registered backend whose files are in ``path``, if any."""
    for name in names:
        if STORE_BACKENDS.get(name).detect(path):  # type: ignore[attr-defined]
            return name
    return None


def pad_params(values: Sequence[int]) -> Tuple[int, List[int]]:
    """Pad a parameter list to a small set of lengths (1, 8, 64, 512) by repeating its last value.

    SQL ``IN (?, ?, ...)`` statements then come in four shapes, which keeps SQLite's statement
    cache hot; repeated values in ``IN`` are harmless. Returns (padded length, padded list).
    """
    n = len(values)
    for size in (1, 8, 64, 512):
        if n <= size:
            return size, list(values) + [values[-1]] * (size - n)
    raise ValueError("pad_params takes at most 512 values; chunk first")
