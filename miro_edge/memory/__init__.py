"""Hierarchical episodic memory: the crash-safe store (disk tier), the EM arena and stream buffer
in RAM, and the swap worker between them."""
from miro_edge.memory.config import MemoryConfig
from miro_edge.memory.em import EpisodicMemory, ResizeReport, balanced_quota
from miro_edge.memory.sb import StreamBuffer
from miro_edge.memory.store import (
                                    DEFAULT_BACKEND,
                                    RecordNotFoundError,
                                    RepairReport,
                                    SampleStore,
                                    StoreConfig,
                                    StoreMetadataError,
                                    StoreStats,
                                    StoreSummary,
                                    StoreVersionError,
                                    VerifyReport,
                                    repair_store,
)
from miro_edge.memory.store.backends.base import STORE_BACKENDS
from miro_edge.memory.swap import SwapConfig, SwapStats, SwapWorker
from miro_edge.memory.types import SampleSource, StoredSample

__all__ = ["DEFAULT_BACKEND", "EpisodicMemory", "MemoryConfig", "RecordNotFoundError", "RepairReport", "ResizeReport",
           "STORE_BACKENDS", "SampleSource", "SampleStore", "StoreConfig", "StoreMetadataError", "StoreStats",
           "StoreSummary", "StoreVersionError", "StoredSample", "StreamBuffer", "SwapConfig", "SwapStats", "SwapWorker",
           "VerifyReport", "balanced_quota", "repair_store"]
