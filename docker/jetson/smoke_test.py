#!/usr/bin/env python3
"""Smoke test of an installed miro_edge: run at image build time and by the test suite.

The Jetson Dockerfiles run it as their last build step; ``tests/docker/test_smoke_script.py`` runs
the same file against the development venv (and ``make compat`` against the Python 3.8 ones), so
it cannot rot. Each check prints one line, ``PASS <check>: ...``, ``SKIP <check>: <reason>`` or
``FAIL <check>: ...``; the exit status is 1 when any check failed, else 0.

Checks:
  import    miro_edge, torch and numpy import; their versions
  cli       the ``miro-edge`` console script answers ``--help`` and lists its subcommands
  onnx      a tiny checkpoint goes through ``miro-edge export`` at the target's opset, the ONNX file
            loads with the ``onnx`` checker and passes the parity check (ONNX Runtime vs PyTorch)
  tensorrt  one engine build (``miro-edge export --engine always``) where TensorRT and a CUDA GPU
            are present; skipped with the reason otherwise (``--require-tensorrt`` makes that a
            failure; ``--require-tensorrt-bindings`` fails only when the bindings do not import)
"""
import argparse
import importlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

JETPACK_TRTEXEC = "/usr/src/tensorrt/bin/trtexec"
SUBCOMMANDS = ("export", "live", "meter", "status")  # present in every release of the CLI

Result = Tuple[str, str]  # (PASS | SKIP | FAIL, detail)


class CheckFailed(Exception):
    """A check found the installation broken; the message says what is wrong."""


class Skip(Exception):
    """A check cannot run here (no TensorRT, no GPU); the message says why."""


def console_script() -> List[str]:
    """The ``miro-edge`` entry point of this interpreter's environment (beside it, else on PATH)."""
    beside = Path(sys.executable).parent / "miro-edge"
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("miro-edge")
    if found is None:
        raise CheckFailed(f"no `miro-edge` console script beside {sys.executable} or on PATH; is the package "
                          "installed (pip install .)?")
    return [found]


def run_cli(args: Sequence[str], timeout_s: float = 600.0) -> str:
    """Run ``miro-edge ARGS``; its stdout, or CheckFailed carrying its error output."""
    proc = subprocess.run(console_script() + list(args), capture_output=True, text=True, timeout=timeout_s)
    if proc.returncode != 0:
        raise CheckFailed("`miro-edge {}` exited {}: {}".format(
            " ".join(args), proc.returncode, (proc.stderr or proc.stdout).strip()[-1500:]))
    return proc.stdout


def check_import() -> str:
    import numpy
    import torch

    import miro_edge

    return f"python {sys.version.split()[0]}, miro_edge {miro_edge.__version__}, torch {torch.__version__}, numpy {numpy.__version__}"


def check_cli() -> str:
    out = run_cli(["--help"])
    missing = [name for name in SUBCOMMANDS if name not in out]
    if missing:
        raise CheckFailed("`miro-edge --help` does not list {}:\n{}".format(", ".join(missing), out))
    version = run_cli(["--version"]).strip()
    return "{}; lists {}".format(version, ", ".join(SUBCOMMANDS))


def tiny_checkpoint(path: Path) -> Path:
    """A real (untrained) checkpoint of the smallest built-in model, written by the SDK itself."""
    import torch

    from miro_edge.model.architectures import create_model
    from miro_edge.model.checkpoint import save_checkpoint

    torch.manual_seed(0)
    shape = (1, 8, 8)
    model = create_model("cnn2d", shape, 3, width=4).eval()
    return save_checkpoint(path, model, "cnn2d", shape, width=4, metrics={"val_accuracy": 0.5})


def target_opset(target: str) -> int:
    from miro_edge.export.targets import get_target

    return int(get_target(target).opset)


def check_onnx(workdir: Path, target: str) -> str:
    import onnx

    ckpt = tiny_checkpoint(workdir / "tiny.pt")
    out_dir = workdir / "onnx"
    out = run_cli(["export", str(ckpt), "--out", str(out_dir), "--target", target, "--engine", "never"])
    onnx_files = sorted(out_dir.glob("*.onnx"))
    if len(onnx_files) != 1:
        raise CheckFailed(f"expected one .onnx file in {out_dir}, found {[p.name for p in onnx_files]}")
    model = onnx.load(str(onnx_files[0]))
    onnx.checker.check_model(model)
    opsets = {entry.domain: entry.version for entry in model.opset_import}
    expected = target_opset(target)
    if opsets.get("", opsets.get("ai.onnx")) != expected:
        raise CheckFailed(f"{onnx_files[0]} has opsets {opsets}, expected {expected} for target {target}")
    parity = [line for line in out.splitlines() if line.startswith("parity: passed")]
    if not parity:
        raise CheckFailed(f"`miro-edge export` printed no passed parity check:\n{out}")
    return f"{onnx_files[0].name} (opset {expected}); {parity[0]}"


