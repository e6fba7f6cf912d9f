"""Checking and decoding stored records into samples: the hot path of every read.

A record is served only if its CRC32 matches and its split code is known; a failed one is
reported to ``on_corrupt`` and counted, never returned.
"""
import json
import struct
import zlib
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np

from miro_edge.memory.store.backends.base import SPLITS, RawRecord
from miro_edge.memory.store.records import _CRC_HEAD
from miro_edge.memory.types import StoredSample


def decode_many(raws: Sequence[RawRecord], shape: Optional[tuple], dtype: Optional[np.dtype], nbytes: int,
                on_corrupt: Callable[[int], None]) -> Tuple[List[StoredSample], int]:
    """Check and decode records; return the good ones (in order) and how many failed.

    The hot path of every read, written for speed: ``checksum()`` inlined, and all payloads
    copied ONCE into one fresh writable buffer whose rows become the samples' arrays
    (non-overlapping views of it, owned by no database: valid after the transaction, even
    where the backend handed out views of its memory map). A failed record's row is zeroed.
    """
    if dtype is None or shape is None:  # records without a layout cannot be served
        for raw in raws:
            on_corrupt(raw.record_id)
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
                on_corrupt(raw[0])
        decoded, corrupt = decode_many(good, shape, dtype, nbytes, on_corrupt)
        return decoded, corrupt + n - len(good)
    rows = np.ndarray((n,) + shape, dtype, buf) if nbytes else np.zeros((n,) + shape, dtype)  # over buf, writable
    crc32, head, new, splits = zlib.crc32, _CRC_HEAD.pack, tuple.__new__, SPLITS
    out: List[StoredSample] = []
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
        on_corrupt(rid)
        corrupt += 1
    return out, corrupt
