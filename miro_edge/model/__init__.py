"""The model as the train-to-live hand-off knows it: architectures, the checkpoint format, the
names of a version's artifacts and the input shape they declare, and reading ONNX files.

Neutral ground: ``train``, ``export``, ``registry`` and ``infer`` all use it, and it imports none
of them. Names load on first use (architectures need torch, ONNX files need onnx), so the live
path on an ONNX model never imports torch through here.
"""
from miro_edge.utils.lazy import lazy_getattr

_EXPORTS = {
    "MODELS": "architectures", "IncrementalClassifier": "architectures", "create_model": "architectures",
    "CHECKPOINT_FORMAT_VERSION": "checkpoint", "read_checkpoint": "checkpoint",
    "model_from_checkpoint": "checkpoint", "save_checkpoint": "checkpoint",
    "ONNX_ARTIFACT": "artifacts", "CHECKPOINT_ARTIFACT": "artifacts", "input_shape_of": "artifacts",
    "check_onnx": "onnx_file", "onnx_input": "onnx_file",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS)
