"""``miro-edge sweep --config configs/sweeps/digits.yaml --out runs/sweep-digits``: run, resume, report."""
from typing import Optional

import click


@click.command("sweep")
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False),
              help="sweep YAML (a session config to start from and the grid; see configs/sweeps/)")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="sweep directory: plan.json, runs.jsonl (one line per run), sweep.png/.html")
@click.option("--jobs", type=click.IntRange(1, None), default=1, show_default=True,
              help="points run in parallel worker processes (one torch thread each)")
@click.option("--seeds", default=None, help="override the config's seeds, e.g. 0,1,2")
@click.option("--report-only", is_flag=True, help="do not run anything; (re)draw the report from runs.jsonl")
def command(config_path: str, out_dir: str, jobs: int, seeds: Optional[str], report_only: bool) -> None:
    """Run every point not yet in runs.jsonl (a rerun resumes), then write the report."""
    import dataclasses
    from pathlib import Path

    from miro_edge.config import load_yaml
    from miro_edge.errors import ConfigError
    from miro_edge.sweep.grid import SweepConfig
    from miro_edge.sweep.report import write_report
    from miro_edge.sweep.run import run_sweep

    if not report_only:
        cfg = load_yaml(config_path, SweepConfig)
        if seeds is not None:
            try:
                cfg = dataclasses.replace(cfg, seeds=tuple(int(s) for s in seeds.split(",") if s.strip()))
            except ValueError:
                raise ConfigError(f"--seeds must be comma-separated integers, got {seeds!r}") from None
        failed = []

        with click.progressbar(length=1, label="sweep", show_pos=True, item_show_func=lambda k: k) as bar:
            def on_result(progress) -> None:
                bar.length = progress.total
                if bar.pos == 0 and progress.done > 1:
                    bar.update(progress.done - 1)
                bar.update(1, progress.key.split(":", 1)[1])
                if progress.record.get("status") != "ok":
                    failed.append("{}: {}".format(progress.key, progress.record.get("error")))

            plan = run_sweep(cfg, out_dir, jobs=jobs, config_dir=Path(config_path).parent, on_result=on_result)
        unique = plan.unique()
        click.echo(f"sweep {plan.workload}: {len(unique)} points ({len(plan.points)} runs planned over {len(cfg.seeds)} seed(s)), results in {out_dir}/runs.jsonl")
        for line in failed:
            click.echo(f"failed {line}", err=True)
    report = write_report(out_dir)
    obs = report.observations
    click.echo(f"energy: {obs.energy_label} ({obs.energy_source})")
    for key, verdict in obs.verdicts.items():
        click.echo(f"{key:<26} {verdict}")
    click.echo(f"wrote {report.png}\nwrote {report.html}")
