"""PyTorch engine: the reference, eager mode, from the version's checkpoint."""
import logging
from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np

from miro_edge.errors import HardwareUnavailableError, InputError
from miro_edge.infer.base import ENGINES, EngineOptions, InferenceEngine

logger = logging.getLogger(__name__)


@ENGINES.register("torch")
class TorchEngine(InferenceEngine):
    """Runs the checkpoint's model with ``torch.inference_mode``.

    ``intra_op_threads`` is applied with ``torch.set_num_threads``, which is process-wide.
    """

    name = "torch"

    def __init__(self, artifacts: Mapping[str, Path], options: Optional[EngineOptions] = None) -> None:
        from miro_edge.model.artifacts import CHECKPOINT_ARTIFACT
        from miro_edge.model.checkpoint import read_checkpoint

        if CHECKPOINT_ARTIFACT not in artifacts:
            raise InputError(f"the torch engine needs a checkpoint.pt artifact; got {sorted(artifacts)}")
        self.checkpoint_path = Path(artifacts[CHECKPOINT_ARTIFACT])
        meta = read_checkpoint(self.checkpoint_path)
        super().__init__(tuple(int(v) for v in meta["input_shape"]), options)
        self.model: Any = None
        self.device = "cpu"

    @classmethod
    def unavailable_reason(cls, artifacts: Mapping[str, Path], options: EngineOptions) -> Optional[str]:
        return None if "checkpoint.pt" in artifacts else "no checkpoint.pt artifact"

    def _open(self) -> None:
        import torch

        from miro_edge.model.checkpoint import model_from_checkpoint

        want = self.options.device
        if want == "cuda" and not torch.cuda.is_available():
            raise HardwareUnavailableError("torch engine asked for device cuda but torch sees no GPU; use device auto")
        self.device = "cuda" if want == "cuda" or (want == "auto" and torch.cuda.is_available()) else "cpu"
        if self.options.intra_op_threads > 0:
            torch.set_num_threads(self.options.intra_op_threads)
        model = model_from_checkpoint(self.checkpoint_path).to(self.device)
        if self.options.fp16 and self.device == "cuda":
            model = model.half()
        self.model = model

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            x = torch.from_numpy(batch).to(self.device)
            if self.options.fp16 and self.device == "cuda":
                x = x.half()
            return self.model(x).float().cpu().numpy()

    def _close(self) -> None:
        self.model = None
