"""PyTorch -> ONNX with an explicit exporter and opset, a dynamic batch axis and a checked result.

The TorchScript exporter (``dynamo=False``) is preferred for opset <= 17 because TensorRT 8.x
parsers are tested against it; torch <= 2.4 (the Jetson wheels) has no ``dynamo`` argument at all,
so the choice is made from ``inspect.signature(torch.onnx.export)``, never from the torch version.
The file is written to a temporary directory, checked, then moved into place atomically: a
reader never sees a half-written or unchecked model.
"""
import dataclasses
import inspect
import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any, Collection, NamedTuple, Optional, Sequence, Union

from miro_edge.config import field, require
from miro_edge.errors import ExportError
from miro_edge.export.targets import MAX_TORCHSCRIPT_OPSET
from miro_edge.model.onnx_file import check_onnx
from miro_edge.utils.atomic import atomic_write_bytes, remove_stale_temps
from miro_edge.utils.hashing import sha256_file
from miro_edge.utils.optional import require as require_module

logger = logging.getLogger(__name__)

EXPORTERS = ("auto", "torchscript", "dynamo")
BATCH_DIM_NAME = "batch"


@dataclasses.dataclass(frozen=True)
class OnnxExportConfig:
    """How to export: opset, exporter and tensor names."""

    opset: int = field(17, help="ONNX opset (TX2 / TensorRT 8.2: <= 13; Xavier NX / TensorRT 8.5: <= 17)")
    exporter: str = field("auto", help="auto | torchscript | dynamo; auto prefers TorchScript for opset <= 17")
    input_name: str = field("input", help="name of the graph input")
    output_name: str = field("logits", help="name of the graph output")
    dynamic_batch: bool = field(True, help="make axis 0 dynamic (named 'batch')")
    export_batch_size: int = field(2, help="batch size of the example input traced during export")

    def __post_init__(self) -> None:
        require(7 <= self.opset <= 21, "opset", f"must be between 7 and 21, got {self.opset}")
        require(self.exporter in EXPORTERS, "exporter", "must be one of {}, got {!r}".format(
            ", ".join(EXPORTERS), self.exporter))
        require(bool(self.input_name) and bool(self.output_name) and self.input_name != self.output_name,
                "input_name", "input and output names must be non-empty and different")
        require(self.export_batch_size >= 1, "export_batch_size", "must be >= 1")


class OnnxExportResult(NamedTuple):
    path: Path
    sha256: str
    opset: int
    exporter: str
    input_shape: tuple  # per-sample shape, without the batch axis


def export_parameters() -> Collection[str]:
    """Names of the keyword arguments the installed ``torch.onnx.export`` accepts."""
    import torch

    return tuple(inspect.signature(torch.onnx.export).parameters)


def choose_exporter(available_params: Collection[str], opset: int, preference: str = "auto") -> str:
    """Decide "torchscript" or "dynamo" from the export signature, the opset and a preference.

    - torch without a ``dynamo`` argument (<= 2.4, the Jetson wheels) has only TorchScript;
    - auto: TorchScript for opset <= 17 (what TensorRT 8.x parses), dynamo above;
    - an explicit "dynamo" on a torch without it is an error naming the fix.
    """
    has_dynamo = "dynamo" in available_params
    if preference == "torchscript":
        return "torchscript"
    if preference == "dynamo":
        if not has_dynamo:
            raise ExportError("exporter 'dynamo' asked for, but this torch.onnx.export has no `dynamo` "
                              "argument (torch < 2.5); use exporter 'torchscript' or 'auto'")
        return "dynamo"
    if preference != "auto":
        raise ExportError("unknown exporter {!r}; choose one of {}".format(preference, ", ".join(EXPORTERS)))
    if not has_dynamo or opset <= MAX_TORCHSCRIPT_OPSET:
        return "torchscript"
    return "dynamo"


def _export_kwargs(exporter: str, params: Collection[str], cfg: OnnxExportConfig) -> dict:
    kwargs: dict = {"input_names": [cfg.input_name], "output_names": [cfg.output_name],
              "opset_version": cfg.opset}
    if exporter == "torchscript":
        if "dynamo" in params:
            kwargs["dynamo"] = False
        kwargs["do_constant_folding"] = True
        if cfg.dynamic_batch:
            kwargs["dynamic_axes"] = {cfg.input_name: {0: BATCH_DIM_NAME}, cfg.output_name: {0: BATCH_DIM_NAME}}
    else:
        import torch

        kwargs["dynamo"] = True
        if "external_data" in params:
            kwargs["external_data"] = False
        if cfg.dynamic_batch:
            kwargs["dynamic_shapes"] = ({0: torch.export.Dim(BATCH_DIM_NAME, min=1, max=4096)},)
    return kwargs


