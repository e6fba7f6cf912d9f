"""``miro-edge publish``: add an exported model to the registry through the canary gate."""
from typing import Optional, Tuple

import click


def _metric(text: str) -> Tuple[str, float]:
    name, sep, value = text.partition("=")
    if not sep:
        raise click.BadParameter(f"expected NAME=VALUE, got {text!r}")
    try:
        return name.strip(), float(value)
    except ValueError:
        raise click.BadParameter(f"metric {text!r} has a non-numeric value") from None


@click.command(help="Publish MODEL_ONNX (and --checkpoint) as a new registry version. It becomes current only "
                    "if its validation metric is within --max-drop of the current version's; otherwise it is "
                    "kept as a rejected candidate.")
@click.argument("model_onnx", type=click.Path(exists=True, dir_okay=False))
@click.option("--registry", "registry_dir", required=True, type=click.Path(file_okay=False), help="registry directory")
@click.option("--checkpoint", type=click.Path(exists=True, dir_okay=False), default=None,
              help="the checkpoint the ONNX came from (parity-checked, published beside it, metrics read from it)")
@click.option("--metric", "metrics", multiple=True, help="NAME=VALUE validation metric (repeatable)")
@click.option("--samples", type=click.Path(exists=True, dir_okay=False), default=None,
              help=".npy samples for the parity check  [default: random inputs]")
@click.option("--canary-metric", default="val_accuracy", show_default=True, help="metric the canary gate compares")
@click.option("--max-drop", type=click.FloatRange(0, None), default=0.01, show_default=True,
              help="largest allowed drop of the canary metric vs the current version")
@click.option("--keep-last", type=click.IntRange(1, None), default=5, show_default=True,
              help="versions to keep (current and its parent are always kept)")
@click.option("--force", is_flag=True, help="publish even if the canary gate rejects it")
def command(model_onnx: str, registry_dir: str, checkpoint: Optional[str], metrics: Tuple[str, ...],
            samples: Optional[str], canary_metric: str, max_drop: float, keep_last: int, force: bool) -> None:
    import numpy as np

    from miro_edge.export.pipeline import publish_model
    from miro_edge.registry.canary import CanaryConfig
    from miro_edge.registry.model_registry import ModelRegistry

    canary = CanaryConfig(metric=canary_metric, max_drop=max_drop)
    registry = ModelRegistry(registry_dir, keep_last=keep_last, canary=canary)
    result = publish_model(registry, model_onnx, checkpoint, metrics=dict(_metric(m) for m in metrics),
                           samples=np.load(samples) if samples else None, force=force)
    state = "published" if result.accepted else "rejected"
    click.echo(f"{state} {result.manifest.name} (parent {result.manifest.parent}): {result.reason}")
    click.echo(f"current: {registry.current_version()}")
    if not result.accepted:
        raise SystemExit(2)  # a rejected candidate is not a success; it is kept under rejected/
