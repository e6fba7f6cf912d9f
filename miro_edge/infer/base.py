"""The inference-engine interface, its options, and the registry of engines by name.

Every engine is a context manager: ``open`` (via ``__enter__``) acquires sessions, device
buffers or models, ``close`` releases them. ``infer(batch) -> logits`` takes a float32 array
shaped ``(N,) + input_shape``. Engines are built from a version's artifacts
(``{"model.onnx": path, "checkpoint.pt": path}``) by a factory registered in ``ENGINES``.
"""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple

import numpy as np

from miro_edge.config import field, require
from miro_edge.errors import InputError, MiroEdgeError, MissingDependencyError
from miro_edge.model.artifacts import input_shape_of  # noqa: F401  (part of this module's API)
from miro_edge.utils.registry import Registry

logger = logging.getLogger(__name__)

ENGINES: Registry[InferenceEngine] = Registry("inference engine")

# "auto" tries these in order and takes the first whose dependencies and hardware are present.
AUTO_ORDER = ("tensorrt", "onnxruntime", "torch")


@dataclasses.dataclass(frozen=True)
class EngineOptions:
    """Settings shared by all engines (each uses the ones that apply to it)."""

    intra_op_threads: int = field(1, help="CPU threads inside one inference call (ORT intra-op; torch.set_num_threads). "
                                          "1 keeps the live loop and a model being loaded from starving each other "
                                          "on small boards")
    inter_op_threads: int = field(1, help="ONNX Runtime inter-op threads")
    warmup_iterations: int = field(3, help="inference calls made by warmup()")
    fp16: bool = field(False, help="FP16 (TensorRT builder, ORT TensorRT provider, torch on CUDA)")
    max_batch: int = field(32, help="largest batch a TensorRT engine is built/allocated for")
    engine_cache_dir: Optional[str] = field(None, help="TensorRT engine cache directory "
                                                       "(default ~/.cache/miro_edge/engines)")
    providers: Optional[Tuple[str, ...]] = field(None, help="ONNX Runtime providers to use, in order "
                                                            "(default: TensorRT, CUDA, CPU among those available)")
    device: str = field("auto", help="torch engine device: auto | cpu | cuda")

    def __post_init__(self) -> None:
        require(self.intra_op_threads >= 0, "intra_op_threads", "must be >= 0 (0 = library default)")
        require(self.inter_op_threads >= 0, "inter_op_threads", "must be >= 0 (0 = library default)")
        require(self.warmup_iterations >= 0, "warmup_iterations", "must be >= 0")
        require(self.max_batch >= 1, "max_batch", "must be >= 1")
        require(self.device in ("auto", "cpu", "cuda"), "device", "must be auto, cpu or cuda")

    def cache_dir(self) -> Path:
        return Path(self.engine_cache_dir) if self.engine_cache_dir else Path.home() / ".cache" / "miro_edge" / "engines"


class EngineClosedError(MiroEdgeError):
    """``infer`` was called on an engine that is not open; use it inside ``with engine:``."""


class InferenceEngine:
    """Base class: owns the lifecycle (open -> infer/warmup -> close); subclasses implement ``_open``,
    ``_infer`` and ``_close``."""

    name = "base"

    def __init__(self, input_shape: Tuple[int, ...], options: Optional[EngineOptions] = None) -> None:
        self.input_shape = tuple(int(v) for v in input_shape)
        self.options = options or EngineOptions()
        self.is_open = False

    # lifecycle -------------------------------------------------------------
    def open(self) -> InferenceEngine:
        if not self.is_open:
            self._open()
            self.is_open = True
        return self

    def close(self) -> None:
        if self.is_open:
            self.is_open = False
            self._close()

    def __enter__(self) -> InferenceEngine:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # inference -------------------------------------------------------------
    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Logits for ``batch`` shaped ``(N,) + input_shape`` (float32)."""
        if not self.is_open:
            raise EngineClosedError(f"{self.name} engine is not open; use `with engine:` or call open() first")
        if batch.dtype != np.float32 or not batch.flags.c_contiguous:
            batch = np.ascontiguousarray(batch, dtype=np.float32)
        if batch.shape[1:] != self.input_shape:
            raise InputError(f"{self.name} engine expects batches shaped (N,) + {self.input_shape}, got {batch.shape}")
        return self._infer(batch)

    def warmup(self, iterations: Optional[int] = None) -> None:
        """Run a few batch-1 inferences so the first real frame pays no lazy initialisation."""
        x = np.zeros((1,) + self.input_shape, dtype=np.float32)
        for _ in range(self.options.warmup_iterations if iterations is None else iterations):
            self.infer(x)

    def _open(self) -> None:
        raise NotImplementedError

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _close(self) -> None:
        pass

    @classmethod
    def unavailable_reason(cls, artifacts: Mapping[str, Path], options: EngineOptions) -> Optional[str]:
        """Why this engine cannot run here with these artifacts (None: it can). Cheap: no model loading."""
        return None

    def describe(self) -> Dict[str, Any]:
        return {"engine": self.name, "input_shape": list(self.input_shape)}


def _ensure_loaded() -> None:
    # Importing the backend modules registers them; none imports an optional dependency at import time.
    from miro_edge.infer import ort_engine, torch_engine, trt_engine  # noqa: F401


def engine_names() -> Tuple[str, ...]:
    _ensure_loaded()
    return tuple(ENGINES.names())


def create_engine(name: str, artifacts: Mapping[str, Path], options: Optional[EngineOptions] = None) -> InferenceEngine:
    """Build (not open) the engine ``name`` for a version's artifacts; "auto" picks the first that works.

    A missing optional dependency raises MissingDependencyError naming the extra (``trt``, ``onnx``).
    """
    _ensure_loaded()
    opts = options or EngineOptions()
    arts = {k: Path(v) for k, v in artifacts.items()}
    if name != "auto":
        return ENGINES.create(name, arts, opts)
    reasons = []
    for candidate in AUTO_ORDER:
        reason = ENGINES.get(candidate).unavailable_reason(arts, opts)  # type: ignore[attr-defined]
        if reason is None:
            return ENGINES.create(candidate, arts, opts)
        reasons.append(f"{candidate}: {reason}")
    raise MissingDependencyError("no inference engine can run here: " + " | ".join(reasons))


def resolve_engine_name(name: str, artifacts: Mapping[str, Path], options: Optional[EngineOptions] = None) -> str:
    """The concrete engine "auto" would pick (opening and closing it once); other names pass through."""
    if name != "auto":
        return name
    _ensure_loaded()
    return create_engine(name, artifacts, options).name
