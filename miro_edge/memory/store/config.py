"""The ``store`` section of the config, and the default backend."""
import dataclasses
from typing import Optional

from miro_edge.config import field, require
from miro_edge.memory.store.backends.base import STORE_BACKENDS

DEFAULT_BACKEND = "slots"  # decided by benches/store_reads.py; numbers and reasons in docs/store.md


@dataclasses.dataclass(frozen=True)
class StoreConfig:
    """The ``store`` section of the config (the path is given where the store is opened)."""

    backend: Optional[str] = field(None, help="how the samples are stored: slots, sqlite or lmdb; null: "
                                              "the one already at the path, else slots")
    quota_bytes: Optional[int] = field(None, help="cap on stored sample bytes (payload + metadata); "
                                                  "over it, ingest evicts class-balanced")
    quota_samples: Optional[int] = field(None, help="cap on the number of stored samples; over it, "
                                                    "ingest evicts class-balanced")
    allow_nonfinite: bool = field(False, help="accept float samples containing NaN or inf")

    def __post_init__(self) -> None:
        require(self.backend is None or self.backend in STORE_BACKENDS, "backend",
                "unknown backend {!r}; choose one of: {}".format(self.backend, ", ".join(STORE_BACKENDS.names())))
        require(self.quota_bytes is None or self.quota_bytes > 0, "quota_bytes", "must be positive or null")
        require(self.quota_samples is None or self.quota_samples > 0, "quota_samples",
                "must be positive or null")
