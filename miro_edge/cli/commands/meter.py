"""``miro-edge meter``: live power per rail from the best (or a chosen) source."""
from typing import Optional

import click

from miro_edge.energy import AUTO, meter_names, open_meter, probe_all, watch


@click.command(help="Show live power per rail; stops after --count samples or --seconds.")
@click.option("--source", default=AUTO, show_default=True,
              type=click.Choice([AUTO] + meter_names()), help="power source")
@click.option("--interval-ms", type=click.IntRange(1, 60000), default=None,
              help="sampling period in ms  [default: the source's, 100 for most]")
@click.option("--count", type=click.IntRange(1, None), default=None,
              help="stop after this many samples  [default: 10 unless --seconds]")
@click.option("--seconds", type=click.FloatRange(0.001, None), default=None, help="stop after this long")
@click.option("--root", default="/", show_default=True, type=click.Path(file_okay=False),
              help="prefix of /sys and /proc (a host /sys mounted elsewhere)")
@click.option("--list", "list_sources", is_flag=True, help="list the sources and why each is (un)usable")
def command(source: str, interval_ms: Optional[int], count: Optional[int], seconds: Optional[float],
            root: str, list_sources: bool) -> None:
    if list_sources:
        for p in probe_all(root):
            click.echo("{:<11} {:<9} {:<10} {}".format(
                p.name, "yes" if p.available else "no", p.label, p.reason))
        return
    if count is None and seconds is None:
        count = 10
    interval_s = interval_ms / 1000.0 if interval_ms else None
    with open_meter(source, root=root, interval_s=interval_s) as meter:
        click.echo("source: {} ({}), every {:.0f} ms, total rail: {}".format(
            meter.source, meter.label, meter.interval_s * 1000, meter.total_rail or "sum of rails"))
        t0 = None
        for sample in watch(meter, count=count, seconds=seconds):
            t0 = sample.t_s if t0 is None else t0
            rails = "  ".join(f"{name} {w:.3f}" for name, w in sorted(sample.rails_w.items()))
            click.echo(f"{sample.t_s - t0:8.3f} s  total {sample.total_w:.3f} W  {rails}")
