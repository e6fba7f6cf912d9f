"""The record format and the validation of what callers hand to the store.

A record is (id, label, task id, split code, optional JSON metadata, payload bytes); its CRC32
covers all of them (``checksum``). The helpers turn caller values into those fields or raise an
``InputError`` that names the problem, before anything is written.
"""
import json
import struct
import zlib
from pathlib import Path
from typing import Any, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from miro_edge.errors import InputError
from miro_edge.memory.store.backends.base import SPLITS

INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
_CRC_HEAD = struct.Struct("<qqqB")
_NUMERIC_KINDS = "biufc"


def split_code(split: object) -> int:
    if split not in SPLITS:
        raise InputError("split must be one of {}, got {!r}".format(", ".join(repr(s) for s in SPLITS), split))
    return SPLITS.index(split)


def as_int(value: object, what: str, minimum: int = INT64_MIN) -> int:
    if type(value) is int and minimum <= value <= INT64_MAX:  # the common case, fast
        return value
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise InputError(f"{what} must be an integer (python int or numpy integer), got {value!r} of type {type(value).__name__}; map class "
                         "names or other values to integer ids before ingesting")
    out = int(value)
    if not minimum <= out <= INT64_MAX:
        raise InputError(f"{what} must be an integer in [{minimum}, 2**63 - 1], got {out}")
    return out


def as_ints(values: object, what: str) -> List[int]:
    """``as_int`` over a sequence (or integer array), with one cheap pass when all are plain ints."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "iu" and values.dtype.itemsize <= 8:
        out = values.tolist()
        if values.dtype.kind == "i" or not out or max(out) <= INT64_MAX:
            return out
    out = list(values)  # type: ignore[call-overload]
    for v in out:
        if type(v) is not int:
            return [as_int(v, what) for v in out]
    if out and (min(out) < INT64_MIN or max(out) > INT64_MAX):
        return [as_int(v, what) for v in out]
    return out


def as_array(x: object) -> np.ndarray:
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch tensor, without importing torch
        return x.detach().cpu().numpy()
    return np.asarray(x)


def check_dtype(dtype: object) -> np.dtype:
    try:
        dt = np.dtype(dtype)  # type: ignore[call-overload]
    except TypeError as exc:
        raise InputError(f"dtype {dtype!r} is not a numpy dtype ({exc})") from None
    if dt.kind not in _NUMERIC_KINDS or dt.fields is not None or dt.subdtype is not None:
        raise InputError(f"the store holds numeric arrays (bool, int, uint, float, complex); dtype {dt} is not "
                         "one")
    return dt


def meta_bytes(meta: object, index: int) -> Optional[bytes]:
    if meta is None:
        return None
    if not isinstance(meta, Mapping):
        raise InputError(f"meta of sample {index} must be a dict of JSON values or None, got {type(meta).__name__}")
    try:
        return json.dumps(dict(meta), sort_keys=True, separators=(",", ":"), allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise InputError(f"meta of sample {index} is not JSON-serialisable ({exc}); use str/int/float/bool/list/dict "
                         "values") from None


def checksum(record_id: int, label: int, task_id: int, split: int, meta: Optional[bytes],
             payload: Union[bytes, memoryview]) -> int:
    """CRC32 of everything a record says (its ordinal, an index detail, is not covered)."""
    crc = zlib.crc32(_CRC_HEAD.pack(record_id, label, task_id, split))
    if meta is not None:
        crc = zlib.crc32(meta, crc)
    return zlib.crc32(payload, crc)


def sample_payloads(xs: object, shape: Optional[tuple], dtype: Optional[np.dtype], allow_nonfinite: bool,
                path: Path) -> Tuple[List[bytes], tuple, np.dtype]:
    """Validate samples against the layout (``None``: taken from the first); return their bytes,
    shape and dtype."""
    if isinstance(xs, np.ndarray) and xs.ndim >= 1 and len(xs) > 0:
        arrays: List[np.ndarray] = [xs]
        batched = True
    else:
        arrays = [as_array(x) for x in xs]  # type: ignore[attr-defined]
        batched = False
        if not arrays:
            return [], shape or (), dtype or np.dtype("u1")
    first = arrays[0][0] if batched else arrays[0]
    if shape is None:
        shape = tuple(int(d) for d in first.shape)
    if dtype is None:
        dtype = check_dtype(first.dtype)
    for i, arr in enumerate(arrays):
        got_shape = tuple(arr.shape[1:]) if batched else tuple(arr.shape)
        if got_shape != shape or arr.dtype != dtype:
            where = "the samples" if batched else f"sample {i}"
            raise InputError(f"{where} have shape {got_shape} and dtype {arr.dtype}, but the store at {path} holds shape {shape} and dtype {dtype}; "
                             "reshape/cast before ingesting (nothing was stored)")
        if dtype.kind in "fc" and not allow_nonfinite and not np.isfinite(arr).all():
            bad = int(np.flatnonzero(~np.isfinite(arr).reshape(len(arr), -1).all(axis=1))[0]) if batched else i
            raise InputError(f"sample {bad} contains NaN or inf; clean it, or open the store with "
                             "allow_nonfinite=True to keep such samples (nothing was stored)")
    if batched:
        buf = np.ascontiguousarray(arrays[0]).tobytes()
        size = len(buf) // len(arrays[0])
        return [buf[i * size:(i + 1) * size] for i in range(len(arrays[0]))], shape, dtype
    return [arr.tobytes() for arr in arrays], shape, dtype


def record_fields(n: int, labels: Sequence[object], task_id: object, splits: Optional[Union[str, Sequence[str]]],
                  metas: Optional[Sequence[Optional[Mapping[str, Any]]]]) -> Tuple[List[int], List[int],
                                                                                  List[Optional[bytes]], int]:
    """Check the per-sample fields of an ingest of ``n`` samples: (labels, split codes, meta JSON, task id)."""
    labels = labels.tolist() if isinstance(labels, np.ndarray) and labels.dtype.kind in "iu" else list(labels)
    if len(labels) != n:
        raise InputError(f"ingest_batch got {n} samples but {len(labels)} labels; pass one label per sample")
    if splits is None:
        codes = [0] * n
    elif isinstance(splits, str):
        codes = [split_code(splits)] * n
    else:
        codes = [split_code(s) for s in splits]
    if len(codes) != n:
        raise InputError(f"ingest_batch got {n} samples but {len(codes)} splits")
    metas_b: List[Optional[bytes]] = [None] * n if metas is None else [meta_bytes(m, i) for i, m in enumerate(metas)]
    if len(metas_b) != n:
        raise InputError(f"ingest_batch got {n} samples but {len(metas_b)} metas")
    labs = [as_int(lab, f"label of sample {i}") for i, lab in enumerate(labels)]
    task = as_int(task_id, "task_id", 0)
    return labs, codes, metas_b, task
