"""Atomic, self-describing checkpoints: format version, model recipe and config inside.

A checkpoint rebuilds its model with no side information and loads with ``weights_only=True``.
"""
import io
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import torch

from miro_edge.errors import InputError
from miro_edge.train.models import IncrementalClassifier, create_model
from miro_edge.utils.atomic import atomic_write_bytes

CHECKPOINT_FORMAT = 1


def save_checkpoint(path: Union[str, Path], model: IncrementalClassifier, model_name: str, width: int,
                    task_id: int, config: Optional[Dict[str, Any]] = None,
                    metrics: Optional[Dict[str, Any]] = None) -> Path:
    payload = {
        "format_version": CHECKPOINT_FORMAT,
        "model_name": model_name,
        "input_shape": list(model.input_shape),
        "num_classes": model.num_classes,
        "width": width,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "config": config or {},
        "task_id": task_id,
        "metrics": metrics or {},
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: Union[str, Path]) -> Tuple[IncrementalClassifier, Dict[str, Any]]:
    """Rebuild the model from a checkpoint; returns (model in eval mode, the checkpoint dict)."""
    path = Path(path)
    if not path.is_file():
        raise InputError("checkpoint {} does not exist".format(path))
    try:
        payload = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file
        raise InputError("cannot read checkpoint {}: {}".format(path, exc)) from None
    if not isinstance(payload, dict) or payload.get("format_version") != CHECKPOINT_FORMAT:
        raise InputError("{} is not a miro_edge checkpoint of format {} (got {!r})".format(
            path, CHECKPOINT_FORMAT, payload.get("format_version") if isinstance(payload, dict) else type(payload)))
    model = create_model(payload["model_name"], payload["input_shape"], payload["num_classes"], payload["width"])
    model.load_state_dict(payload["state_dict"])
    model.eval()
    return model, payload
