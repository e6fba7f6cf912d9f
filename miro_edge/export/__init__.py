"""Export: checkpoint -> ONNX (checked, parity-tested) [-> TensorRT engine] -> registry.

Modules (each importable without onnx, onnxruntime or tensorrt installed):

- ``targets``: target profiles (tx2, xavier-nx, desktop) as data;
- ``onnx_export``: ``export_onnx``, exporter choice;
- ``parity``: ONNX Runtime vs PyTorch on real samples;
- ``pipeline``: ``export_checkpoint``, ``publish_model``, ``export_and_publish``.

TensorRT lives in ``miro_edge.trt``, the registry and canary in ``miro_edge.registry``, reading
ONNX files in ``miro_edge.model``. Names below are loaded on first use, so ``import
miro_edge.export`` stays cheap.
"""
from miro_edge.utils.lazy import lazy_getattr

_EXPORTS = {
    "TargetProfile": "targets", "TARGETS": "targets", "get_target": "targets",
    "OnnxExportConfig": "onnx_export", "export_onnx": "onnx_export", "choose_exporter": "onnx_export",
    "ParityConfig": "parity", "ParityReport": "parity", "check_parity": "parity",
    "export_checkpoint": "pipeline", "publish_model": "pipeline", "export_and_publish": "pipeline",
    "ExportResult": "pipeline",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_getattr(__name__, _EXPORTS)
