"""Export: checkpoint -> ONNX (checked, parity-tested) -> TensorRT engine, and the model registry.

Modules (each importable without onnx, onnxruntime or tensorrt installed):

- ``targets``: target profiles (tx2, xavier-nx, desktop) as data;
- ``onnx_export``: ``export_onnx``, ``check_onnx``, exporter choice;
- ``parity``: ONNX Runtime vs PyTorch on real samples;
- ``trt_api`` / ``trt_builder`` / ``engine_cache``: TensorRT generations as data, builders, engine cache;
- ``registry`` / ``canary``: versioned atomic registry and the canary gate;
- ``pipeline``: ``export_checkpoint``, ``publish_model``, ``export_and_publish``.

Names below are loaded on first use, so ``import miro_edge.export`` stays cheap.
"""
from miro_edge.utils.lazy import lazy_getattr

_EXPORTS = {
    "TargetProfile": "targets", "TARGETS": "targets", "get_target": "targets",
    "OnnxExportConfig": "onnx_export", "export_onnx": "onnx_export", "check_onnx": "onnx_export",
    "choose_exporter": "onnx_export",
    "ParityConfig": "parity", "ParityReport": "parity", "check_parity": "parity",
    "TrtApi": "trt_api", "api_for": "trt_api",
    "TrtBuildConfig": "trt_builder", "build_serialized_engine": "trt_builder", "cached_engine": "trt_builder",
    "trtexec_command": "trt_builder",
    "EngineKey": "engine_cache", "EngineCache": "engine_cache", "engine_key": "engine_cache",
    "ModelRegistry": "registry", "Manifest": "registry", "PublishResult": "registry", "open_registry": "registry",
    "CanaryConfig": "canary", "canary_decision": "canary",
    "export_checkpoint": "pipeline", "publish_model": "pipeline", "export_and_publish": "pipeline",
    "ExportResult": "pipeline",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_getattr(__name__, _EXPORTS)
