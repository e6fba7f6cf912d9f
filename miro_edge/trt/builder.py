"""ONNX -> serialized TensorRT engine, through the Python API or ``trtexec`` as a fallback.

Decisions (network flags, workspace setter, precision flags, calibration) come from
:class:`~miro_edge.trt.api.TrtApi` rows via :func:`plan_build`, so they are testable
without TensorRT. Builders are registered by name (``python``, ``trtexec``); ``select_builder``
picks the Python API when ``tensorrt`` imports, else ``trtexec`` when found.
Engines are device-specific: use :mod:`miro_edge.trt.engine_cache` to reuse them safely.
"""
import dataclasses
import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

from miro_edge.config import field, require
from miro_edge.errors import EngineBuildError, MissingDependencyError, UnsupportedFeatureError
from miro_edge.model.onnx_file import onnx_input
from miro_edge.trt.api import TrtApi, api_for, parse_trtexec_banner
from miro_edge.utils.optional import require as require_module
from miro_edge.utils.registry import Registry

logger = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "int8")
JETPACK_TRTEXEC = "/usr/src/tensorrt/bin/trtexec"

PathLike = Union[str, Path]


@dataclasses.dataclass(frozen=True)
class TrtBuildConfig:
    """Engine build settings. Batch sizes define the dynamic-batch optimization profile."""

    precision: str = field("fp32", help="fp32 | fp16 | int8 (int8 calibrates on the samples given)")
    workspace_mb: int = field(256, help="builder workspace limit in MiB")
    min_batch: int = field(1, help="smallest batch the engine accepts")
    opt_batch: int = field(1, help="batch the engine is tuned for (the live path runs batch 1)")
    max_batch: int = field(32, help="largest batch the engine accepts")
    calibration_batch_size: int = field(8, help="INT8 calibration batch size")
    calibration_cache: Optional[str] = field(None, help="INT8 calibration cache file (read and written)")

    def __post_init__(self) -> None:
        require(self.precision in PRECISIONS, "precision", "must be one of {}, got {!r}".format(
            ", ".join(PRECISIONS), self.precision))
        require(self.workspace_mb > 0, "workspace_mb", "must be > 0")
        require(1 <= self.min_batch <= self.opt_batch <= self.max_batch, "opt_batch",
                f"need 1 <= min_batch <= opt_batch <= max_batch, got {self.min_batch}/{self.opt_batch}/{self.max_batch}")
        require(self.calibration_batch_size >= 1, "calibration_batch_size", "must be >= 1")

    def shapes(self, sample_shape: Sequence[int]) -> Tuple[Tuple[int, ...], Tuple[int, ...], Tuple[int, ...]]:
        """(min, opt, max) full input shapes of the optimization profile."""
        s = tuple(int(v) for v in sample_shape)
        return (self.min_batch,) + s, (self.opt_batch,) + s, (self.max_batch,) + s


class BuildPlan(NamedTuple):
    """What the Python builder will do, decided from the API row and the config."""

    network_flags: Tuple[str, ...]      # NetworkDefinitionCreationFlag names to OR together
    workspace_call: str                 # "set_memory_pool_limit" or "max_workspace_size"
    builder_flags: Tuple[str, ...]      # BuilderFlag names
    use_calibrator: bool
    build_call: str                     # "build_serialized_network"


def plan_build(api: TrtApi, cfg: TrtBuildConfig, calibration_available: bool = False) -> BuildPlan:
    """Decide network flags, workspace setter and precision flags for one API generation."""
    flags: List[str] = []
    use_calibrator = False
    if cfg.precision in ("fp16", "int8"):
        if not api.has_fp16_flag:
            raise UnsupportedFeatureError(
                f"TensorRT {api.version_string} ({api.generation}) removed the FP16/INT8 builder flags (strongly typed networks); export "
                "the model in the wanted precision or build with precision fp32")
        flags.append("FP16")
    if cfg.precision == "int8":
        if not api.has_int8_calibrator:
            raise UnsupportedFeatureError(
                f"TensorRT {api.version_string} ({api.generation}) removed INT8 calibrators (IInt8EntropyCalibrator2); use explicit "
                "quantization (Q/DQ nodes in the ONNX model) or precision fp16")
        if not calibration_available and not cfg.calibration_cache:
            raise UnsupportedFeatureError("INT8 needs calibration data: pass samples (EM samples) or a "
                                          "calibration_cache file")
        flags.append("INT8")
        use_calibrator = True
    network_flags = ("EXPLICIT_BATCH",) if api.explicit_batch_flag_needed else ()
    workspace = "set_memory_pool_limit" if api.workspace_via_pool_limit else "max_workspace_size"
    return BuildPlan(network_flags, workspace, tuple(flags), use_calibrator, "build_serialized_network")


# --------------------------------------------------------------------------- builders

BUILDERS: Registry[Any] = Registry("TensorRT engine builder")


