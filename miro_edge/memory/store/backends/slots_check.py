"""Checks of the slots backend's own metadata (the ``slot_file`` row and the free-slot list)
against its checksum and against the data, so that a damaged slot count, stride or file length
is an error that names the problem instead of a silent overwrite or wrong samples.

The ``slot_file`` row changes on every commit that writes slots; its CRC32 is kept in the
``info`` table (key ``backend:slot_file_crc``) in the same transaction.
"""
import os
import sqlite3
import zlib
from pathlib import Path
from typing import List, Optional

from miro_edge.memory.store.backends.base import BACKEND_INFO_PREFIX
from miro_edge.memory.store.backends.slots_index import SLOT_LAYOUT, _stride

SLOT_FILE_CRC = BACKEND_INFO_PREFIX + "slot_file_crc"


def slot_file_crc(layout: int, gen: int, slot_count: int, payload_bytes: Optional[int], stride: Optional[int]) -> str:
    text = f"{layout}|{gen}|{slot_count}|{payload_bytes}|{stride}"
    return str(zlib.crc32(text.encode("ascii")))


def slot_file_problems(conn: sqlite3.Connection, slots_path: Path, fd: int, deep: bool) -> List[str]:
    """What is wrong with the slot-file metadata (empty: nothing found). Cheap unless ``deep``.

    All from one snapshot (a writer may commit meanwhile; the file only grows past what a
    snapshot references)."""
    if conn.in_transaction:
        return _problems(conn, slots_path, fd, deep)
    conn.execute("BEGIN")
    try:
        return _problems(conn, slots_path, fd, deep)
    finally:
        conn.execute("ROLLBACK")


def _problems(conn: sqlite3.Connection, slots_path: Path, fd: int, deep: bool) -> List[str]:
    problems: List[str] = []
    layout, gen, slot_count, payload_bytes, stride = conn.execute(
        "SELECT layout, gen, slot_count, payload_bytes, stride FROM slot_file").fetchone()
    row = conn.execute("SELECT value FROM info WHERE key=?", (SLOT_FILE_CRC,)).fetchone()
    sealed = conn.execute("SELECT value FROM info WHERE key='sealed'").fetchone() is not None
    if row is None and sealed and slot_count:  # written by a miro_edge that keeps the checksum: it went missing
        problems.append("the slot-file metadata has lost its checksum")
    if row is not None and str(row[0]) != slot_file_crc(layout, gen, slot_count, payload_bytes, stride):
        problems.append(f"the slot-file metadata (layout {layout}, generation {gen}, slot count {slot_count}, payload bytes {payload_bytes}, stride {stride}) "
                        "fails its checksum")
    if layout != SLOT_LAYOUT:
        problems.append(f"the slot file has layout {layout}, this miro_edge reads layout {SLOT_LAYOUT}")
    if (payload_bytes is None) != (stride is None) or \
            payload_bytes is not None and (payload_bytes < 0 or stride != _stride(payload_bytes)):
        problems.append(f"the slot stride {stride} does not fit {payload_bytes}-byte payloads")
        return problems
    top = conn.execute("SELECT MAX(slot) FROM records").fetchone()[0]
    if top is not None and top >= slot_count:
        problems.append(f"slot count says {slot_count} but a record occupies slot {top}")
    if stride:
        size = os.fstat(fd).st_size if fd >= 0 else 0
        needed = max(slot_count, 0 if top is None else top + 1) * stride
        if size < needed:
            lost = conn.execute("SELECT COUNT(*) FROM records WHERE (slot + 1) * ? > ?", (stride, size)).fetchone()[0]
            problems.append(f"{slots_path} holds {size} bytes but its index needs {needed} ({needed // stride} slots of {stride} bytes): the file was cut "
                            f"short, {lost} records lie past its end")
    if deep:
        used = conn.execute("SELECT COUNT(*) FROM free_slots f JOIN records r ON r.slot = f.slot").fetchone()[0]
        if used:
            problems.append(f"{used} slots on the free list are occupied by records")
        beyond = conn.execute("SELECT COUNT(*) FROM free_slots WHERE slot >= ? OR slot < 0",
                              (slot_count,)).fetchone()[0]
        if beyond:
            problems.append(f"{beyond} free-list slots lie outside the slot count {slot_count}")
    return problems
