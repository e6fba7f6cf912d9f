"""Metadata that cannot lie: a checksum over the store's layout and counters, the cross-checks
against the records that run on open and in ``verify``, and the typed summary a resume compares
with what it expected.

Every write transaction of ``SampleStore`` ends by sealing: ``meta_crc`` in ``info`` is the CRC32
of every other ``info`` entry (format version, layout, next id, data bytes, per-task counts) and
of every class count. One flipped bit in any of them is then an error on open that names the
store and the fix, never samples decoded with the wrong dtype or ids handed out twice. Keys a
backend keeps itself (``backend:`` prefix) are checked by that backend.
"""
import json
import zlib
from pathlib import Path
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Tuple

from miro_edge.errors import StoreError
from miro_edge.memory.store.backends.base import BACKEND_INFO_PREFIX, SPLITS, ReadTxn, WriteTxn
from miro_edge.memory.store.layout import check_format, layout_nbytes, parse_layout

META_CRC = "meta_crc"
SEALED = "sealed"  # "1" once a store has been sealed: a seal that goes missing afterwards is damage
TASK_COUNTS = "task_counts"  # JSON {"<task id>:<split code>": records}


class StoreMetadataError(StoreError):
    """The store's metadata fails its checksum or disagrees with the records; nothing was changed."""


def meta_crc(info: Mapping[str, str], counts: Mapping[Tuple[int, int], int]) -> str:
    """CRC32 of the sealed metadata: ``info`` (but the seal and backend keys) and the class counts."""
    items = sorted((k, v) for k, v in info.items() if k != META_CRC and not k.startswith(BACKEND_INFO_PREFIX))
    text = json.dumps([items, sorted([s, lab, c] for (s, lab), c in counts.items() if c)], separators=(",", ":"))
    return str(zlib.crc32(text.encode("utf-8")))


def seal(txn: WriteTxn) -> None:
    """Recompute the metadata checksum at the end of a write transaction (O(classes))."""
    info = dict(txn.info(), **{SEALED: "1"})
    txn.put_info({SEALED: "1", META_CRC: meta_crc(info, txn.counts())})


def task_counts(info: Mapping[str, str]) -> Dict[Tuple[int, int], int]:
    """(task id, split code) -> records, as ``info`` records them."""
    raw = json.loads(info.get(TASK_COUNTS, "{}"))
    out: Dict[Tuple[int, int], int] = {}
    for key, n in raw.items():
        task, split = key.split(":")
        out[(int(task), int(split))] = int(n)
    return out


def task_counts_info(counts: Mapping[Tuple[int, int], int]) -> Dict[str, str]:
    """The ``info`` entry for per-task counts (zero counts dropped)."""
    return {TASK_COUNTS: json.dumps({f"{t}:{s}": n for (t, s), n in sorted(counts.items()) if n},
                                    sort_keys=True, separators=(",", ":"))}


def metadata_problems(txn: ReadTxn, info: Mapping[str, str], nbytes: Optional[int]) -> List[str]:
    """The cheap checks run on every open: the seal, next id against the highest record id, and
    the layout against a stored payload's length. O(classes) plus two index probes."""
    problems: List[str] = []
    sealed = info.get(META_CRC)
    if sealed is not None and sealed != meta_crc(info, txn.counts()):
        problems.append("its metadata (layout, next id, byte and class counts) fails its checksum")
    elif sealed is None and SEALED in info:
        problems.append("its metadata checksum is missing")
    top = txn.max_record_id()
    try:
        next_id = int(info.get("next_id", "0"))
    except ValueError:
        problems.append("next_id {!r} is not a number".format(info.get("next_id")))
        next_id = None
    if top is not None and next_id is not None and next_id <= top:
        problems.append(f"next_id says {next_id} but record {top} exists (new records would reuse ids)")
    if nbytes is not None and top is not None:
        first = txn.scan(-1, 1)
        if first and len(first[0].payload) != nbytes:
            problems.append(f"the layout says {nbytes}-byte samples but the records hold {len(first[0].payload)} bytes")
    return problems


