"""``miro-edge update DIR``: one update cycle (or finish the one a kill interrupted)."""
import click


@click.command("update")
@click.argument("directory", type=click.Path(file_okay=False, exists=True))
@click.option("--accept-store-loss", is_flag=True,
              help="the store lost samples (a damaged or restored store): go on with what it holds")
def command(directory: str, accept_store_loss: bool) -> None:
    """Drain → hold out → [profile] → train → EM → validate → checkpoint → export → canary → publish.

    Exits 0 when the new version is published or there was nothing to learn, 2 when the canary
    rejected it (the current version keeps serving)."""
    from miro_edge.workspace.workspace import Workspace

    with Workspace.open(directory, what="update") as ws:
        result = ws.update(progress=click.echo, accept_store_loss=accept_store_loss)
    if result is None:
        return
    click.echo("cycle {}: val accuracy {:.3f}; {}".format(
        result.cycle, result.val_accuracy, f"published v{result.version:06d}" if result.published
        else f"candidate v{result.version:06d} rejected: {result.publish_reason}"))
    if not result.published:
        raise SystemExit(2)
