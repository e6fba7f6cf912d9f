"""TensorRT: API generations as data, engine builders (Python API, trtexec), the engine cache and
CUDA device buffers. Used by ``export`` (build at publish time) and ``infer`` (build or load on the
device) alike; it imports neither. tensorrt, pycuda and cuda-python load on first use.
"""
from miro_edge.utils.lazy import lazy_getattr

_EXPORTS = {
    "TrtApi": "api", "api_for": "api", "generations": "api",
    "TrtBuildConfig": "builder", "build_serialized_engine": "builder", "cached_engine": "builder",
    "trtexec_command": "builder", "plan_build": "builder",
    "EngineKey": "engine_cache", "EngineCache": "engine_cache", "engine_key": "engine_cache",
    "DeviceMemory": "cuda_mem", "open_device_memory": "cuda_mem",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS)
