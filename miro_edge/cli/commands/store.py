"""``miro-edge store``: inspect, check and repair a sample store (``summary``, ``verify [--repair]``)."""
import click


@click.group(help="Inspect, check and repair a sample store directory (e.g. RUN_DIR/store).")
def command() -> None:
    pass


@command.command("summary", help="What the store holds by its checksummed metadata (read-only, no record read).")
@click.argument("store_dir", type=click.Path(exists=True, file_okay=False))
def summary(store_dir: str) -> None:
    from miro_edge.memory.store import SampleStore

    with SampleStore(store_dir, create=False, read_only=True) as store:
        s = store.summary()
        click.echo("store          {} ({}, shape {}, dtype {})".format(store_dir, store.backend_name,
                                                                        list(s.sample_shape or ()), s.dtype))
    click.echo("records        {} ({} bytes); next id {}".format(s.records, s.data_bytes, s.next_id))
    for task, splits in sorted(s.per_task.items()):
        click.echo("task {:<9} {}".format(task, ", ".join("{} {}".format(n, sp) for sp, n in sorted(splits.items()))))
    for split, labels in sorted(s.per_class.items()):
        click.echo("{:<14} {}".format(split, labels))


@command.command("verify", help="Check every record and all metadata; exit 1 if anything is wrong. --repair "
                                "rebuilds a damaged store from what survives (the original is kept beside it).")
@click.argument("store_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--repair", is_flag=True, help="rebuild the store from its intact records and report what is lost")
def verify(store_dir: str, repair: bool) -> None:
    from miro_edge.memory.store import SampleStore, StoreMetadataError, repair_store

    problems, corrupt = [], []  # type: list, list
    try:
        with SampleStore(store_dir, create=False, read_only=True) as store:
            report = store.verify()
            problems, corrupt = list(report.problems), list(report.corrupt_ids)
            click.echo("checked        {} records".format(report.records_checked))
    except StoreMetadataError as exc:
        problems = [str(exc)]
    for line in problems:
        click.echo("problem        {}".format(line))
    if corrupt:
        more = " ..." if len(corrupt) > 20 else ""
        click.echo("corrupt        {} records: {}{}".format(len(corrupt), corrupt[:20], more))
    if not problems and not corrupt:
        click.echo("ok")
        return
    if not repair:
        raise click.ClickException("the store at {} is damaged; rerun with --repair to rebuild it from the records "
                                   "that survive".format(store_dir))
    rep = repair_store(store_dir)
    click.echo("repaired       kept {} records, lost {} ({} failed their checks, {} unreadable); next id {}".format(
        rep.kept, rep.lost, len(rep.lost_ids), rep.unreadable, rep.next_id))
    for split in sorted(set(rep.per_class_before) | set(rep.per_class_after)):
        before, after = rep.per_class_before.get(split, {}), rep.per_class_after.get(split, {})
        gone = {lab: before.get(lab, 0) - after.get(lab, 0) for lab in sorted(set(before) | set(after))
                if before.get(lab, 0) != after.get(lab, 0)}
        if gone:
            click.echo("lost {:<9} {} (label: records the metadata listed minus records kept)".format(split, gone))
    click.echo("damaged copy   {} (delete it once the report is acceptable)".format(rep.damaged_copy))
