"""Statements of the slots backend that both its reader and its writer run: rows by id, with
their slots read and checked against SQLite (the truth for id, class, task and metadata)."""
import sqlite3
from typing import Any, Dict, List, Optional, Sequence, Tuple

from miro_edge.memory.store.backends import sqlite as sqlite_backend
from miro_edge.memory.store.backends.base import RawRecord, ReadTxn, pad_params
from miro_edge.memory.store.backends.slots_index import _HDR, _PAD, _ROW_SQL, Row, _damaged, _Work
from miro_edge.memory.store.backends.sqlite import map_error


class _SlotStatements(sqlite_backend._ReadStatements):
    """Reads by id and scans over the index connection; slots are read through the backend."""

    def __init__(self, conn: sqlite3.Connection, backend: Any) -> None:
        super().__init__(conn, backend.db_path)
        self.backend = backend
        self.work: Optional[_Work] = None

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
        found: Dict[int, Row] = {}
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
        out: List[Optional[RawRecord]] = []
        redo: List[int] = []
        end = _HDR.size + nbytes
        for i, (row, data) in enumerate(zip(rows, datas)):
            if len(data) < end:  # the file is shorter than the index says
                out.append(_damaged(row))
                continue
            rid, label, task, crc, mlen, plen, split, pad = _HDR.unpack_from(data)
            if rid != row[0] and again:
                redo.append(i)
                out.append(None)
            elif rid != row[0]:  # still another record: reused after this snapshot began, or a damaged header
                out.append(None if self._reused(row) else _damaged(row))
            elif label != row[2] or task != row[4] or split != row[1] or plen != nbytes or pad != _PAD or \
                    mlen != (-1 if row[5] is None else len(row[5])):
                out.append(_damaged(row))
            else:
                out.append(RawRecord(row[0], split, label, row[3], task, crc, row[5], memoryview(data)[_HDR.size:end]))
        if redo:
            fresh = self.rows_by_id([rows[i][0] for i in redo])
            for i in redo:
                refreshed = fresh.get(rows[i][0])
                out[i] = None if refreshed is None else self.from_rows([refreshed], again=False)[0]
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
