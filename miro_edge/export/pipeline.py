"""The export chain as two calls: checkpoint -> checked ONNX (+ parity, + engine) -> registry.

``export_checkpoint`` writes ``model.onnx`` next to nothing else but what it is asked for;
``publish_model`` re-checks the ONNX file, runs the parity check against the checkpoint and
publishes both through the canary gate. Any failure raises before the registry is touched.
"""
import logging
from pathlib import Path
from typing import Any, Dict, Mapping, NamedTuple, Optional, Union

import numpy as np

from miro_edge.errors import HardwareUnavailableError, MissingDependencyError
from miro_edge.export.onnx_export import OnnxExportConfig, OnnxExportResult, export_onnx
from miro_edge.export.parity import ParityConfig, ParityReport, check_parity
from miro_edge.export.targets import TargetProfile, get_target
from miro_edge.model.artifacts import CHECKPOINT_ARTIFACT, ONNX_ARTIFACT
from miro_edge.model.checkpoint import model_from_checkpoint, read_checkpoint
from miro_edge.model.onnx_file import check_onnx
from miro_edge.registry.canary import CanaryConfig
from miro_edge.registry.model_registry import ModelRegistry, PublishResult

logger = logging.getLogger(__name__)

ENGINE_MODES = ("auto", "always", "never")

PathLike = Union[str, Path]


class ExportResult(NamedTuple):
    onnx: OnnxExportResult
    parity: Optional[ParityReport]
    engine_path: Optional[Path]
    checkpoint: Path
    target: TargetProfile
    metrics: Dict[str, float]
    task_id: Optional[int]
    config: Dict[str, Any]


def export_checkpoint(checkpoint: PathLike, out_dir: PathLike, target: Union[str, TargetProfile] = "desktop",
                      opset: Optional[int] = None, samples: Optional[np.ndarray] = None,
                      parity: Optional[ParityConfig] = None, run_parity: bool = True, engine: str = "never",
                      engine_cache_dir: Optional[PathLike] = None, precision: Optional[str] = None,
                      exporter: str = "auto") -> ExportResult:
    """Checkpoint -> ``out_dir/model.onnx`` (checked) -> parity on ``samples`` -> optional TensorRT engine.

    ``engine``: "never", "always" (fails without TensorRT) or "auto" (built when TensorRT and a GPU are
    present, skipped with a log line otherwise). Engines go to ``engine_cache_dir`` (default
    ``out_dir/engines``), keyed by ONNX hash, TensorRT version, GPU, precision and shapes.
    """
    if engine not in ENGINE_MODES:
        raise ValueError(f"engine must be one of {ENGINE_MODES}")
    profile = get_target(target) if isinstance(target, str) else target
    if opset is not None:
        profile = profile.with_opset(opset)
    ckpt = read_checkpoint(checkpoint)
    model = model_from_checkpoint(checkpoint)
    input_shape = tuple(int(v) for v in ckpt["input_shape"])
    out = Path(out_dir)
    cfg = OnnxExportConfig(opset=profile.opset, exporter=exporter)
    onnx_result = export_onnx(model, out / ONNX_ARTIFACT, input_shape, cfg)
    report = None
    if run_parity:
        report = check_parity(model, onnx_result.path, input_shape, samples, parity, cfg.input_name)
    engine_path = None
    if engine != "never":
        engine_path = _maybe_engine(onnx_result.path, profile, engine, engine_cache_dir or out / "engines",
                                    precision, samples)
    return ExportResult(onnx_result, report, engine_path, Path(checkpoint), profile,
                        {k: float(v) for k, v in dict(ckpt.get("metrics") or {}).items()},
                        ckpt.get("task_id"), dict(ckpt.get("config") or {}))