class BuildRequest(NamedTuple):
    onnx_path: Path
    config: TrtBuildConfig
    input_name: str
    sample_shape: Tuple[int, ...]
    calibration: Optional[np.ndarray]


def tensorrt_version() -> str:
    """Version of the installed TensorRT: Python bindings first, then the trtexec banner."""
    try:
        trt = require_module("tensorrt", "trt", "TensorRT engine building")
        return str(trt.__version__)
    except MissingDependencyError:
        exe = find_trtexec()
        if exe is None:
            raise
        version = trtexec_version(exe)
        if version is None:
            raise EngineBuildError(f"cannot read the TensorRT version from {exe} --help") from None
        return ".".join(str(v) for v in version)


@BUILDERS.register("python")
def build_with_python_api(request: BuildRequest) -> bytes:
    """Build with the ``tensorrt`` Python bindings; returns the serialized engine."""
    trt = require_module("tensorrt", "trt", "TensorRT engine building")
    api = api_for(trt.__version__)
    cfg = request.config
    plan = plan_build(api, cfg, calibration_available=request.calibration is not None)
    trt_logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(trt_logger)
    flags = 0
    for name in plan.network_flags:
        flags |= 1 << int(getattr(trt.NetworkDefinitionCreationFlag, name))
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, trt_logger)
    with open(str(request.onnx_path), "rb") as handle:
        ok = parser.parse(handle.read())
    if not ok:
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise EngineBuildError("TensorRT {} cannot parse {}: {}; check the export opset against the target "
                               "profile".format(trt.__version__, request.onnx_path, "; ".join(errors)))
    config = builder.create_builder_config()
    workspace = cfg.workspace_mb << 20
    if plan.workspace_call == "set_memory_pool_limit":
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace)
    else:
        config.max_workspace_size = workspace
    for name in plan.builder_flags:
        config.set_flag(getattr(trt.BuilderFlag, name))
    profile = builder.create_optimization_profile()
    lo, opt, hi = cfg.shapes(request.sample_shape)
    profile.set_shape(request.input_name, lo, opt, hi)
    config.add_optimization_profile(profile)
    calibrator = None
    try:
        if plan.use_calibrator:
            calibrator = make_entropy_calibrator(trt, request.calibration, cfg.calibration_batch_size,
                                                 cfg.calibration_cache)
            config.int8_calibrator = calibrator
            if hasattr(config, "set_calibration_profile"):
                config.set_calibration_profile(profile)
        logger.info("building TensorRT %s engine (%s) from %s, shapes %s/%s/%s", api.version_string, cfg.precision,
                    request.onnx_path, lo, opt, hi)
        serialized = builder.build_serialized_network(network, config)
    finally:  # the calibrator's device buffer goes back even when the build raises
        if calibrator is not None:
            calibrator.release()
    if serialized is None:
        raise EngineBuildError(f"TensorRT {trt.__version__} failed to build an engine from {request.onnx_path} (see the TensorRT log above); try "
                               "a larger workspace_mb or precision fp32")
    return bytes(serialized)


def make_entropy_calibrator(trt: Any, samples: Optional[np.ndarray], batch_size: int,
                            cache_file: Optional[str]) -> Any:
    """An ``IInt8EntropyCalibrator2`` fed from ``samples`` (EM samples), with an on-disk cache."""
    from miro_edge.trt.cuda_mem import open_device_memory
    from miro_edge.utils.atomic import atomic_write_bytes

    data = None if samples is None else np.ascontiguousarray(np.asarray(samples, dtype=np.float32))
    memory = open_device_memory()

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self._next = 0
            self._buffer = None
            if data is not None:
                self._buffer = memory.alloc(batch_size * int(np.prod(data.shape[1:])) * 4)

        def get_batch_size(self) -> int:
            return batch_size

        def get_batch(self, names: List[str]) -> Optional[List[int]]:
            buffer = self._buffer
            if data is None or buffer is None or self._next + batch_size > len(data):
                return None
            chunk = data[self._next:self._next + batch_size]
            self._next += batch_size
            memory.copy_to_device(buffer, chunk)
            return [int(buffer.ptr)]

        def read_calibration_cache(self) -> Optional[bytes]:
            if cache_file and os.path.isfile(cache_file):
                with open(cache_file, "rb") as handle:
                    return handle.read()
            return None

        def write_calibration_cache(self, cache: Any) -> None:
            if cache_file:
                atomic_write_bytes(cache_file, bytes(cache))

        def release(self) -> None:
            if self._buffer is not None:
                memory.free(self._buffer)
                self._buffer = None
            memory.close()

    return EntropyCalibrator()


def find_trtexec() -> Optional[str]:
    """``trtexec`` on PATH, else JetPack's ``/usr/src/tensorrt/bin/trtexec``, else None."""
    found = shutil.which("trtexec")
    if found:
        return found
    if os.path.isfile(JETPACK_TRTEXEC) and os.access(JETPACK_TRTEXEC, os.X_OK):
        return JETPACK_TRTEXEC
    return None


