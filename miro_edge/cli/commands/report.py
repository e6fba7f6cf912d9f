"""``miro-edge report``: plots and a summary table of the controller's decisions in a run."""
import click

from miro_edge.errors import MiroEdgeError


@click.command("report")
@click.option("--results", "results_path", required=True, type=click.Path(dir_okay=False),
              help="results JSONL of a run (e.g. runs/x/results.jsonl)")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="directory for task_<id>.png and summary.txt (created if missing)")
def command(results_path: str, out_dir: str) -> None:
    """Draw accuracy vs energy per task (cutline, chosen point) and print the summary table."""
    from miro_edge.controller.report import write_report

    try:
        report = write_report(results_path, out_dir)
    except MiroEdgeError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(report.summary, nl=False)
    for png in report.pngs:
        click.echo(f"wrote {png}")
    click.echo(f"wrote {report.summary_path}")