def tensorrt_available() -> Tuple[Optional[str], Optional[str]]:
    """(TensorRT version or None, why not) from the Python bindings, else JetPack's trtexec."""
    try:
        trt = importlib.import_module("tensorrt")
        return str(trt.__version__), None
    except ImportError as exc:
        if os.path.isfile(JETPACK_TRTEXEC):
            return "trtexec", None
        return None, f"the tensorrt Python bindings do not import ({exc}) and {JETPACK_TRTEXEC} is absent"


def gpu_available() -> Optional[str]:
    """Why no CUDA GPU is usable, or None when torch sees one."""
    import torch

    if not torch.cuda.is_available():
        built = torch.version.cuda
        return ("torch sees no CUDA GPU (torch built {}; in a container: --runtime nvidia, or "
                "\"default-runtime\": \"nvidia\" in /etc/docker/daemon.json for docker build)".format(
                    "for CUDA " + built if built else "without CUDA"))
    return None


def check_tensorrt(workdir: Path, target: str, require_bindings: bool) -> str:
    version, why = tensorrt_available()
    if version is None:
        if require_bindings:
            raise CheckFailed(why)
        raise Skip(why)
    no_gpu = gpu_available()
    if no_gpu is not None:
        raise Skip(f"TensorRT {version} is installed but {no_gpu}")
    ckpt = workdir / "tiny.pt"
    if not ckpt.is_file():
        tiny_checkpoint(ckpt)
    out_dir = workdir / "trt"
    out = run_cli(["export", str(ckpt), "--out", str(out_dir), "--target", target, "--engine", "always"])
    engines = [line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("engine:")]
    if not engines or not os.path.isfile(engines[0]) or os.path.getsize(engines[0]) == 0:
        raise CheckFailed(f"`miro-edge export --engine always` reported no engine file:\n{out}")
    return f"TensorRT {version}: engine {engines[0]} ({os.path.getsize(engines[0])} bytes)"


def run_checks(target: str, require_tensorrt: bool, require_bindings: bool, workdir: Path) -> List[Tuple[str, Result]]:
    checks: List[Tuple[str, Callable[[], str]]] = [
        ("import", check_import),
        ("cli", check_cli),
        ("onnx", lambda: check_onnx(workdir, target)),
        ("tensorrt", lambda: check_tensorrt(workdir, target, require_bindings)),
    ]
    results: List[Tuple[str, Result]] = []
    for name, check in checks:
        try:
            results.append((name, ("PASS", check())))
        except Skip as exc:
            status = "FAIL" if require_tensorrt else "SKIP"
            results.append((name, (status, str(exc))))
        except CheckFailed as exc:
            results.append((name, ("FAIL", str(exc))))
        except Exception as exc:  # an import or export error is exactly what this script must report
            results.append((name, ("FAIL", f"{type(exc).__name__}: {exc}")))
        print(f"{results[-1][1][0]} {name}: {results[-1][1][1]}", flush=True)
    return results


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default=os.environ.get("MIRO_EDGE_TARGET", "desktop"),
                        help="export target profile (tx2, xavier-nx, desktop; default $MIRO_EDGE_TARGET or desktop)")
    parser.add_argument("--require-tensorrt", action="store_true",
                        help="fail, not skip, when no engine can be built (no TensorRT or no GPU)")
    parser.add_argument("--require-tensorrt-bindings", action="store_true",
                        help="fail when the tensorrt Python bindings do not import (a GPU may still be absent)")
    parser.add_argument("--workdir", default=None, help="keep the exported files here (default: a temp dir)")
    args = parser.parse_args(argv)
    if args.workdir:
        workdir = Path(args.workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        results = run_checks(args.target, args.require_tensorrt, args.require_tensorrt_bindings, workdir)
    else:
        with tempfile.TemporaryDirectory(prefix="miro-edge-smoke-") as tmp:
            results = run_checks(args.target, args.require_tensorrt, args.require_tensorrt_bindings, Path(tmp))
    counts = {s: sum(1 for _, (status, _) in results if status == s) for s in ("PASS", "SKIP", "FAIL")}
    print("smoke test ({}): {} passed, {} failed, {} skipped".format(
        args.target, counts["PASS"], counts["FAIL"], counts["SKIP"]))
    return 1 if counts["FAIL"] else 0


if __name__ == "__main__":
    sys.exit(main())
