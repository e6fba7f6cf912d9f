"""``miro-edge export``: checkpoint -> checked ONNX (+ parity) (+ TensorRT engine when available)."""
from typing import Optional

import click

from miro_edge.export.targets import TARGETS


@click.command(help="Export a trainer checkpoint to ONNX for a target, check it, and run the parity check "
                    "(ONNX Runtime vs PyTorch) on --samples (an .npy array) or random inputs.")
@click.argument("checkpoint", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="output directory")
@click.option("--target", default="desktop", show_default=True, type=click.Choice(TARGETS.names()),
              help="target profile (fixes the opset: tx2 13, xavier-nx 17, desktop 17)")
@click.option("--opset", type=click.IntRange(7, 21), default=None, help="override the target's opset")
@click.option("--samples", type=click.Path(exists=True, dir_okay=False), default=None,
              help=".npy array (N, *input_shape) of real samples for the parity check (and INT8 calibration)")
@click.option("--no-parity", is_flag=True, help="skip the parity check (not recommended)")
@click.option("--atol", type=float, default=1e-4, show_default=True, help="parity absolute tolerance")
@click.option("--rtol", type=float, default=1e-3, show_default=True, help="parity relative tolerance")
@click.option("--engine", type=click.Choice(["auto", "always", "never"]), default="auto", show_default=True,
              help="build a TensorRT engine: auto = when TensorRT and a GPU are present")
@click.option("--precision", type=click.Choice(["fp32", "fp16", "int8"]), default=None,
              help="TensorRT precision  [default: the target's]")
@click.option("--exporter", type=click.Choice(["auto", "torchscript", "dynamo"]), default="auto", show_default=True,
              help="torch.onnx exporter (auto: TorchScript for opset <= 17)")
def command(checkpoint: str, out_dir: str, target: str, opset: Optional[int], samples: Optional[str],
            no_parity: bool, atol: float, rtol: float, engine: str, precision: Optional[str], exporter: str) -> None:
    import numpy as np

    from miro_edge.export.parity import ParityConfig
    from miro_edge.export.pipeline import export_checkpoint

    arr = np.load(samples) if samples else None
    result = export_checkpoint(checkpoint, out_dir, target, opset=opset, samples=arr,
                               parity=ParityConfig(atol=atol, rtol=rtol), run_parity=not no_parity,
                               engine=engine, precision=precision, exporter=exporter)
    click.echo(f"onnx: {result.onnx.path} (opset {result.onnx.opset}, {result.onnx.exporter} exporter, sha256 {result.onnx.sha256[:16]})")
    if result.parity is not None:
        p = result.parity
        click.echo(f"parity: passed on {p.n_samples} {p.sample_source} samples, max |diff| {p.max_abs_diff:.3g}, argmax agreement {p.argmax_agreement:.4f}")
    else:
        click.echo("parity: skipped")
    click.echo("engine: {}".format(result.engine_path or "not built (no TensorRT/GPU here, or --engine never)"))
