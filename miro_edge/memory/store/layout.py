"""The store's self-description in ``info``: format version, creator, and the sample layout
(shape and dtype) fixed by the first ingest."""
import json
import time
import zlib
from pathlib import Path
from typing import Dict, Mapping, Optional, Tuple

import numpy as np

import miro_edge
from miro_edge.errors import StoreError
from miro_edge.memory.store.backends.base import INFO_FORMAT_VERSION
from miro_edge.memory.store.errors import StoreVersionError

FORMAT_VERSION = 1
LAYOUT_COPY = "layout_copy"


def new_info(backend_name: str) -> Dict[str, str]:
    """The ``info`` entries of a store created now."""
    return {INFO_FORMAT_VERSION: str(FORMAT_VERSION), "backend": backend_name, "next_id": "0", "data_bytes": "0",
            "created_unix": f"{time.time():.3f}", "created_by": f"miro_edge {miro_edge.__version__}"}


def check_format(info: Mapping[str, str], path: Path) -> None:
    """Raise unless ``info`` describes a store of the format this miro_edge reads."""
    version = info.get(INFO_FORMAT_VERSION)
    if version is None or not version.isdigit():
        raise StoreError(f"{path} holds a database that is not a miro_edge sample store (no format version); "
                         "point the store at an empty directory")
    if int(version) != FORMAT_VERSION:
        raise StoreVersionError(
            "the store at {} has format version {}, this miro_edge ({}) reads version {}; {}".format(
                path, version, miro_edge.__version__, FORMAT_VERSION,
                "upgrade miro_edge to open it" if int(version) > FORMAT_VERSION
                else "no migration exists from that version; re-ingest into a new store"))


def layout_info(shape: tuple, dtype: np.dtype) -> Dict[str, str]:
    """The ``info`` entries that fix the sample layout, plus a self-checking copy (``layout_copy``)
    from which ``repair`` recovers the layout when one of the entries is damaged."""
    text = json.dumps({"shape": list(shape), "dtype": dtype.str}, sort_keys=True, separators=(",", ":"))
    return {"sample_shape": json.dumps(list(shape)), "dtype": dtype.str,
            LAYOUT_COPY: "{}#{}".format(text, zlib.crc32(text.encode("utf-8")))}


def recover_layout(info: Mapping[str, str]) -> Optional[Tuple[tuple, np.dtype]]:
    """The layout despite one damaged entry: the copy if it checks out, else the primary entries."""
    copy = info.get(LAYOUT_COPY, "")
    text, _, crc = copy.rpartition("#")
    if text and crc == str(zlib.crc32(text.encode("utf-8"))):
        data = json.loads(text)
        return tuple(int(d) for d in data["shape"]), np.dtype(data["dtype"])
    try:
        return parse_layout(info)
    except (ValueError, TypeError, KeyError):
        return None


def parse_layout(info: Mapping[str, str]) -> Optional[Tuple[tuple, np.dtype]]:
    """(shape, dtype) from ``info``, or None before the layout is fixed."""
    if "sample_shape" not in info:
        return None
    shape = json.loads(info["sample_shape"])
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise ValueError("sample_shape {!r} is not a list of sizes".format(info["sample_shape"]))
    return tuple(shape), np.dtype(info["dtype"])


def layout_nbytes(shape: tuple, dtype: np.dtype) -> int:
    """Bytes of one sample's payload."""
    return int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
