"""Inference: engines (TensorRT, ONNX Runtime, PyTorch) behind one interface, and the live path.

- ``base``: ``InferenceEngine`` (context manager; ``infer``, ``warmup``), ``EngineOptions``,
  ``ENGINES`` and ``create_engine(name, artifacts, options)``; "auto" tries tensorrt, onnxruntime, torch;
- ``ort_engine``, ``trt_engine``, ``torch_engine``: one backend each (optional deps imported on open);
- ``sources``: synthetic, video/camera (OpenCV), IMU CSV and socket sources;
- ``hotswap``: loads the registry's new current version in the background and swaps it in between frames;
- ``live``: ``LiveLoop`` (pacing, dropped-frame accounting, predictions callback, ``feedback`` -> ingest).

Names below are loaded on first use, so ``import miro_edge.infer`` imports no optional dependency.
"""
from miro_edge.utils.lazy import lazy_getattr

_EXPORTS = {
    "InferenceEngine": "base", "EngineOptions": "base", "ENGINES": "base", "create_engine": "base",
    "engine_names": "base",
    "OrtEngine": "ort_engine", "select_providers": "ort_engine",
    "TorchEngine": "torch_engine", "TrtEngine": "trt_engine",
    "FrameSource": "sources", "SOURCES": "sources", "SyntheticSource": "sources", "VideoSource": "sources",
    "CsvImuSource": "sources", "SocketImuSource": "sources",
    "HotSwapper": "hotswap", "FixedEngine": "hotswap", "FrameGapGate": "hotswap",
    "LiveLoop": "live", "LiveConfig": "live", "LiveStats": "live", "Prediction": "live",
    "registry_live_loop": "live",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_getattr(__name__, _EXPORTS)
