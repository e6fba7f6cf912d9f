"""Target profiles: what each deployment target's toolchain accepts, as rows of data.

A profile fixes the ONNX opset the target's TensorRT parser accepts and sensible build
defaults. Adding a target adds a row here; nothing else branches on target names.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

from miro_edge.config import field, require
from miro_edge.utils.registry import Registry

TARGETS: Registry[TargetProfile] = Registry("target profile")

MAX_TORCHSCRIPT_OPSET = 17  # highest opset we ask of the TorchScript exporter for TensorRT 8.x


@dataclasses.dataclass(frozen=True)
class TargetProfile:
    """One deployment target: its opset ceiling and TensorRT defaults."""

    name: str = field(help="profile name, e.g. tx2, xavier-nx, desktop")
    opset: int = field(help="ONNX opset to export with (<= what the target's TensorRT parser accepts)")
    max_opset: int = field(help="highest opset the target's parser accepts")
    tensorrt_version: Optional[str] = field(None, help="TensorRT release shipped on the target (None: whatever is installed)")
    fp16: bool = field(False, help="build TensorRT engines in FP16 by default")
    workspace_mb: int = field(256, help="TensorRT builder workspace in MiB")
    max_batch: int = field(32, help="largest batch of the dynamic-batch optimization profile")
    description: str = field("", help="one line for `miro-edge export --help`")

    def __post_init__(self) -> None:
        require(7 <= self.opset <= 21, "opset", f"must be between 7 and 21, got {self.opset}")
        require(self.opset <= self.max_opset, "opset",
                f"{self.opset} exceeds the target's maximum {self.max_opset}; lower it")
        require(self.workspace_mb > 0, "workspace_mb", "must be > 0")
        require(self.max_batch >= 1, "max_batch", "must be >= 1")

    def with_opset(self, opset: int) -> TargetProfile:
        """The same profile exporting at another opset (validated against ``max_opset``)."""
        return dataclasses.replace(self, opset=opset)


def _add(profile: TargetProfile) -> None:
    TARGETS.register(profile.name)(lambda: profile)


_add(TargetProfile(name="tx2", opset=13, max_opset=13, tensorrt_version="8.2.1", fp16=True,
                   workspace_mb=256, max_batch=32,
                   description="Jetson TX2, JetPack 4.6 (TensorRT 8.2: opset <= 13)"))
_add(TargetProfile(name="xavier-nx", opset=17, max_opset=17, tensorrt_version="8.5.2", fp16=True,
                   workspace_mb=512, max_batch=32,
                   description="Jetson Xavier NX, JetPack 5.1 (TensorRT 8.5: opset <= 17)"))
_add(TargetProfile(name="desktop", opset=17, max_opset=21, tensorrt_version=None, fp16=False,
                   workspace_mb=1024, max_batch=64,
                   description="x86 / desktop GPU or CPU with ONNX Runtime (opset 17 by default)"))


def get_target(name: str) -> TargetProfile:
    """The registered profile called ``name`` (ConfigError listing the choices otherwise)."""
    return TARGETS.create(name)
