"""The store's self-description in ``info``: format version, creator, and the sample layout
(shape and dtype) fixed by the first ingest."""
import json
import time
from pathlib import Path
from typing import Dict, Mapping, Optional, Tuple

import numpy as np

import miro_edge
from miro_edge.errors import StoreError
from miro_edge.memory.store.backends.base import INFO_FORMAT_VERSION
from miro_edge.memory.store.errors import StoreVersionError

FORMAT_VERSION = 1


def new_info(backend_name: str) -> Dict[str, str]:
    """The ``info`` entries of a store created now."""
    return {INFO_FORMAT_VERSION: str(FORMAT_VERSION), "backend": backend_name, "next_id": "0", "data_bytes": "0",
            "created_unix": "{:.3f}".format(time.time()), "created_by": "miro_edge {}".format(miro_edge.__version__)}


def check_format(info: Mapping[str, str], path: Path) -> None:
    """Raise unless ``info`` describes a store of the format this miro_edge reads."""
    version = info.get(INFO_FORMAT_VERSION)
    if version is None or not version.isdigit():
        raise StoreError("{} holds a database that is not a miro_edge sample store (no format version); "
                         "point the store at an empty directory".format(path))
    if int(version) != FORMAT_VERSION:
        raise StoreVersionError(
            "the store at {} has format version {}, this miro_edge ({}) reads version {}; {}".format(
                path, version, miro_edge.__version__, FORMAT_VERSION,
                "upgrade miro_edge to open it" if int(version) > FORMAT_VERSION
                else "no migration exists from that version; re-ingest into a new store"))


def layout_info(shape: tuple, dtype: np.dtype) -> Dict[str, str]:
    """The ``info`` entries that fix the sample layout."""
    return {"sample_shape": json.dumps(list(shape)), "dtype": dtype.str}


def parse_layout(info: Mapping[str, str]) -> Optional[Tuple[tuple, np.dtype]]:
    """(shape, dtype) from ``info``, or None before the layout is fixed."""
    if "sample_shape" not in info:
        return None
    return tuple(json.loads(info["sample_shape"])), np.dtype(info["dtype"])
