"""``miro-edge measure -- CMD ...``: run a command and print the energy it took."""
import sys
from typing import Optional, Tuple

import click

from miro_edge.energy import AUTO, measure_command, meter_names


@click.command(help="Run CMD and print its energy (J), duration and mean power with the source; "
                    "exits with CMD's exit status. Put -- before CMD.",
               context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("--source", default=AUTO, show_default=True,
              type=click.Choice([AUTO] + meter_names()), help="power source")
@click.option("--interval-ms", type=click.IntRange(1, 60000), default=None,
              help="sampling period in ms  [default: the source's]")
@click.option("--root", default="/", show_default=True, type=click.Path(file_okay=False),
              help="prefix of /sys and /proc (a host /sys mounted elsewhere)")
@click.argument("cmd", nargs=-1, required=True, type=click.UNPROCESSED)
def command(source: str, interval_ms: Optional[int], root: str, cmd: Tuple[str, ...]) -> None:
    run = measure_command(list(cmd), source=source, root=root,
                          interval_s=interval_ms / 1000.0 if interval_ms else None)
    r = run.result
    click.echo(f"energy {r.energy_j:.3f} J  duration {r.duration_s:.3f} s  mean {r.mean_w:.3f} W  peak {r.peak_w:.3f} W  samples {r.sample_count}  "
               f"source {r.source} ({r.label})", err=True)
    if r.label != "measured":
        click.echo("note: no power sensor here; this is an estimate from the energy model "
                   "(idle power x time)", err=True)
    # sys.exit, not ctx.exit: main() runs click with standalone_mode=False, where ctx.exit's
    # status would be returned, and `python -m miro_edge` drops return values.
    sys.exit(run.returncode)
