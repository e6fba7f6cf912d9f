"""``miro-edge daemon DIR``: run update cycles in the device's idle windows until SIGTERM."""
from pathlib import Path
from typing import Optional

import click


@click.command("daemon")
@click.argument("directory", type=click.Path(file_okay=False, exists=True))
@click.option("--max-cycles", type=click.IntRange(1, None), default=None, help="stop after this many cycles")
@click.option("--timeout", "timeout_s", type=click.FloatRange(0, None), default=None,
              help="stop after this many seconds")
def command(directory: str, max_cycles: Optional[int], timeout_s: Optional[float]) -> None:
    """Wait for an idle window (live load under daemon.idle.max_live_load, optionally on power and in a
    time window); run a cycle when update.min_new_samples samples or a new label wait; pause at a
    batch boundary while the live path is busy; stop cleanly on SIGTERM. One line per cycle."""
    from miro_edge.device.priority import yield_cpu_early

    yield_cpu_early(Path(directory) / "workspace.yaml")  # before the heavy imports: they are CPU work too
    from miro_edge.workspace.daemon import run_daemon
    from miro_edge.workspace.workspace import Workspace

    with Workspace.open(directory, what="daemon") as ws:
        run_daemon(ws, lambda line: click.echo(line), max_cycles=max_cycles, timeout_s=timeout_s)
