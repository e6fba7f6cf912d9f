"""TensorRT engine: a serialized engine (cached per device) run with device buffers.

The engine file comes from the version's ``model.onnx`` through the engine cache (built on
a miss, keyed by ONNX hash, TensorRT version, GPU, precision and shapes). I/O follows the
installed API generation (:mod:`miro_edge.trt.api`): binding indices and
``execute_async_v2`` on TensorRT 8.2-8.4, tensor names and ``execute_async_v3`` from 8.5.
"""
import importlib.util
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, List, Mapping, Optional, Tuple

import numpy as np

from miro_edge.errors import EngineBuildError, InputError
from miro_edge.infer.base import ENGINES, EngineOptions, InferenceEngine
from miro_edge.utils.optional import require as require_module

if TYPE_CHECKING:
    from miro_edge.trt.cuda_mem import DeviceBuffer

logger = logging.getLogger(__name__)


def io_tensors(engine: Any, trt: Any, name_based: bool) -> Tuple[str, str, int, int]:
    """Find the one input and one output of ``engine`` with the API generation's calls."""
    inputs: List[Tuple[str, int]] = []
    outputs: List[Tuple[str, int]] = []
    if name_based:
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            (inputs if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT else outputs).append((name, i))
    else:
        for i in range(engine.num_bindings):
            (inputs if engine.binding_is_input(i) else outputs).append((engine.get_binding_name(i), i))
    if len(inputs) != 1 or len(outputs) != 1:
        raise EngineBuildError(f"engine has inputs {inputs} and outputs {outputs}; expected one of each")
    return inputs[0][0], outputs[0][0], inputs[0][1], outputs[0][1]


@ENGINES.register("tensorrt")
class TrtEngine(InferenceEngine):
    """TensorRT execution with device buffers sized for ``options.max_batch``."""

    name = "tensorrt"

    def __init__(self, artifacts: Mapping[str, Path], options: Optional[EngineOptions] = None,
                 engine_path: Optional[Path] = None) -> None:
        from miro_edge.infer.base import input_shape_of
        from miro_edge.model.artifacts import ONNX_ARTIFACT

        if ONNX_ARTIFACT not in artifacts and engine_path is None:
            raise InputError("the tensorrt engine needs a model.onnx artifact or an engine file")
        self.onnx_path = Path(artifacts[ONNX_ARTIFACT]) if ONNX_ARTIFACT in artifacts else None
        self.engine_path = engine_path
        super().__init__(input_shape_of(artifacts), options)
        self._state: dict = {}

    @classmethod
    def unavailable_reason(cls, artifacts: Mapping[str, Path], options: EngineOptions) -> Optional[str]:
        if importlib.util.find_spec("tensorrt") is None:
            return "tensorrt is not installed (pip install 'miro-edge[trt]', or use JetPack's python3-libnvinfer)"
        if importlib.util.find_spec("cuda") is None and importlib.util.find_spec("pycuda") is None:
            return "neither cuda-python nor pycuda is installed (pip install 'miro-edge[trt]')"
        if "model.onnx" not in artifacts:
            return "no model.onnx artifact"
        try:
            from miro_edge.trt.engine_cache import detect_compute_capability

            detect_compute_capability()
        except Exception as exc:
            return str(exc)
        return None

    def _open(self) -> None:
        from miro_edge.trt.api import api_for
        from miro_edge.trt.builder import TrtBuildConfig, cached_engine
        from miro_edge.trt.cuda_mem import open_device_memory

        trt = require_module("tensorrt", "trt", "the TensorRT inference engine")
        api = api_for(trt.__version__)
        path = self.engine_path
        if path is None:
            if self.onnx_path is None:  # __init__ refuses this pair; kept for the type checker
                raise InputError("the tensorrt engine needs a model.onnx artifact or an engine file")
            cfg = TrtBuildConfig(precision="fp16" if self.options.fp16 else "fp32", max_batch=self.options.max_batch)
            path = cached_engine(self.onnx_path, self.options.cache_dir(), cfg)
        memory = open_device_memory()
        buffers: List[DeviceBuffer] = []
        try:  # a failed open (bad engine, out of device memory) leaves nothing allocated
            trt_logger = trt.Logger(trt.Logger.WARNING)
            runtime = trt.Runtime(trt_logger)
            with memory.activated():
                with open(str(path), "rb") as handle:
                    engine = runtime.deserialize_cuda_engine(handle.read())
                if engine is None:
                    raise EngineBuildError(f"TensorRT {trt.__version__} could not deserialize {path}; delete it from the "
                                           "engine cache so it is rebuilt")
                context = engine.create_execution_context()
                in_name, out_name, in_idx, out_idx = io_tensors(engine, trt, api.name_based_io)
                max_in = (self.options.max_batch,) + self.input_shape
                if api.name_based_io:
                    context.set_input_shape(in_name, max_in)
                    out_shape = tuple(context.get_tensor_shape(out_name))
                else:
                    context.set_binding_shape(in_idx, max_in)
                    out_shape = tuple(context.get_binding_shape(out_idx))
                buffers.append(memory.alloc(int(np.prod(max_in)) * 4))
                buffers.append(memory.alloc(int(np.prod(out_shape)) * 4))
        except BaseException:
            with memory.activated():
                for buf in buffers:
                    memory.free(buf)
            memory.close()
            raise
        d_in, d_out = buffers
        self._state = dict(trt=trt, api=api, memory=memory, runtime=runtime, engine=engine, context=context,
                           in_name=in_name, out_name=out_name, in_idx=in_idx, out_idx=out_idx,
                           d_in=d_in, d_out=d_out, out_tail=out_shape[1:])
        logger.info("TensorRT %s engine %s open (%s I/O)", trt.__version__, Path(str(path)).name,
                    "name-based" if api.name_based_io else "binding-index")

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        st = self._state
        limit = self.options.max_batch
        if len(batch) > limit:
            return np.concatenate([self._infer(batch[i:i + limit]) for i in range(0, len(batch), limit)])
        memory, context, api = st["memory"], st["context"], st["api"]
        out = np.empty((len(batch),) + tuple(st["out_tail"]), dtype=np.float32)
        with memory.activated():
            memory.copy_to_device(st["d_in"], batch)
            if api.name_based_io:
                context.set_input_shape(st["in_name"], batch.shape)
                context.set_tensor_address(st["in_name"], st["d_in"].ptr)
                context.set_tensor_address(st["out_name"], st["d_out"].ptr)
                ok = context.execute_async_v3(memory.stream_handle)
            else:
                context.set_binding_shape(st["in_idx"], batch.shape)
                bindings = [0, 0]
                bindings[st["in_idx"]] = st["d_in"].ptr
                bindings[st["out_idx"]] = st["d_out"].ptr
                ok = context.execute_async_v2(bindings=bindings, stream_handle=memory.stream_handle)
            if not ok:
                raise EngineBuildError(f"TensorRT execution failed for a batch shaped {batch.shape}")
            memory.copy_to_host(out, st["d_out"])
            memory.synchronize()
        return out

    def _close(self) -> None:
        st, self._state = self._state, {}
        if not st:
            return
        memory = st["memory"]
        memory.free(st["d_in"])
        memory.free(st["d_out"])
        st.clear()
        memory.close()
