"""What the controller's memory budget counts: bytes per EM/SB slot, the measured fixed training
overhead (weights, gradients, momentum, one minibatch of activations), and the budget itself
(the config's, lowered by the app or by the memory the OS reports available)."""
import copy
import threading
from typing import Any, Callable, List, Optional, Sequence

import numpy as np
import torch
from torch import nn

from miro_edge.controller.config import ControllerConfig

MB = 1024.0 * 1024.0


def bytes_per_sample(sample_shape: Sequence[int], dtype_bytes: int = 4) -> int:
    """RAM one EM/SB slot costs: the sample plus its label and store record id (int64 each)."""
    return int(np.prod(sample_shape)) * dtype_bytes + 16


def measure_overhead_bytes(model: nn.Module, input_shape: Sequence[int], batch_size: int,
                           num_classes: int) -> int:
    """Fixed training memory, measured once: weights, gradients and momentum (3x the parameter
    bytes) plus the activations a minibatch keeps for backward (module outputs, measured with
    forward hooks on a real forward pass of a copy)."""
    probe = copy.deepcopy(model)
    grow = getattr(probe, "grow", None)
    if callable(grow):
        grow(num_classes)
    params = sum(p.numel() * p.element_size() for p in probe.parameters())
    sizes: List[int] = []

    def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
        if isinstance(output, torch.Tensor):
            sizes.append(output.numel() * output.element_size())

    handles = [m.register_forward_hook(hook) for m in probe.modules() if not list(m.children())]
    try:
        probe.train()
        with torch.no_grad():
            probe(torch.zeros((max(2, batch_size),) + tuple(input_shape)))
    finally:
        for h in handles:
            h.remove()
    return int(3 * params + sum(sizes))


class MemoryBudget:
    """The current memory budget: the config's, lowered by API calls or available memory.
    Read from the training thread while the app may lower it from another."""

    def __init__(self, config: ControllerConfig, snapshot: Optional[Callable[[], Any]]) -> None:
        self._config = config
        self._snapshot = snapshot
        self._override: Optional[int] = None
        self._lock = threading.Lock()

    def set_bytes(self, value: Optional[int]) -> None:
        with self._lock:
            self._override = value

    def bytes(self) -> int:
        with self._lock:
            budget = int(self._config.memory_budget_mb * MB) if self._override is None else self._override
        if self._config.follow_available_memory and self._snapshot is not None:
            avail = self._snapshot().mem_available_bytes
            budget = min(budget, int(avail * self._config.available_memory_fraction))
        return budget
