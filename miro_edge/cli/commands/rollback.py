"""``miro-edge rollback``: point the registry's current version back (to the parent by default)."""
from typing import Optional

import click


@click.command(help="Make an earlier version current (default: the current version's parent). The target's "
                    "files are verified against their sha256 first.")
@click.option("--registry", "registry_dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="registry directory")
@click.option("--to", "to_version", type=click.IntRange(1, None), default=None, help="version number to make current")
def command(registry_dir: str, to_version: Optional[int]) -> None:
    from miro_edge.registry.model_registry import ModelRegistry

    manifest = ModelRegistry(registry_dir).rollback(to_version)
    click.echo(f"current: {manifest.name} (task {manifest.task_id}, metrics {manifest.metrics})")
