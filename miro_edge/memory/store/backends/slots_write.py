"""The slots backend's write transaction: slot allocation, payload writes and the copy-on-write
index changes that the backend publishes after its commit."""
from typing import Dict, List, Optional, Sequence, Tuple

from miro_edge.errors import StoreError, StoreFullError
from miro_edge.memory.store.backends import sqlite as sqlite_backend
from miro_edge.memory.store.backends.base import RawRecord, pad_params
from miro_edge.memory.store.backends.slots_index import (
    _HDR,
    _HOLE,
    _MAX_SLOTS,
    _PAD,
    _ROW_SQL,
    _TAG,
    _damaged,
    _stride,
    _Work,
)
from miro_edge.memory.store.backends.slots_rows import _SlotStatements


class _SlotTxn(_SlotStatements, sqlite_backend._Txn):
    """The writer's statements: what ``_SlotStatements`` reads, plus the writes."""

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
            raise StoreFullError(f"the slot file of {self.path} is full ({_MAX_SLOTS} slots); nothing from this call was stored. Set a "
                                 "quota (quota_samples) so that evicted slots are reused")
        got.extend(range(w.slot_count, w.slot_count + more))
        w.slot_count += more
        self._check_unoccupied(got)
        return got

    def _check_unoccupied(self, slots: List[int]) -> None:
        """Refuse to write into a slot a committed record occupies (a damaged slot count or free
        list would otherwise overwrite live records): two index probes per call."""
        row = None
        for start in range(0, len(slots), 512):
            size, params = pad_params(slots[start:start + 512])
            row = self.conn.execute("SELECT id, slot FROM records WHERE slot IN ({}) LIMIT 1".format(
                ",".join("?" * size)), params).fetchone()
            if row is not None:
                break
        if row is not None:
            raise StoreError(f"the store at {self.path.parent} is damaged: its slot metadata hands out slot {row[1]}, which record {row[0]} "
                             "occupies (a lowered slot count or a damaged free list); nothing was written. Run "
                             f"`miro-edge store verify {self.path.parent} --repair`")

    def put_records(self, rows: Sequence[RawRecord]) -> None:
        if not rows:
            return
        w = self._w()
        if w.payload_bytes is None or w.stride is None:
            w.payload_bytes = len(rows[0].payload)
            w.stride = _stride(w.payload_bytes)
        nbytes, stride = w.payload_bytes, w.stride
        if any(len(r.payload) != nbytes for r in rows):
            raise StoreError(f"the slot file of {self.path} holds {nbytes}-byte payloads; got other sizes")
        slots = self._allocate(len(rows))
        pad = bytes(stride - _HDR.size - nbytes)
        pack = _HDR.pack
        blobs = [b"".join((pack(r.record_id, r.label, r.task_id, r.crc, -1 if r.meta is None else len(r.meta),
                                nbytes, r.split, _PAD), r.payload, pad)) for r in rows]
        w.wrote = True
        self.backend._pwrite(slots, blobs, stride, w.start_count)
        self.conn.executemany("INSERT INTO records(id, split, label, ord, task_id, meta, slot) VALUES (?,?,?,?,?,?,?)",
                              [(r.record_id, r.split, r.label, r.ord, r.task_id, r.meta, s)
                               for r, s in zip(rows, slots)])
        by_class: Dict[Tuple[int, int], Tuple[List[int], List[int]]] = {}
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
