"""``miro-edge ingest DIR --from PATH``: queue labelled samples for the next update cycle."""
import io
import sys
from pathlib import Path

import click


@click.command("ingest")
@click.argument("directory", type=click.Path(file_okay=False, exists=True))
@click.option("--from", "source", required=True, type=click.Path(exists=True),
              help=".npz with x and y; .csv of windows (a 'label' column + values); or a folder of images with "
                   "one sub-folder per label")
def command(directory: str, source: str) -> None:
    """Validate every sample first (nothing is queued if one is bad), then queue them durably.

    Needs no lock: works while the daemon or the server runs; the next cycle learns them."""
    from miro_edge.workspace.readers import count_samples, read_samples
    from miro_edge.workspace.workspace import Workspace

    ws = Workspace.open(directory, writer=False)
    path = Path(source)
    where = f"{path.name} sample"
    seen = 0
    for x, labels in read_samples(path, ws.input_shape):  # pass 1: validate all (errors name the index)
        ws.validate(x, labels, where, first_index=seen)
        seen += len(labels)
    total = count_samples(path) or seen
    done = 0
    # Silent when stderr is not a terminal. Not `hidden=`: that arrived in click 8.2 (Python >= 3.10),
    # and the boards run 3.8 with click 8.1, whose bar still prints its label to a non-terminal.
    bar_file = sys.stderr if sys.stderr.isatty() else io.StringIO()
    with click.progressbar(length=total, label="ingesting", file=bar_file) as bar:
        for x, labels in read_samples(path, ws.input_shape):  # pass 2: queue
            done += ws.ingest(x, labels, source="cli:" + path.name)
            bar.update(len(labels))
    count, waiting = ws.inbox.waiting()
    new = ws.labels.new_labels(waiting)
    click.echo("queued {} samples from {}; {} waiting in {} ({} new labels{})".format(
        done, path, count, ws.inbox.path, len(new), ": " + ", ".join(map(str, new)) if new else ""))
