"""Small built-in models (no torchvision) with a classifier head that grows as classes arrive.

``create_model(name, input_shape, num_classes)`` builds one by registered name:
- ``cnn2d``: a compact CNN for images shaped (C, H, W);
- ``cnn1d``: a 1-D CNN for IMU windows shaped (channels, length).
"""
from typing import Sequence, Tuple

import torch
from torch import nn

from miro_edge.errors import ConfigError
from miro_edge.utils.registry import Registry

MODELS: Registry[nn.Module] = Registry("model")


class IncrementalClassifier(nn.Module):
    """Feature extractor plus a linear head; ``grow(n)`` adds outputs, keeping old weights."""

    def __init__(self, features: nn.Module, feature_dim: int, num_classes: int,
                 input_shape: Tuple[int, ...]) -> None:
        super().__init__()
        self.features = features
        self.feature_dim = feature_dim
        self.input_shape = tuple(input_shape)
        self.head = nn.Linear(feature_dim, max(1, num_classes))

    @property
    def num_classes(self) -> int:
        return self.head.out_features

    def grow(self, num_classes: int) -> bool:
        """Widen the head to ``num_classes`` outputs; returns True if it changed."""
        if num_classes <= self.head.out_features:
            return False
        old = self.head
        new = nn.Linear(self.feature_dim, num_classes).to(old.weight.device, old.weight.dtype)
        with torch.no_grad():
            new.weight[: old.out_features].copy_(old.weight)
            new.bias[: old.out_features].copy_(old.bias)
        self.head = new
        return True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _conv_block2d(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def _conv_block1d(cin: int, cout: int, k: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv1d(cin, cout, k, padding=k // 2), nn.BatchNorm1d(cout), nn.ReLU(inplace=True))


@MODELS.register("cnn2d")
def cnn2d(input_shape: Sequence[int], num_classes: int, width: int = 32) -> IncrementalClassifier:
    if len(input_shape) != 3:
        raise ConfigError(f"model cnn2d expects input_shape (C, H, W), got {tuple(input_shape)}")
    channels = input_shape[0]
    features = nn.Sequential(
        _conv_block2d(channels, width),
        _conv_block2d(width, width), nn.MaxPool2d(2),
        _conv_block2d(width, 2 * width), nn.MaxPool2d(2),
        _conv_block2d(2 * width, 2 * width),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    )
    return IncrementalClassifier(features, 2 * width, num_classes, tuple(input_shape))


@MODELS.register("cnn1d")
def cnn1d(input_shape: Sequence[int], num_classes: int, width: int = 32) -> IncrementalClassifier:
    if len(input_shape) != 2:
        raise ConfigError(f"model cnn1d expects input_shape (channels, length), got {tuple(input_shape)}")
    channels = input_shape[0]
    features = nn.Sequential(
        _conv_block1d(channels, width, 7), nn.MaxPool1d(2),
        _conv_block1d(width, 2 * width, 5), nn.MaxPool1d(2),
        _conv_block1d(2 * width, 2 * width, 3),
        nn.AdaptiveAvgPool1d(1), nn.Flatten(),
    )
    return IncrementalClassifier(features, 2 * width, num_classes, tuple(input_shape))


def create_model(name: str, input_shape: Sequence[int], num_classes: int, width: int = 32) -> IncrementalClassifier:
    """Build a registered model; ``MODELS.names()`` lists the choices."""
    model = MODELS.create(name, tuple(input_shape), num_classes, width=width)
    return model  # type: ignore[return-value]
