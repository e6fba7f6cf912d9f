"""Errors of the export package; all derive from the families in ``miro_edge.errors``."""
from miro_edge.errors import CheckpointError, ExportError, InputError, RegistryError  # noqa: F401  (re-export)


class OnnxModelError(ExportError, InputError):
    """An ONNX file is missing, truncated, corrupt or fails ``onnx.checker``."""


class ParityError(ExportError):
    """The exported model's outputs differ from PyTorch's beyond the configured tolerance."""


class EngineBuildError(ExportError):
    """TensorRT could not parse the ONNX model or build a serialized engine."""


class UnsupportedFeatureError(ExportError):
    """The installed TensorRT generation lacks a feature asked for (e.g. INT8 calibration on 11.x)."""


class IntegrityError(RegistryError):
    """A registry artifact does not match the sha256 recorded in its manifest."""


class VersionNotFoundError(RegistryError):
    """A version asked for does not exist in the registry."""