def trtexec_version(exe: str) -> Optional[Tuple[int, int, int]]:
    try:
        proc = subprocess.run([exe, "--help"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=60, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_trtexec_banner(proc.stdout.decode("utf-8", "replace"))


def _shape_arg(name: str, shape: Sequence[int]) -> str:
    return "{}:{}".format(name, "x".join(str(v) for v in shape))


def trtexec_command(exe: str, onnx_path: PathLike, engine_path: PathLike, cfg: TrtBuildConfig,
                    input_name: str, sample_shape: Sequence[int], api: TrtApi) -> List[str]:
    """The trtexec command line equivalent to the Python build (a pure function, for tests)."""
    plan = plan_build(api, cfg, calibration_available=False)
    lo, opt, hi = cfg.shapes(sample_shape)
    cmd = [exe, f"--onnx={onnx_path}", f"--saveEngine={engine_path}",
           "--minShapes=" + _shape_arg(input_name, lo), "--optShapes=" + _shape_arg(input_name, opt),
           "--maxShapes=" + _shape_arg(input_name, hi)]
    if plan.workspace_call == "set_memory_pool_limit":
        cmd.append(f"--memPoolSize=workspace:{cfg.workspace_mb}")
    else:
        cmd.append(f"--workspace={cfg.workspace_mb}")
    if "FP16" in plan.builder_flags:
        cmd.append("--fp16")
    if "INT8" in plan.builder_flags:
        cmd.extend(["--int8", f"--calib={cfg.calibration_cache}"])
    return cmd


@BUILDERS.register("trtexec")
def build_with_trtexec(request: BuildRequest) -> bytes:
    """Build by running ``trtexec`` (when the Python bindings are missing)."""
    exe = find_trtexec()
    if exe is None:
        raise MissingDependencyError("neither the tensorrt Python bindings nor trtexec were found; install "
                                     "`pip install 'miro-edge[trt]'` or put trtexec on PATH")
    version = trtexec_version(exe)
    if version is None:
        raise EngineBuildError(f"cannot read the TensorRT version from `{exe} --help`")
    api = api_for(".".join(str(v) for v in version))
    if request.config.precision == "int8" and not request.config.calibration_cache:
        raise UnsupportedFeatureError("trtexec INT8 builds need a calibration_cache (build once with the Python "
                                      "API and EM samples, or use fp16)")
    tmpdir = tempfile.mkdtemp(prefix="miro-trtexec-")
    try:
        engine_path = os.path.join(tmpdir, "model.engine")
        cmd = trtexec_command(exe, request.onnx_path, engine_path, request.config, request.input_name,
                              request.sample_shape, api)
        logger.info("running %s", " ".join(cmd))
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
        if proc.returncode != 0 or not os.path.isfile(engine_path):
            tail = proc.stdout.decode("utf-8", "replace")[-2000:]
            raise EngineBuildError(f"trtexec failed (exit {proc.returncode}): {tail}")
        with open(engine_path, "rb") as handle:
            return handle.read()
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def available_builder() -> str:
    """"python" when ``tensorrt`` imports, "trtexec" when found, else MissingDependencyError (extra trt)."""
    try:
        require_module("tensorrt", "trt", "TensorRT engine building")
        return "python"
    except MissingDependencyError:
        if find_trtexec() is not None:
            return "trtexec"
        raise


def build_serialized_engine(onnx_path: PathLike, config: Optional[TrtBuildConfig] = None,
                            calibration: Optional[np.ndarray] = None, builder: Optional[str] = None) -> bytes:
    """Build an engine for ``onnx_path`` with the named (or the available) builder."""
    cfg = config or TrtBuildConfig()
    name, sample = onnx_input(onnx_path)
    request = BuildRequest(Path(onnx_path), cfg, name, sample, calibration)
    return BUILDERS.create(builder or available_builder(), request)


def cached_engine(onnx_path: PathLike, cache_dir: PathLike, config: Optional[TrtBuildConfig] = None,
                  calibration: Optional[np.ndarray] = None, compute_capability: Optional[str] = None,
                  trt_version: Optional[str] = None, builder: Optional[str] = None) -> Path:
    """Path of an engine for ``onnx_path`` on this GPU and TensorRT, built only on a cache miss."""
    from miro_edge.trt.engine_cache import EngineCache, detect_compute_capability, engine_key

    cfg = config or TrtBuildConfig()
    name, sample = onnx_input(onnx_path)
    key = engine_key(onnx_path, trt_version or tensorrt_version(), compute_capability or
                     detect_compute_capability(), cfg.precision, name, sample, cfg.min_batch, cfg.opt_batch,
                     cfg.max_batch)
    return EngineCache(cache_dir).get_or_build(
        key, lambda: build_serialized_engine(onnx_path, cfg, calibration, builder))