def export_onnx(model: Any, path: Union[str, Path], input_shape: Sequence[int],
                config: Optional[OnnxExportConfig] = None) -> OnnxExportResult:
    """Export ``model`` (call ``model.eval()`` first; done here too) to one self-contained ONNX file.

    ``input_shape`` is one sample's shape, e.g. ``(1, 8, 8)``; axis 0 of the graph is the batch.
    The result passed ``onnx.checker`` and carries the requested opset.
    """
    import torch

    cfg = config or OnnxExportConfig()
    params = export_parameters()
    exporter = choose_exporter(params, cfg.opset, cfg.exporter)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    model.eval()
    example = torch.zeros((cfg.export_batch_size,) + tuple(int(v) for v in input_shape), dtype=torch.float32)
    kwargs = _export_kwargs(exporter, params, cfg)
    _remove_leftovers(target)
    tmpdir = tempfile.mkdtemp(prefix=".export-", dir=str(target.parent))
    try:
        tmp_path = os.path.join(tmpdir, "model.onnx")
        logger.info("exporting %s to ONNX opset %d with the %s exporter", type(model).__name__, cfg.opset, exporter)
        with warnings.catch_warnings(record=True) as caught, torch.no_grad():
            warnings.simplefilter("always")
            try:
                torch.onnx.export(model, (example,), tmp_path, **kwargs)
            except Exception as exc:
                raise ExportError(f"torch.onnx.export ({exporter} exporter, opset {cfg.opset}) failed: {type(exc).__name__}: {exc}") from exc
        for w in caught:
            logger.debug("torch.onnx.export: %s", w.message)
        extra = [n for n in os.listdir(tmpdir) if n != "model.onnx"]
        if extra:
            raise ExportError(f"the exporter wrote side files {extra} (external data); the model must be a single "
                              "file")
        if exporter == "dynamo":
            _convert_opset_in_place(tmp_path, cfg.opset)
        proto = check_onnx(tmp_path)
        _check_interface(proto, cfg, tmp_path)
        with open(tmp_path, "rb") as handle:
            data = handle.read()
        atomic_write_bytes(target, data, perms=0o644)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    digest = sha256_file(target)
    logger.info("wrote %s (%d bytes, sha256 %s)", target, target.stat().st_size, digest[:12])
    return OnnxExportResult(target, digest, cfg.opset, exporter, tuple(int(v) for v in input_shape))


def _remove_leftovers(target: Path) -> None:
    """Scratch of an export killed midway (the out dir has one exporter at a time)."""
    for scratch in target.parent.glob(".export-*"):
        shutil.rmtree(str(scratch), ignore_errors=True)
    remove_stale_temps(target.parent, target.name)


def _convert_opset_in_place(path: str, opset: int) -> None:
    onnx = require_module("onnx", "onnx", "ONNX export")
    model = onnx.load(path)
    current = default_opset(model)
    if current == opset:
        return
    logger.info("dynamo exporter produced opset %s; converting to %d", current, opset)
    try:
        converted = onnx.version_converter.convert_version(model, opset)
    except Exception as exc:
        raise ExportError(f"the dynamo exporter produced opset {current} and converting to {opset} failed ({exc}); "
                          "use exporter 'torchscript'") from None
    onnx.save(converted, path)


def default_opset(model: Any) -> Optional[int]:
    """The opset of the default ("" / ai.onnx) domain of an ONNX ModelProto."""
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    return None


def _check_interface(model: Any, cfg: OnnxExportConfig, path: str) -> None:
    opset = default_opset(model)
    if opset != cfg.opset:
        raise ExportError(f"exported model has opset {opset}, expected {cfg.opset}")
    inputs = [i.name for i in model.graph.input]
    outputs = [o.name for o in model.graph.output]
    if inputs[:1] != [cfg.input_name] or outputs[:1] != [cfg.output_name]:
        raise ExportError(f"exported model has inputs {inputs} and outputs {outputs}, expected {cfg.input_name!r} -> {cfg.output_name!r}")
    if cfg.dynamic_batch:
        dim0 = model.graph.input[0].type.tensor_type.shape.dim[0]
        if not dim0.dim_param:
            raise ExportError(f"exported model input {cfg.input_name!r} has a fixed batch axis ({dim0.dim_value}); expected a dynamic "
                              "one")
    try:
        from onnx.external_data_helper import uses_external_data

        if any(uses_external_data(t) for t in model.graph.initializer):
            raise ExportError(f"exported model {path} references external data; it must be one file")
    except ImportError:  # pragma: no cover - very old onnx
        pass
