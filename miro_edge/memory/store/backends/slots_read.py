"""The slots backend's read path: a reader thread's statements over the RAM index pinned for one
read (``_SlotReadTxn``) and the context manager that pins it (``_SlotRead``)."""
import os
import sqlite3
import struct
from typing import Any, Dict, List, Optional, Sequence, Tuple

from miro_edge.memory.store.backends.base import RawRecord, pad_params
from miro_edge.memory.store.backends.slots_index import _HDR, _HOLE, _PAD, _ROW_SQL, _TAG, Row, _Index
from miro_edge.memory.store.backends.slots_rows import _SlotStatements
from miro_edge.memory.store.backends.sqlite import map_error, map_read_error


class _SlotReadTxn(_SlotStatements):
    """A reader thread's statements: the draw calls use the RAM index pinned for this read."""

    def __init__(self, conn: sqlite3.Connection, backend: Any) -> None:
        super().__init__(conn, backend)
        self.idx: Optional[_Index] = None  # pinned by _SlotRead for the duration of one read
        self.seen_version: Optional[int] = None  # PRAGMA data_version when seen_index was checked
        self.seen_index: Optional[_Index] = None
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
        out: Dict[int, int] = {}
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
        out: List[Optional[int]] = []
        it = iter(heads)
        for o, e in zip(ords, entries):
            head = next(it) if e >= 0 else b""
            if len(head) == _HDR.size:
                rid, lab, _, _, _, _, sp, _ = _HDR.unpack(head)
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
        out: List[RawRecord] = []
        append = out.append
        with_meta: List[Tuple[int, int]] = []  # (position in out, metadata length the slot says)
        stale: List[Tuple[int, int]] = []
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
                        rid, lab, task, crc, mlen, plen, sp, pad = unpack(data)
                    except struct.error:  # a hole in the index, or past the end of the file
                        stale.append((label, o))
                        continue
                    if lab == label and sp == split and not (rid ^ e) & _TAG and plen == nbytes and pad == _PAD \
                            and mlen >= -1:  # the slot holds what the index says, its header intact
                        if mlen >= 0:
                            with_meta.append((len(out), mlen))
                        append(new(RawRecord, (rid, split, label, o, task, crc, None, memoryview(data)[hs:end])))
                    else:
                        stale.append((label, o))
        except OSError as exc:
            raise b._read_error(exc) from exc
        if with_meta or stale:
            self._finish(split, out, with_meta, stale)
        return out

    def _finish(self, split: int, out: List[RawRecord], with_meta: List[Tuple[int, int]],
                stale: List[Tuple[int, int]]) -> None:
        """The rare parts of a read: metadata from SQLite, and slots that did not match the index."""
        try:
            if with_meta:  # metadata lives in SQLite; a record evicted meanwhile is left out
                metas = {int(i): m for i, m in self._metas([out[k].record_id for k, _ in with_meta])}
                gone = set()
                for k, mlen in with_meta:
                    rid = out[k].record_id
                    if rid not in metas:
                        gone.add(k)
                    elif metas[rid] is None or len(metas[rid] or b"") != mlen:  # the header's length disagrees: damage
                        out[k] = out[k]._replace(payload=b"")  # fails SampleStore's checks: counted, not served
                    else:
                        out[k] = out[k]._replace(meta=metas[rid])
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
        out: List[Tuple[int, Optional[bytes]]] = []
        for start in range(0, len(ids), 512):
            size, params = pad_params(ids[start:start + 512])
            out.extend(self.conn.execute("SELECT id, meta FROM records WHERE id IN ({})".format(
                ",".join("?" * size)), params))
        return out


class _SlotRead:
    """Context manager of one read: pins a RAM index that matches the committed state."""

    __slots__ = ("backend", "txn", "snapshot", "held")

    def __init__(self, backend: Any, txn: _SlotReadTxn, snapshot: bool) -> None:
        self.backend = backend
        self.txn = txn
        self.snapshot = snapshot
        self.held: Optional[int] = None

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

    def __exit__(self, exc_type: Any = None, exc: Any = None, tb: Any = None) -> None:
        self.txn.idx = None
        if self.held is not None:
            self.backend._shared.release(self.held)
            self.held = None
        if self.txn.conn.in_transaction:
            self.txn.conn.execute("ROLLBACK")
        mapped = None if exc is None else map_read_error(exc, self.backend.db_path)
        if mapped is not None:
            raise mapped from exc
