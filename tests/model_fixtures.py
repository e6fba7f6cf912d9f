"""Fixtures for export tests: tiny real checkpoints of the built-in models."""
from pathlib import Path

import numpy as np
import pytest
import torch

from miro_edge.model.architectures import create_model
from miro_edge.model.checkpoint import save_checkpoint

SHAPES = {"cnn2d": (1, 8, 8), "cnn1d": (6, 100)}


def make_checkpoint(path: Path, name: str = "cnn2d", num_classes: int = 5, seed: int = 0,
                    accuracy: float = 0.9, width: int = 8) -> Path:
    torch.manual_seed(seed)
    model = create_model(name, SHAPES[name], num_classes, width=width)
    with torch.no_grad():  # non-trivial BatchNorm statistics, as after training
        for m in model.modules():
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    model.eval()
    return save_checkpoint(path, model, name, SHAPES[name], width=width, task_id=seed,
                           metrics={"val_accuracy": accuracy}, config={"seed": seed})


def real_samples(name: str, n: int = 24, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 1, (n,) + SHAPES[name]).astype(np.float32)


@pytest.fixture
def ckpt_factory(tmp_path):
    def make(name: str = "cnn2d", seed: int = 0, accuracy: float = 0.9, tag: str = "") -> Path:
        return make_checkpoint(tmp_path / f"{name}-{seed}-{accuracy}{tag}.pt", name, seed=seed,
                               accuracy=accuracy)
    return make


def published_registry(tmp_path: Path, ckpt_factory):
    """A registry whose current version is the first of three exported cnn2d checkpoints;
    returns it and the three (onnx, checkpoint) pairs, to publish the others later."""
    from miro_edge.export.pipeline import export_checkpoint, publish_model
    from miro_edge.registry.model_registry import ModelRegistry

    reg = ModelRegistry(tmp_path / "reg")
    pairs = []
    for seed in range(3):
        ckpt = ckpt_factory("cnn2d", seed=seed)
        pairs.append((export_checkpoint(ckpt, tmp_path / f"e{seed}", run_parity=False).onnx.path, ckpt))
    publish_model(reg, *pairs[0], run_parity=False)
    return reg, pairs
