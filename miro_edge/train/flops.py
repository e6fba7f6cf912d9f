"""Compute per sample, counted once from the model, so energy estimates scale with the network.

The calibrated energy model charges ``j_per_gflop`` for the floating-point work of training; a
wider or deeper model (or a larger input) costs more per sample pass. FLOPs are counted with
forward hooks on the layers that dominate the work (convolutions and linear layers: two FLOPs
per multiply-accumulate; normalisation, activations and pooling are left out, they are a few
percent of a conv net's work). One training pass is taken as three forward passes (forward,
gradient of the input, gradient of the weights), the usual rule of thumb.
"""
import weakref
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple, cast

import torch
from torch import nn

TRAIN_FLOPS_PER_FORWARD = 3.0
_COUNTED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


@dataclass(frozen=True)
class FlopCount:
    """Floating-point operations per sample of one model at one input shape."""

    forward_flops: float
    input_shape: Tuple[int, ...]
    layers: int

    @property
    def train_flops(self) -> float:
        """FLOPs of one sample pass of training (forward + backward)."""
        return TRAIN_FLOPS_PER_FORWARD * self.forward_flops


def _layer_flops(module: nn.Module, output: torch.Tensor) -> float:
    per_sample_out = float(output[0].numel())
    if isinstance(module, nn.Linear):
        macs = per_sample_out * module.in_features
    else:
        conv = cast(nn.modules.conv._ConvNd, module)  # _COUNTED: Linear or a ConvNd
        kernel = 1
        for k in conv.kernel_size:
            kernel *= int(k)
        macs = per_sample_out * kernel * (conv.in_channels // conv.groups)
    bias = per_sample_out if getattr(module, "bias", None) is not None else 0.0
    return 2.0 * macs + bias


def count_flops(model: nn.Module, input_shape: Sequence[int]) -> FlopCount:
    """Forward FLOPs per sample of ``model`` on inputs shaped ``input_shape`` (no batch dim).

    Runs one sample through the model in eval mode under ``no_grad`` (BatchNorm statistics and
    the training flag are left as they were).
    """
    totals: List[float] = []
    handles = []

    def hook(module: nn.Module, _inputs: Tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        totals.append(_layer_flops(module, output))

    for m in model.modules():
        if isinstance(m, _COUNTED):
            handles.append(m.register_forward_hook(hook))
    was_training = model.training
    try:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        dtype = param.dtype if param is not None else torch.float32
        model.eval()
        with torch.no_grad():
            model(torch.zeros((1,) + tuple(int(d) for d in input_shape), device=device, dtype=dtype))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return FlopCount(float(sum(totals)), tuple(int(d) for d in input_shape), len(totals))


class FlopCache:
    """Training FLOPs per sample for the models a trainer sees, counted once per architecture
    state (the classifier head grows as classes arrive, so its width is part of the key)."""

    def __init__(self) -> None:
        self._cache: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def train_flops(self, model: nn.Module, input_shape: Sequence[int]) -> float:
        key = (int(getattr(model, "num_classes", 0)), tuple(int(d) for d in input_shape))
        per_model: Dict[Tuple[int, Tuple[int, ...]], float] = self._cache.setdefault(model, {})
        if key not in per_model:
            per_model[key] = count_flops(model, input_shape).train_flops
        return per_model[key]
