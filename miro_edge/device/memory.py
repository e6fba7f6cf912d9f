"""Give freed heap memory back to the OS after shrinking EM or SB.

glibc keeps freed blocks below its (adaptive, up to 32 MB) mmap threshold in the heap, so a
shrunk EM may not lower the process RSS until ``malloc_trim`` returns them. A no-op elsewhere.
"""
import ctypes
import ctypes.util
import gc
import logging
from typing import Optional

logger = logging.getLogger(__name__)
_libc: Optional[ctypes.CDLL] = None


def release_memory() -> bool:
    """Collect garbage and trim the C heap; returns True if the heap was trimmed."""
    global _libc
    gc.collect()
    try:
        if _libc is None:
            _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(_libc.malloc_trim(0))
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
        return False
