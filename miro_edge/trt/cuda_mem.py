"""Device buffers for the TensorRT engine and the INT8 calibrator: cuda-python or pycuda.

Both backends expose the same small interface; ``open_device_memory`` takes the first that
imports (cuda-python first: its runtime API makes the primary context current on any thread,
which the hot-swap loader thread needs; pycuda pushes/pops the primary context per call).
"""
from __future__ import annotations

import contextlib
import logging
from typing import Any, Iterator, NamedTuple, Optional

import numpy as np

from miro_edge.errors import HardwareUnavailableError, MissingDependencyError
from miro_edge.utils.optional import require as require_module
from miro_edge.utils.registry import Registry

logger = logging.getLogger(__name__)

CUDA_BACKENDS: Registry[DeviceMemory] = Registry("CUDA memory backend")
BACKEND_ORDER = ("cuda-python", "pycuda")


class DeviceBuffer(NamedTuple):
    ptr: int
    nbytes: int
    handle: Any  # the backend's own object (kept alive while the buffer is used)


class DeviceMemory:
    """Allocations, copies and one stream on GPU 0."""

    name = "base"

    def alloc(self, nbytes: int) -> DeviceBuffer:
        raise NotImplementedError

    def free(self, buf: DeviceBuffer) -> None:
        raise NotImplementedError

    def copy_to_device(self, buf: DeviceBuffer, host: np.ndarray) -> None:
        raise NotImplementedError

    def copy_to_host(self, host: np.ndarray, buf: DeviceBuffer) -> None:
        raise NotImplementedError

    @property
    def stream_handle(self) -> int:
        raise NotImplementedError

    def synchronize(self) -> None:
        raise NotImplementedError

    @contextlib.contextmanager
    def activated(self) -> Iterator[None]:
        """Make the CUDA context current on this thread for the block."""
        yield

    def close(self) -> None:
        pass


def _cudart() -> Any:
    try:
        from cuda.bindings import runtime  # cuda-python >= 12.6

        return runtime
    except ImportError:
        return require_module("cuda.cudart", "trt", "TensorRT device buffers (cuda-python)")


@CUDA_BACKENDS.register("cuda-python")
class CudaPythonMemory(DeviceMemory):
    name = "cuda-python"

    def __init__(self) -> None:
        self.rt = _cudart()
        self._stream = self._check(self.rt.cudaStreamCreate(), "cudaStreamCreate")

    def _check(self, result: Any, what: str) -> Any:
        err = result[0] if isinstance(result, tuple) else result
        if int(err) != 0:
            raise HardwareUnavailableError(f"{what} failed with CUDA error {err}")
        if isinstance(result, tuple):
            return result[1] if len(result) == 2 else result[1:]
        return None

    def alloc(self, nbytes: int) -> DeviceBuffer:
        ptr = self._check(self.rt.cudaMalloc(nbytes), "cudaMalloc")
        return DeviceBuffer(int(ptr), nbytes, ptr)

    def free(self, buf: DeviceBuffer) -> None:
        self._check(self.rt.cudaFree(buf.handle), "cudaFree")

    def copy_to_device(self, buf: DeviceBuffer, host: np.ndarray) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._check(self.rt.cudaMemcpyAsync(buf.ptr, host.ctypes.data, host.nbytes, kind, self._stream),
                    "cudaMemcpyAsync(HtoD)")

    def copy_to_host(self, host: np.ndarray, buf: DeviceBuffer) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._check(self.rt.cudaMemcpyAsync(host.ctypes.data, buf.ptr, host.nbytes, kind, self._stream),
                    "cudaMemcpyAsync(DtoH)")

    @property
    def stream_handle(self) -> int:
        return int(self._stream)

    def synchronize(self) -> None:
        self._check(self.rt.cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")

    def close(self) -> None:
        if self._stream is not None:
            self.rt.cudaStreamDestroy(self._stream)
            self._stream = None


@CUDA_BACKENDS.register("pycuda")
class PycudaMemory(DeviceMemory):
    name = "pycuda"

    def __init__(self) -> None:
        self.cuda = require_module("pycuda.driver", "trt", "TensorRT device buffers (pycuda)")
        self.cuda.init()
        if self.cuda.Device.count() == 0:
            raise HardwareUnavailableError("pycuda sees no CUDA device")
        self.context = self.cuda.Device(0).retain_primary_context()
        with self.activated():
            self.stream = self.cuda.Stream()

    @contextlib.contextmanager
    def activated(self) -> Iterator[None]:
        self.context.push()
        try:
            yield
        finally:
            self.cuda.Context.pop()

    def alloc(self, nbytes: int) -> DeviceBuffer:
        with self.activated():
            handle = self.cuda.mem_alloc(nbytes)
        return DeviceBuffer(int(handle), nbytes, handle)

    def free(self, buf: DeviceBuffer) -> None:
        with self.activated():
            buf.handle.free()

    def copy_to_device(self, buf: DeviceBuffer, host: np.ndarray) -> None:
        with self.activated():
            self.cuda.memcpy_htod_async(buf.handle, host, self.stream)

    def copy_to_host(self, host: np.ndarray, buf: DeviceBuffer) -> None:
        with self.activated():
            self.cuda.memcpy_dtoh_async(host, buf.handle, self.stream)

    @property
    def stream_handle(self) -> int:
        return int(self.stream.handle)

    def synchronize(self) -> None:
        with self.activated():
            self.stream.synchronize()

    def close(self) -> None:
        self.stream = None
        self.context = None


def open_device_memory(prefer: Optional[str] = None) -> DeviceMemory:
    """The first CUDA memory backend that imports (``prefer`` first); MissingDependencyError (extra trt) if none."""
    order = ([prefer] if prefer else []) + [b for b in BACKEND_ORDER if b != prefer]
    errors = []
    for name in order:
        try:
            return CUDA_BACKENDS.create(name)
        except MissingDependencyError as exc:
            errors.append(str(exc))
    raise MissingDependencyError("TensorRT needs cuda-python or pycuda for device buffers: {}; install "
                                 "`pip install 'miro-edge[trt]'`".format(" | ".join(errors)))
