"""``miro-edge status DIR [--json]``: a workspace (or a run directory) at a glance, read-only."""
import json

import click


@click.command("status")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="print everything as one JSON document")
def command(directory: str, as_json: bool) -> None:
    """Labels and samples per label, model versions, the last cycle's accuracy, energy, config,
    swap ratio and samples waiting. Needs no lock."""
    from pathlib import Path

    from miro_edge.workspace.status import workspace_status
    from miro_edge.workspace.workspace import CONFIG_NAME, NotAWorkspaceError

    if not (Path(directory) / CONFIG_NAME).is_file():
        raise NotAWorkspaceError(f"{directory} is not a miro_edge workspace (no {CONFIG_NAME}); pass the directory given to "
                                 "`miro-edge init` or `miro-edge run --out`")
    st = workspace_status(Path(directory))
    if as_json:
        click.echo(json.dumps(st, indent=2, sort_keys=True, default=str))
        return
    click.echo("workspace      {}".format(st["workspace"]))
    click.echo("labels         {}".format(", ".join(map(str, st["labels"])) or "none yet"))
    for label, counts in sorted(st["samples_per_label"].items()):
        click.echo("  {:<12} {:>6} train  {:>5} held out  {:>5} waiting".format(
            label, counts["train"], counts["val"], counts["waiting"]))
    click.echo("waiting        {} samples".format(st["samples_waiting"]))
    click.echo("cycles done    {}{}".format(st["cycles_done"], "  (cycle {number} stopped after step {step!r}; "
                                            "`miro-edge update` resumes it)".format(**st["cycle_in_progress"])
                                            if st["cycle_in_progress"] else ""))
    last = st["last_cycle"]
    if last:
        click.echo("last cycle     {}: val accuracy {:.3f}, EM {}, SB {}, swap ratio {}, {:.1f} J ({}, {})".format(
            last["cycle"], last["val_accuracy"], last["em_size"], last["sb_size"], last["swap_ratio"],
            last["energy_j"], last["energy_label"], last["energy_source"]))
    if st["tasks"]:
        click.echo("tasks done     {} (simulated session; last average accuracy {:.3f})".format(
            ", ".join(str(t["task_id"]) for t in st["tasks"]), st["tasks"][-1]["average_accuracy"]))
    click.echo("energy         {:.1f} J over all cycles ({})".format(st["energy_j"], st["energy_label"]))
    click.echo("current model  {}".format("v{:06d}".format(st["current_version"]) if st["current_version"] else "none"))
    for v in st["versions"]:
        click.echo("  v{:06d}  {:<8} {}".format(v["version"], v["status"], v["reason"]))
