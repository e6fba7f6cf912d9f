"""One exception family. Every message says what went wrong and how to fix it."""


class MiroEdgeError(Exception):
    """Base class of every error miro_edge raises on purpose."""


class ConfigError(MiroEdgeError, ValueError):
    """A configuration value or key is invalid; the message names the key."""


class InputError(MiroEdgeError, ValueError):
    """A sample, label or file handed to the library does not match what it expects."""


class CheckpointError(InputError):
    """A checkpoint file is missing, unreadable or lacks a required key."""


class StoreError(MiroEdgeError):
    """The sample store cannot complete an operation; the store stays consistent."""


class StoreFullError(StoreError):
    """The disk or the configured quota is full; nothing from the failed call was stored."""


class CorruptRecordError(StoreError):
    """A stored record failed its checksum; it is skipped, never served as data."""


class MissingDependencyError(MiroEdgeError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


class HardwareUnavailableError(MiroEdgeError):
    """A sensor, GPU or engine needed for this call is absent on this device."""


class ExportError(MiroEdgeError):
    """Exporting, building or checking a model failed; nothing was published."""


class RegistryError(MiroEdgeError):
    """The model registry refused an operation (bad hash, missing version, ...)."""


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


class IncompatibleModelError(RegistryError):
    """A candidate cannot replace the current version (another input shape, a label map that is not an extension)."""
