"""Parity check: the exported ONNX model, run in ONNX Runtime, must match PyTorch on real samples.

Pass real samples (the trainer passes EM samples); random inputs are a weaker fallback and the
report says which was used. A failure raises ParityError, which blocks publishing.
"""
import dataclasses
import logging
from pathlib import Path
from typing import Any, NamedTuple, Optional, Sequence, Union

import numpy as np

from miro_edge.config import field, require
from miro_edge.errors import InputError, ParityError
from miro_edge.utils.optional import require as require_module

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ParityConfig:
    """Tolerances of the ONNX Runtime vs PyTorch comparison (``np.allclose`` semantics)."""

    atol: float = field(1e-4, help="absolute tolerance on logits")
    rtol: float = field(1e-3, help="relative tolerance on logits")
    require_argmax_match: bool = field(True, help="also require identical predicted classes")
    batch_size: int = field(32, help="samples per ONNX Runtime call (exercises the dynamic batch axis)")
    max_samples: int = field(512, help="use at most this many samples")
    random_samples: int = field(16, help="how many random inputs to use when no samples are given")
    seed: int = field(0, help="seed of the random fallback inputs")

    def __post_init__(self) -> None:
        require(self.atol >= 0 and self.rtol >= 0, "atol", "tolerances must be >= 0")
        require(self.batch_size >= 1, "batch_size", "must be >= 1")
        require(self.max_samples >= 1, "max_samples", "must be >= 1")
        require(self.random_samples >= 1, "random_samples", "must be >= 1")


class ParityReport(NamedTuple):
    n_samples: int
    max_abs_diff: float
    max_rel_diff: float
    argmax_agreement: float
    passed: bool
    sample_source: str  # "given" or "random"

    def as_dict(self) -> dict:
        return dict(self._asdict())


def _samples(samples: Optional[np.ndarray], input_shape: Sequence[int], cfg: ParityConfig):
    shape = tuple(int(v) for v in input_shape)
    if samples is None:
        rng = np.random.default_rng(cfg.seed)
        return rng.standard_normal((cfg.random_samples,) + shape).astype(np.float32), "random"
    arr = np.asarray(samples, dtype=np.float32)
    if arr.shape[1:] != shape:
        raise InputError(f"parity samples have shape {arr.shape}, expected (N,) + {shape}")
    if len(arr) == 0:
        raise InputError("parity samples are empty; pass at least one sample")
    return arr[: cfg.max_samples], "given"


def check_parity(model: Any, onnx_path: Union[str, Path], input_shape: Sequence[int],
                 samples: Optional[np.ndarray] = None, config: Optional[ParityConfig] = None,
                 input_name: str = "input") -> ParityReport:
    """Compare PyTorch and ONNX Runtime (CPU provider) logits; raise ParityError on mismatch."""
    import torch

    ort = require_module("onnxruntime", "onnx", "the ONNX parity check")
    cfg = config or ParityConfig()
    x, source = _samples(samples, input_shape, cfg)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    onnx_shape = [d if isinstance(d, int) else None for d in session.get_inputs()[0].shape[1:]]
    if [int(v) for v in input_shape] != onnx_shape:
        raise ParityError(f"the ONNX model {onnx_path} takes inputs of shape {onnx_shape} but the checkpoint's model takes {list(input_shape)}: they are "
                          "not the same model; pass the checkpoint the ONNX file was exported from")
    model.eval()
    ref_parts, got_parts = [], []
    with torch.no_grad():
        # batch 1 first (the live path's shape), then full batches (the dynamic axis)
        chunks = [x[:1]] + [x[i:i + cfg.batch_size] for i in range(1, len(x), cfg.batch_size)]
        for chunk in chunks:
            ref_parts.append(model(torch.from_numpy(np.ascontiguousarray(chunk))).numpy())
            try:
                got_parts.append(session.run(None, {input_name: np.ascontiguousarray(chunk)})[0])
            except Exception as exc:  # onnxruntime raises its own types for a wrong input
                raise ParityError(f"ONNX Runtime cannot run {onnx_path} on the checkpoint's inputs ({exc}); pass the checkpoint "
                                  "the ONNX file was exported from") from None
    ref = np.concatenate(ref_parts)
    got = np.concatenate(got_parts)
    if ref.shape != got.shape:
        raise ParityError(f"ONNX output shape {got.shape} differs from PyTorch {ref.shape}")
    diff = np.abs(ref - got)
    max_abs = float(diff.max()) if diff.size else 0.0
    max_rel = float((diff / np.maximum(np.abs(ref), 1e-12)).max()) if diff.size else 0.0
    agree = float(np.mean(ref.argmax(axis=1) == got.argmax(axis=1))) if ref.ndim == 2 else 1.0
    close = bool(np.allclose(got, ref, atol=cfg.atol, rtol=cfg.rtol))
    passed = close and (agree == 1.0 or not cfg.require_argmax_match)
    report = ParityReport(len(x), max_abs, max_rel, agree, passed, source)
    logger.info("parity on %d %s samples: max |diff| %.3g, argmax agreement %.4f", len(x), source, max_abs, agree)
    if not passed:
        raise ParityError(f"ONNX Runtime differs from PyTorch on {len(x)} {source} samples: max |diff| {max_abs:.3g} (atol {cfg.atol}, rtol {cfg.rtol}), "
                          f"argmax agreement {agree:.4f}; the export is wrong, do not publish it (re-export, or check "
                          "for ops the opset lowers differently)")
    return report
