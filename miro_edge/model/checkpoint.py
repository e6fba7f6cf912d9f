"""Atomic, self-describing checkpoints: the one format the trainer writes and export reads.

A checkpoint is a dict saved with ``torch.save``::

    {"format_version": 2, "model_name": str, "input_shape": [...], "num_classes": int,
     "width": int, "state_dict": ..., "config": {...}, "task_id": int, "metrics": {...},
     "payload_sha256": str}

It is always loaded weights-only (``miro_edge.utils.torch_compat.load_weights_only``: torch's
``weights_only=True``, or the same allowlist on torch 1.13): a checkpoint can never run code.
``payload_sha256`` covers every other field (tensor bytes, dtypes and shapes included) and is
checked on load, so a file damaged after it was written (a flipped or zeroed byte inside a
tensor, which ``torch.load`` itself does not notice) is refused instead of exported. Version 1
files (no checksum) still load.
"""
import hashlib
import io
import json
import logging
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Union

from miro_edge.errors import CheckpointError
from miro_edge.utils.atomic import atomic_write_bytes
from miro_edge.utils.torch_compat import load_weights_only

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
CHECKSUM_KEY = "payload_sha256"
REQUIRED_KEYS = ("format_version", "model_name", "input_shape", "num_classes", "state_dict")

PathLike = Union[str, Path]


def read_checkpoint(path: PathLike) -> Dict[str, Any]:
    """Load a checkpoint dict safely (weights only) and check its keys and version."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; pass the .pt file the trainer wrote")
    try:
        ckpt = load_weights_only(str(path), map_location="cpu")
    except Exception as exc:  # torch raises many types for truncated/corrupt/unsafe files
        raise CheckpointError(f"cannot load checkpoint {path} ({type(exc).__name__}: {exc}); the file is corrupt, truncated or "
                              "not a miro_edge checkpoint") from None
    if not isinstance(ckpt, Mapping):
        raise CheckpointError(f"checkpoint {path} holds a {type(ckpt).__name__}, expected a dict")
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise CheckpointError("checkpoint {} lacks key(s) {}; it was not written by the miro_edge trainer"
                              .format(path, ", ".join(missing)))
    version = ckpt["format_version"]
    if version not in READABLE_VERSIONS:
        raise CheckpointError("checkpoint {} has format_version {}; this miro_edge reads versions {}"
                              .format(path, version, ", ".join(map(str, READABLE_VERSIONS))))
    if version >= 2:
        recorded = ckpt.get(CHECKSUM_KEY)
        digest = payload_digest(ckpt)
        if recorded != digest:
            raise CheckpointError(f"checkpoint {path} fails its checksum (its contents hash to {digest[:16]}, it records {str(recorded)[:16]}): the file "
                                  "was damaged after it was written; use an earlier checkpoint or retrain")
    return dict(ckpt)


def payload_digest(ckpt: Mapping[str, Any]) -> str:
    """sha256 over every field but the checksum: tensors by dtype, shape and bytes, the rest as JSON."""
    digest = hashlib.sha256()
    _feed(digest, {k: v for k, v in ckpt.items() if k != CHECKSUM_KEY})
    return digest.hexdigest()


def _feed(digest: Any, value: Any) -> None:
    if isinstance(value, Mapping):
        digest.update(b"{")
        for key in sorted(value, key=str):
            digest.update(json.dumps(str(key)).encode("utf-8"))
            _feed(digest, value[key])
        digest.update(b"}")
    elif isinstance(value, (list, tuple)):
        digest.update(b"[")
        for item in value:
            _feed(digest, item)
        digest.update(b"]")
    elif hasattr(value, "detach") and hasattr(value, "dtype"):  # a tensor
        import torch

        t = value.detach().cpu().contiguous()
        digest.update(f"T{t.dtype}{list(t.shape)}".encode("ascii"))
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    else:
        digest.update(json.dumps(value, sort_keys=True, default=str).encode("utf-8"))


def model_from_checkpoint(path: PathLike) -> Any:
    """Rebuild the model a checkpoint describes, load its weights, and return it in eval mode."""
    from miro_edge.model.architectures import create_model

    ckpt = read_checkpoint(path)
    model = create_model(str(ckpt["model_name"]), [int(v) for v in ckpt["input_shape"]],
                         int(ckpt["num_classes"]), width=int(ckpt.get("width", 32)))
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as exc:
        raise CheckpointError("checkpoint {} weights do not fit model {!r} {}: {}".format(
            path, ckpt["model_name"], list(ckpt["input_shape"]), exc)) from None
    model.eval()
    return model


def save_checkpoint(path: PathLike, model: Any, model_name: str, input_shape: Sequence[int],
                    width: int = 32, config: Optional[Mapping[str, Any]] = None, task_id: int = 0,
                    metrics: Optional[Mapping[str, float]] = None, label_map: Optional[Sequence[Any]] = None,
                    class_metrics: Optional[Mapping[str, Any]] = None) -> Path:
    """Write a checkpoint atomically (temp file, fsync, rename): format version, model recipe,
    config, metrics and the label map (class id -> the user's label) inside, so it rebuilds its
    model and predicts in the user's labels with no side information. ``class_metrics`` holds
    per-class validation results (the canary compares old and new models class by class)."""
    import torch

    payload = {
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "model_name": model_name,
        "input_shape": [int(v) for v in input_shape],
        "num_classes": int(model.num_classes),
        "width": int(width),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "config": dict(config or {}),
        "task_id": int(task_id),
        "metrics": {k: float(v) for k, v in (metrics or {}).items()},
        "label_map": None if label_map is None else list(label_map),
        "class_metrics": dict(class_metrics or {}),
    }
    payload[CHECKSUM_KEY] = payload_digest(payload)
    buf = io.BytesIO()
    torch.save(payload, buf)
    return atomic_write_bytes(path, buf.getvalue())
