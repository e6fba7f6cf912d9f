"""A cache of TensorRT engines keyed by everything that makes an engine non-portable.

The key is (ONNX sha256, TensorRT version, GPU compute capability, precision, input name and
min/opt/max shapes). Each engine ``<digest>.engine`` has a sidecar ``<digest>.json`` holding the
full key and the engine's own sha256; the sidecar is written last and is the commit marker.
An engine whose sidecar is missing, differs from the wanted key, or whose bytes do not match
is rebuilt, never loaded.
"""
import dataclasses
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Sequence, Tuple, Union

from miro_edge.config import require
from miro_edge.errors import HardwareUnavailableError
from miro_edge.utils.atomic import atomic_write_bytes, atomic_write_json
from miro_edge.utils.hashing import sha256_file

logger = logging.getLogger(__name__)

CACHE_FORMAT_VERSION = 1
PathLike = Union[str, Path]


@dataclasses.dataclass(frozen=True)
class EngineKey:
    """Everything an engine depends on; two engines are interchangeable only if keys are equal."""

    onnx_sha256: str
    trt_version: str
    compute_capability: str
    precision: str
    input_name: str
    min_shape: Tuple[int, ...]
    opt_shape: Tuple[int, ...]
    max_shape: Tuple[int, ...]

    def __post_init__(self) -> None:
        require(len(self.onnx_sha256) == 64, "onnx_sha256", "must be a hex sha256")
        require(bool(self.trt_version), "trt_version", "must be set")
        require(bool(self.compute_capability), "compute_capability", "must be set, e.g. '7.2'")

    def as_dict(self) -> Dict[str, Any]:
        data = dataclasses.asdict(self)
        for name in ("min_shape", "opt_shape", "max_shape"):
            data[name] = list(data[name])
        return data

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "EngineKey":
        values = dict(data)
        for name in ("min_shape", "opt_shape", "max_shape"):
            values[name] = tuple(int(v) for v in values[name])
        return cls(**values)

    def digest(self) -> str:
        text = json.dumps(self.as_dict(), sort_keys=True)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


def engine_key(onnx_path: PathLike, trt_version: str, compute_capability: str, precision: str,
               input_name: str, sample_shape: Sequence[int], min_batch: int, opt_batch: int,
               max_batch: int) -> EngineKey:
    """Key for building ``onnx_path`` (its bytes are hashed) with the given settings."""
    s = tuple(int(v) for v in sample_shape)
    return EngineKey(sha256_file(onnx_path), str(trt_version), str(compute_capability), precision, input_name,
                     (min_batch,) + s, (opt_batch,) + s, (max_batch,) + s)


def detect_compute_capability() -> str:
    """GPU 0's compute capability as "major.minor" (torch.cuda, then pycuda, then cuda-python)."""
    try:
        import torch

        if torch.cuda.is_available():
            major, minor = torch.cuda.get_device_capability(0)
            return f"{major}.{minor}"
    except Exception:  # pragma: no cover - broken CUDA install
        pass
    try:
        import pycuda.driver as cuda

        cuda.init()
        major, minor = cuda.Device(0).compute_capability()
        return f"{major}.{minor}"
    except Exception:
        pass
    raise HardwareUnavailableError("no CUDA GPU found (torch.cuda and pycuda see none); TensorRT engines need "
                                   "one: use the onnxruntime engine on this machine")


class EngineCache:
    """Directory of engines with key sidecars. ``get_or_build`` is the only entry point needed."""

    def __init__(self, root: PathLike) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def paths(self, key: EngineKey) -> Tuple[Path, Path]:
        stem = key.digest()[:32]
        return self.root / (stem + ".engine"), self.root / (stem + ".json")

    def lookup(self, key: EngineKey) -> Optional[Path]:
        """The cached engine for ``key``, or None when absent, mismatched or damaged."""
        engine, sidecar = self.paths(key)
        if not engine.is_file() or not sidecar.is_file():
            return None
        try:
            meta = json.loads(sidecar.read_text())
            stored = EngineKey.from_dict(meta["key"])
        except (ValueError, KeyError, TypeError) as exc:
            logger.warning("engine cache sidecar %s unreadable (%s); rebuilding", sidecar, exc)
            return None
        if meta.get("format_version") != CACHE_FORMAT_VERSION or stored != key:
            logger.warning("engine %s was built for a different key (%s); rebuilding", engine,
                           _key_diff(stored, key))
            return None
        if sha256_file(engine) != meta.get("engine_sha256"):
            logger.warning("engine %s does not match its recorded sha256; rebuilding", engine)
            return None
        return engine

    def store(self, key: EngineKey, engine_bytes: bytes) -> Path:
        engine, sidecar = self.paths(key)
        if sidecar.exists():
            os.unlink(str(sidecar))  # the old marker goes first: never a new engine under an old key
        atomic_write_bytes(engine, engine_bytes, perms=0o644)
        atomic_write_json(sidecar, {"format_version": CACHE_FORMAT_VERSION, "key": key.as_dict(),
                                    "engine_sha256": hashlib.sha256(engine_bytes).hexdigest(),
                                    "engine_bytes": len(engine_bytes)}, perms=0o644)
        return engine

    def get_or_build(self, key: EngineKey, build: Callable[[], bytes]) -> Path:
        """The cached engine for ``key``; builds and stores it when missing or mismatched."""
        found = self.lookup(key)
        if found is not None:
            logger.info("engine cache hit %s", found.name)
            return found
        logger.info("engine cache miss for %s; building", key.digest()[:12])
        return self.store(key, build())


def _key_diff(a: EngineKey, b: EngineKey) -> str:
    da, db = a.as_dict(), b.as_dict()
    return ", ".join(f"{k}: {da[k]!r} != {db[k]!r}" for k in sorted(da) if da[k] != db[k]) or "same"
