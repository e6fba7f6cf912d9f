"""ONNX Runtime engine: providers TensorRT -> CUDA -> CPU, among those this build offers."""
import importlib.util
import logging
from pathlib import Path
from typing import Any, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from miro_edge.infer.base import ENGINES, EngineOptions, InferenceEngine
from miro_edge.utils.optional import require as require_module

logger = logging.getLogger(__name__)

PROVIDER_ORDER = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
ProviderSpec = Union[str, Tuple[str, dict]]


def select_providers(available: Sequence[str], options: EngineOptions) -> List[ProviderSpec]:
    """Providers to pass to InferenceSession, in priority order, with the TensorRT provider's options."""
    wanted = options.providers or PROVIDER_ORDER
    chosen: List[ProviderSpec] = []
    for name in wanted:
        if name not in available:
            continue
        if name == "TensorrtExecutionProvider":
            chosen.append((name, {"trt_fp16_enable": bool(options.fp16), "trt_engine_cache_enable": True,
                                  "trt_engine_cache_path": str(options.cache_dir() / "ort-trt")}))
        else:
            chosen.append(name)
    if not chosen:
        chosen.append("CPUExecutionProvider")
    return chosen


@ENGINES.register("onnxruntime")
class OrtEngine(InferenceEngine):
    """Runs ``model.onnx`` in an ``onnxruntime.InferenceSession``."""

    name = "onnxruntime"

    def __init__(self, artifacts: Mapping[str, Path], options: Optional[EngineOptions] = None,
                 input_shape: Optional[Tuple[int, ...]] = None) -> None:
        from miro_edge.infer.base import input_shape_of
        from miro_edge.model.artifacts import ONNX_ARTIFACT

        if ONNX_ARTIFACT not in artifacts:
            from miro_edge.errors import InputError
            raise InputError(f"the onnxruntime engine needs a model.onnx artifact; got {sorted(artifacts)}")
        self.onnx_path = Path(artifacts[ONNX_ARTIFACT])
        super().__init__(input_shape or input_shape_of({ONNX_ARTIFACT: self.onnx_path}), options)
        self.session: Any = None
        self.providers: List[str] = []
        self._input_name = ""

    @classmethod
    def unavailable_reason(cls, artifacts: Mapping[str, Path], options: EngineOptions) -> Optional[str]:
        if importlib.util.find_spec("onnxruntime") is None:
            return "onnxruntime is not installed (pip install 'miro-edge[onnx]')"
        if "model.onnx" not in artifacts:
            return "no model.onnx artifact"
        return None

    def _open(self) -> None:
        ort = require_module("onnxruntime", "onnx", "the onnxruntime inference engine")
        so = ort.SessionOptions()
        so.intra_op_num_threads = self.options.intra_op_threads
        so.inter_op_num_threads = self.options.inter_op_threads
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        providers = select_providers(ort.get_available_providers(), self.options)
        self.session = ort.InferenceSession(str(self.onnx_path), so, providers=providers)
        self.providers = list(self.session.get_providers())
        self._input_name = self.session.get_inputs()[0].name
        logger.info("onnxruntime session on %s with providers %s", self.onnx_path.name, self.providers)

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self._input_name: batch})[0]

    def _close(self) -> None:
        self.session = None

    def describe(self) -> dict:
        out = super().describe()
        out["providers"] = list(self.providers)
        return out
