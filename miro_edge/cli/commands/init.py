"""``miro-edge init DIR [--config C.yaml]``: create a device workspace."""
from typing import Optional

import click


@click.command("init")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="YAML workspace config (sections memory, train, controller, energy, update, daemon); "
                   "default: the built-in defaults, written to DIR/workspace.yaml with comments")
def command(directory: str, config_path: Optional[str]) -> None:
    """Create a workspace: config, store, label map, registry, journal in one directory."""
    from miro_edge.config import load_yaml
    from miro_edge.workspace.config import WorkspaceConfig
    from miro_edge.workspace.workspace import CONFIG_NAME, Workspace

    config = load_yaml(config_path, WorkspaceConfig) if config_path else WorkspaceConfig()
    root = Workspace.init(directory, config)
    click.echo(f"created workspace {root} (edit {root / CONFIG_NAME} to change the model, memory or idle policy)")
    click.echo(f"next: `miro-edge ingest {root} --from FILE`, then `miro-edge update {root}`")