def _maybe_engine(onnx_path: Path, profile: TargetProfile, mode: str, cache_dir: PathLike,
                  precision: Optional[str], samples: Optional[np.ndarray]) -> Optional[Path]:
    from miro_edge.trt.builder import TrtBuildConfig, cached_engine

    cfg = TrtBuildConfig(precision=precision or ("fp16" if profile.fp16 else "fp32"),
                         workspace_mb=profile.workspace_mb, max_batch=profile.max_batch)
    try:
        return cached_engine(onnx_path, cache_dir, cfg, calibration=samples)
    except (MissingDependencyError, HardwareUnavailableError) as exc:
        if mode == "always":
            raise
        logger.info("skipping the TensorRT engine: %s", exc)
        return None


def publish_model(registry: ModelRegistry, onnx_path: PathLike, checkpoint: Optional[PathLike] = None,
                  metrics: Optional[Mapping[str, float]] = None, samples: Optional[np.ndarray] = None,
                  parity: Optional[ParityConfig] = None, run_parity: bool = True, force: bool = False,
                  canary: Optional[CanaryConfig] = None, config: Optional[Mapping[str, Any]] = None,
                  task_id: Optional[int] = None,
                  current_class_metrics: Optional[Mapping[str, float]] = None) -> PublishResult:
    """Check ``onnx_path`` (and parity against ``checkpoint``), then publish through the canary gate.

    Metrics and task id default to the checkpoint's. A corrupt ONNX file or a parity failure
    raises before the registry is touched, so ``CURRENT`` stays where it was.
    """
    check_onnx(onnx_path)
    artifacts = {ONNX_ARTIFACT: Path(onnx_path)}
    merged_metrics: Dict[str, float] = {}
    merged_config: Dict[str, Any] = {}
    label_map, input_shape, class_metrics = None, None, None
    if checkpoint is not None:
        ckpt = read_checkpoint(checkpoint)
        label_map, input_shape = ckpt.get("label_map"), list(ckpt["input_shape"])
        class_metrics = dict(ckpt.get("class_metrics") or {}) or None
        merged_metrics.update({k: float(v) for k, v in dict(ckpt.get("metrics") or {}).items()})
        merged_config.update(dict(ckpt.get("config") or {}))
        merged_config.setdefault("model_name", ckpt["model_name"])
        merged_config.setdefault("input_shape", list(ckpt["input_shape"]))
        merged_config.setdefault("num_classes", int(ckpt["num_classes"]))
        if task_id is None:
            task_id = ckpt.get("task_id")
        if run_parity:
            model = model_from_checkpoint(checkpoint)
            check_parity(model, onnx_path, tuple(int(v) for v in ckpt["input_shape"]), samples, parity)
        artifacts[CHECKPOINT_ARTIFACT] = Path(checkpoint)
    merged_metrics.update({k: float(v) for k, v in (metrics or {}).items()})
    merged_config.update(dict(config or {}))
    if input_shape is None:
        from miro_edge.model.onnx_file import onnx_input
        input_shape = list(onnx_input(onnx_path)[1])
    return registry.publish(artifacts, metrics=merged_metrics, config=merged_config, task_id=task_id,
                            force=force, canary=canary, label_map=label_map, input_shape=input_shape,
                            class_metrics=class_metrics, current_class_metrics=current_class_metrics)


def export_and_publish(registry: ModelRegistry, checkpoint: PathLike, out_dir: PathLike,
                       target: Union[str, TargetProfile] = "desktop", samples: Optional[np.ndarray] = None,
                       parity: Optional[ParityConfig] = None, metrics: Optional[Mapping[str, float]] = None,
                       force: bool = False) -> PublishResult:
    """The update cycle's last two steps: export (with parity) then publish ONNX + checkpoint."""
    result = export_checkpoint(checkpoint, out_dir, target, samples=samples, parity=parity)
    return publish_model(registry, result.onnx.path, checkpoint, metrics=metrics, run_parity=False,
                         force=force, config={"target": result.target.name, "opset": result.onnx.opset,
                                              "parity": result.parity.as_dict() if result.parity else None})
