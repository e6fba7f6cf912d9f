"""Memory configuration: EM and SB sizes, swapping, and the store."""
from dataclasses import dataclass
from typing import Optional

from miro_edge.config import field, require
from miro_edge.memory.store import StoreConfig
from miro_edge.memory.swap import SwapConfig


@dataclass(frozen=True)
class MemoryConfig:
    em_size: Optional[int] = field(50, help="EM slots in RAM for old samples; null = every old sample (the ceiling)")
    sb_size: Optional[int] = field(None, help="SB slots for the current task; null = the whole task")
    swap: SwapConfig = field(default_factory=SwapConfig, help="asynchronous swapping between EM and store")
    store: StoreConfig = field(default_factory=StoreConfig, help="the disk tier: backend and quotas")
    val_fraction: float = field(0.1, help="fraction of each new class held out in the store for validation")

    def __post_init__(self) -> None:
        require(self.em_size is None or self.em_size >= 0, "em_size", "must be >= 0 or null")
        require(self.sb_size is None or self.sb_size >= 1, "sb_size", "must be >= 1 or null")
        require(0.0 <= self.val_fraction < 1.0, "val_fraction", "must be in [0, 1)")
