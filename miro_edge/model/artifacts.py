"""Names of a model version's artifacts and the per-sample input shape they declare.

Shared by the exporter, the registry and the live path, so none of them imports another for a
constant.
"""
from pathlib import Path
from typing import Mapping, Tuple

from miro_edge.errors import InputError

ONNX_ARTIFACT = "model.onnx"
CHECKPOINT_ARTIFACT = "checkpoint.pt"


def input_shape_of(artifacts: Mapping[str, Path]) -> Tuple[int, ...]:
    """Per-sample input shape from a version's ONNX file or (cheaper to trust) its checkpoint."""
    if ONNX_ARTIFACT in artifacts:
        from miro_edge.model.onnx_file import onnx_input

        return onnx_input(Path(artifacts[ONNX_ARTIFACT]))[1]
    if CHECKPOINT_ARTIFACT in artifacts:
        from miro_edge.model.checkpoint import read_checkpoint

        return tuple(int(v) for v in read_checkpoint(artifacts[CHECKPOINT_ARTIFACT])["input_shape"])
    raise InputError(f"no {ONNX_ARTIFACT} or {CHECKPOINT_ARTIFACT} among artifacts {sorted(artifacts)}")
