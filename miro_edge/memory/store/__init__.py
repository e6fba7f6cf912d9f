"""The crash-safe sample store: the disk tier of HEM (see ``sample_store.py``).

Modules: ``sample_store`` (the ``SampleStore`` API), ``records`` (record format, validation),
``layout`` (the store's self-description), ``integrity`` (metadata seal, cross-checks, summary),
``decode`` (checks and decoding), ``draw`` (uniform per-class draws), ``eviction`` (class-balanced
quotas), ``verify`` (the full scan), ``repair`` (rebuild from what survives), and ``backends/``
(one storage engine per module).
"""
from miro_edge.memory.store.backends.base import STORE_BACKENDS
from miro_edge.memory.store.config import DEFAULT_BACKEND, StoreConfig
from miro_edge.memory.store.draw import distinct_ints
from miro_edge.memory.store.errors import RecordNotFoundError, StoreVersionError
from miro_edge.memory.store.integrity import StoreMetadataError, StoreSummary
from miro_edge.memory.store.layout import FORMAT_VERSION
from miro_edge.memory.store.records import checksum
from miro_edge.memory.store.repair import RepairReport, repair_store
from miro_edge.memory.store.sample_store import SampleStore, StoreStats
from miro_edge.memory.store.verify import VerifyReport

__all__ = ["DEFAULT_BACKEND", "FORMAT_VERSION", "RecordNotFoundError", "RepairReport", "STORE_BACKENDS", "SampleStore",
           "StoreConfig", "StoreMetadataError", "StoreStats", "StoreSummary", "StoreVersionError", "VerifyReport",
           "checksum", "distinct_ints", "repair_store"]