def checked_layout(txn: ReadTxn, info: Mapping[str, str], backend: Any, path: Path) -> Optional[Tuple[tuple, Any]]:
    """What an open checks: format version, layout, seals and the cross-checks above, and the
    backend's own (``StoreBackend.problems``). Returns the layout (None before the first
    ingest); raises ``StoreMetadataError`` naming every problem found and the fix."""
    problems: List[str] = []
    try:
        layout = parse_layout(info)
    except (ValueError, TypeError, KeyError) as exc:
        layout = None
        problems.append(f"its layout entries cannot be read ({exc!r})")
    problems.extend(metadata_problems(txn, info, None if layout is None else layout_nbytes(*layout)))
    if not any("checksum" in p for p in problems):  # a damaged seal says more than the fields it covers
        check_format(info, path)
    problems.extend(backend.problems())
    if problems:
        raise damaged_error(path, problems)
    return layout


def damaged_error(path: object, problems: List[str]) -> StoreMetadataError:
    return StoreMetadataError("the store at {} is damaged: {}. Nothing was read or changed; run `miro-edge store "
                              "verify {} --repair` to rebuild it from the records that survive (it reports what is "
                              "lost), or restore it from a backup".format(path, "; ".join(problems), path))


class StoreSummary(NamedTuple):
    """What a store holds, from its (checksummed) metadata: O(classes), no record is read.

    A resume compares it with what it expected (``compare``); ``verify`` checks the metadata
    itself against every record."""

    next_id: int
    records: int
    data_bytes: int
    per_task: Dict[int, Dict[str, int]]    # task id -> split -> records
    per_class: Dict[str, Dict[int, int]]   # split -> label -> records
    sample_shape: Optional[Tuple[int, ...]]
    dtype: Optional[str]
    sealed: bool                           # metadata carries a checksum (stores written before it: False)

    def compare(self, next_id: Optional[int] = None,
                per_task: Optional[Mapping[int, Mapping[str, int]]] = None,
                per_class: Optional[Mapping[str, Mapping[int, int]]] = None) -> List[str]:
        """Differences from what a caller expected, one sentence each (empty: as expected).

        Only what is passed is compared; a task or class missing here counts as 0 records."""
        out: List[str] = []
        if next_id is not None and next_id != self.next_id:
            out.append("next record id is {}, expected {} ({})".format(
                self.next_id, next_id, "records were lost" if self.next_id < next_id else "more was ingested"))
        for task, want in sorted((per_task or {}).items()):
            out.extend(_differences(f"task {task}", want, self.per_task.get(task, {})))
        for split, want_labels in sorted((per_class or {}).items()):
            have_labels = self.per_class.get(split, {})
            for label in sorted(set(want_labels) | set(have_labels)):
                out.extend(_differences(f"class {label}", {split: want_labels.get(label, 0)},
                                        {split: have_labels.get(label, 0)}))
        return out


def _differences(what: str, want: Mapping[str, int], have: Mapping[str, int]) -> List[str]:
    return [f"{what} has {have.get(split, 0)} {split} records, expected {want.get(split, 0)}"
            for split in sorted(set(want) | set(have)) if want.get(split, 0) != have.get(split, 0)]


def summarize(info: Mapping[str, str], counts: Mapping[Tuple[int, int], int]) -> StoreSummary:
    per_task: Dict[int, Dict[str, int]] = {}
    for (task, split), n in sorted(task_counts(info).items()):
        per_task.setdefault(task, {})[SPLITS[split]] = n
    per_class: Dict[str, Dict[int, int]] = {}
    for (split, label), n in sorted(counts.items()):
        if n and 0 <= split < len(SPLITS):
            per_class.setdefault(SPLITS[split], {})[label] = n
    shape = tuple(json.loads(info["sample_shape"])) if "sample_shape" in info else None
    return StoreSummary(int(info.get("next_id", "0")), sum(counts.values()), int(info.get("data_bytes", "0")),
                        per_task, per_class, shape, info.get("dtype"), META_CRC in info)
