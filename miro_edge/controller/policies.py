"""Built-in controller policies beside Miro's profiler, and the factory that picks one by name."""
from typing import Any, Callable, Optional, Sequence

import numpy as np

from miro_edge.controller.config import POLICIES, ControllerConfig
from miro_edge.controller.footprint import MB
from miro_edge.controller.grid import max_fit
from miro_edge.controller.miro import MiroController, ProfileResult
from miro_edge.events import ChoiceEvent
from miro_edge.memory.em import EpisodicMemory
from miro_edge.memory.swap import SwapConfig
from miro_edge.memory.types import SampleSource
from miro_edge.model.architectures import IncrementalClassifier
from miro_edge.recorder import Recorder
from miro_edge.train.trainer import TrainConfig


@POLICIES.register("max_fit")
class MaxFitPolicy(MiroController):
    """The baseline a user gets by giving replay all the memory they have: per task, the largest
    EM and SB that fit the budget (``grid.max_fit``), no profiling. It adapts to budget drops
    and I/O congestion exactly like the controller, so comparisons isolate the choice."""

    def profile(self, task_id: int, model: IncrementalClassifier, em: EpisodicMemory, task_x: np.ndarray, task_y: np.ndarray,
                store: SampleSource, old_classes: Sequence[int], swap: SwapConfig) -> ProfileResult:
        inputs, _ = self._task_inputs(model, task_x, task_y, store, old_classes)
        candidate = max_fit(inputs.memory_budget_bytes, inputs, self.config.grid)
        reason = f"max-fit: the largest EM and SB within {inputs.memory_budget_bytes / MB:.2f} MB"
        event = ChoiceEvent(task_id, candidate.em_size, candidate.sb_size, "max_fit", reason, None)
        self.recorder.write(event)
        self.current = candidate
        self.profiled_swap_ratio = swap.swap_ratio
        return ProfileResult(task_id, candidate, reason, None, [], 0.0, self.meter.label, 0.0)


def create_controller(config: ControllerConfig, train_config: TrainConfig, meter: Any, recorder: Recorder,
                      snapshot: Optional[Callable[[], Any]] = None) -> MiroController:
    """The controller the config's ``policy`` names."""
    return POLICIES.create(config.policy, config, train_config, meter, recorder, snapshot)
