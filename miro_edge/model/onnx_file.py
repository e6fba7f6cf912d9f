"""Reading an ONNX artifact: load and check it, and its input's name and per-sample shape.

Here, not in ``export``, because the live path (``infer``) and the TensorRT builder (``trt``) read
ONNX files too and must not depend on the exporter. ``onnx`` is imported on first use.
"""
from pathlib import Path
from typing import Any, Tuple, Union

from miro_edge.errors import EngineBuildError, OnnxModelError
from miro_edge.utils.optional import require as require_module

PathLike = Union[str, Path]


def check_onnx(path: PathLike) -> Any:
    """Load an ONNX file and run ``onnx.checker`` (full check); return the ModelProto.

    A missing, empty, truncated or corrupt file raises OnnxModelError naming the file.
    """
    onnx = require_module("onnx", "onnx", "checking ONNX models")
    path = Path(path)
    if not path.is_file():
        raise OnnxModelError(f"ONNX file {path} does not exist; export the model first")
    size = path.stat().st_size
    if size == 0:
        raise OnnxModelError(f"ONNX file {path} is empty (an interrupted write?); export it again")
    try:
        model = onnx.load(str(path))
    except Exception as exc:
        raise OnnxModelError(f"ONNX file {path} ({size} bytes) cannot be parsed: {exc}; it is truncated or corrupt, "
                             "export it again") from None
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:
        raise OnnxModelError("ONNX file {} fails onnx.checker: {}; it is truncated, corrupt or was produced "
                             "by an incompatible exporter".format(path, str(exc).strip().splitlines()[0]
                                                                  if str(exc).strip() else exc)) from None
    if not model.graph.input or not model.graph.output:
        raise OnnxModelError(f"ONNX file {path} has no graph inputs or outputs; it is truncated")
    return model


def onnx_input(onnx_path: PathLike) -> Tuple[str, Tuple[int, ...]]:
    """(name, per-sample shape) of an ONNX model's first input; axis 0 is the batch."""
    model = check_onnx(onnx_path)
    inp = model.graph.input[0]
    dims = inp.type.tensor_type.shape.dim
    sample = tuple(int(d.dim_value) for d in dims[1:])
    if any(v <= 0 for v in sample):
        raise EngineBuildError(f"ONNX input {inp.name!r} has non-static sample dims {sample}; only the batch axis may be "
                               "dynamic")
    return inp.name, sample
