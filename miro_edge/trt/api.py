"""The TensorRT Python API generations we support, as data.

Each row describes what one range of TensorRT versions offers; the builder and the TensorRT
inference engine read these flags instead of probing attributes or branching on versions, so
every decision is unit-testable without TensorRT installed.

| generation | where | notable API |
|---|---|---|
| 8.0-8.3 | TX2 (8.2) | EXPLICIT_BATCH flag, ``max_workspace_size``, binding indices, ``execute_async_v2`` |
| 8.4 | | ``set_memory_pool_limit`` |
| 8.5-9.x | Xavier NX (8.5) | name-based I/O, ``set_tensor_address``, ``execute_async_v3`` |
| 10.x | desktop | explicit batch default, binding API and ``build_engine`` removed |
| 11.x+ | desktop | calibrators and FP16/INT8 builder flags removed (explicit quantization, strongly typed) |
"""
import dataclasses
import re
from typing import List, Optional, Tuple

from miro_edge.errors import UnsupportedFeatureError

Version = Tuple[int, int, int]


@dataclasses.dataclass(frozen=True)
class TrtApi:
    """Capabilities of one TensorRT Python API generation."""

    generation: str
    explicit_batch_flag_needed: bool   # create_network(1 << EXPLICIT_BATCH) required (else implicit batch)
    workspace_via_pool_limit: bool     # config.set_memory_pool_limit(WORKSPACE, n) vs config.max_workspace_size
    name_based_io: bool                # get_tensor_name/mode, set_input_shape, set_tensor_address
    has_binding_api: bool              # get_binding_*, binding_is_input, set_binding_shape
    has_build_engine: bool             # builder.build_engine(network, config)
    has_int8_calibrator: bool          # IInt8EntropyCalibrator2 + BuilderFlag.INT8
    has_fp16_flag: bool                # BuilderFlag.FP16
    strongly_typed: bool               # precision comes from the network's types (explicit quantization)
    execute_method: str                # execute_async_v2 (bindings list) or execute_async_v3 (addresses set by name)
    version: Version = (0, 0, 0)

    @property
    def version_string(self) -> str:
        return ".".join(str(v) for v in self.version)


@dataclasses.dataclass(frozen=True)
class _Row:
    min_version: Version   # inclusive
    max_version: Version   # exclusive
    api: TrtApi


_ROWS = [
    _Row((8, 0, 0), (8, 4, 0), TrtApi("8.0-8.3", explicit_batch_flag_needed=True, workspace_via_pool_limit=False,
                                       name_based_io=False, has_binding_api=True, has_build_engine=True,
                                       has_int8_calibrator=True, has_fp16_flag=True, strongly_typed=False,
                                       execute_method="execute_async_v2")),
    _Row((8, 4, 0), (8, 5, 0), TrtApi("8.4", explicit_batch_flag_needed=True, workspace_via_pool_limit=True,
                                       name_based_io=False, has_binding_api=True, has_build_engine=True,
                                       has_int8_calibrator=True, has_fp16_flag=True, strongly_typed=False,
                                       execute_method="execute_async_v2")),
    _Row((8, 5, 0), (10, 0, 0), TrtApi("8.5-9.x", explicit_batch_flag_needed=True, workspace_via_pool_limit=True,
                                        name_based_io=True, has_binding_api=True, has_build_engine=True,
                                        has_int8_calibrator=True, has_fp16_flag=True, strongly_typed=False,
                                        execute_method="execute_async_v3")),
    _Row((10, 0, 0), (11, 0, 0), TrtApi("10.x", explicit_batch_flag_needed=False, workspace_via_pool_limit=True,
                                         name_based_io=True, has_binding_api=False, has_build_engine=False,
                                         has_int8_calibrator=True, has_fp16_flag=True, strongly_typed=False,
                                         execute_method="execute_async_v3")),
    _Row((11, 0, 0), (100, 0, 0), TrtApi("11.x+", explicit_batch_flag_needed=False, workspace_via_pool_limit=True,
                                          name_based_io=True, has_binding_api=False, has_build_engine=False,
                                          has_int8_calibrator=False, has_fp16_flag=False, strongly_typed=True,
                                          execute_method="execute_async_v3")),
]


def parse_version(text: str) -> Version:
    """``"8.2.1.8"`` -> (8, 2, 1); ``"10.0.0b6"`` -> (10, 0, 0); missing parts are 0."""
    parts = re.findall(r"\d+", str(text))
    if not parts:
        raise UnsupportedFeatureError(f"cannot parse TensorRT version {text!r}")
    nums = [int(p) for p in parts[:3]] + [0, 0, 0]
    return nums[0], nums[1], nums[2]


def api_for(version: str) -> TrtApi:
    """The capability row for a TensorRT version string (e.g. ``tensorrt.__version__``)."""
    parsed = parse_version(version)
    for row in _ROWS:
        if row.min_version <= parsed < row.max_version:
            return dataclasses.replace(row.api, version=parsed)
    raise UnsupportedFeatureError(f"TensorRT {version} is not supported; miro_edge needs TensorRT >= 8.0 "
                                  "(JetPack 4.6 ships 8.2)")


def generations() -> List[str]:
    return [row.api.generation for row in _ROWS]


def parse_trtexec_banner(text: str) -> Optional[Version]:
    """Version from trtexec's banner ``[TensorRT v8201]`` (8.2.1) or ``[TensorRT v100300]`` (10.3.0)."""
    match = re.search(r"TensorRT v(\d+)", text)
    if not match:
        return None
    n = int(match.group(1))
    if n >= 100000:
        return n // 10000, (n // 100) % 100, n % 100
    return n // 1000, (n // 100) % 10, n % 100
