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
        click.echo(f"store          {store_dir} ({store.backend_name}, shape {list(s.sample_shape or ())}, dtype {s.dtype})")
    click.echo(f"records        {s.records} ({s.data_bytes} bytes); next id {s.next_id}")
    for task, splits in sorted(s.per_task.items()):
        click.echo("task {:<9} {}".format(task, ", ".join(f"{n} {sp}" for sp, n in sorted(splits.items()))))
    for split, labels in sorted(s.per_class.items()):
        click.echo(f"{split:<14} {labels}")


@command.command("verify", help="Check every record and all metadata; exit 1 if anything is wrong. --repair "
                                "rebuilds a damaged store from what survives (the original is kept beside it).")
@click.argument("store_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--repair", is_flag=True, help="rebuild the store from its intact records and report what is lost")
def verify(store_dir: str, repair: bool) -> None:
    from miro_edge.memory.store import SampleStore, StoreMetadataError, repair_store

    problems: list = []
    corrupt: list = []
    try:
        with SampleStore(store_dir, create=False, read_only=True) as store:
            report = store.verify()
            problems, corrupt = list(report.problems), list(report.corrupt_ids)
            click.echo(f"checked        {report.records_checked} records")
    except StoreMetadataError as exc:
        problems = [str(exc)]
    for line in problems:
        click.echo(f"problem        {line}")
    if corrupt:
        more = " ..." if len(corrupt) > 20 else ""
        click.echo(f"corrupt        {len(corrupt)} records: {corrupt[:20]}{more}")
    if not problems and not corrupt:
        click.echo("ok")
        return
    if not repair:
        raise click.ClickException(f"the store at {store_dir} is damaged; rerun with --repair to rebuild it from the records "
                                   "that survive")
    rep = repair_store(store_dir)
    click.echo(f"repaired       kept {rep.kept} records, lost {rep.lost} ({len(rep.lost_ids)} failed their checks, {rep.unreadable} unreadable); next id {rep.next_id}")
    for split in sorted(set(rep.per_class_before) | set(rep.per_class_after)):
        before, after = rep.per_class_before.get(split, {}), rep.per_class_after.get(split, {})
        gone = {lab: before.get(lab, 0) - after.get(lab, 0) for lab in sorted(set(before) | set(after))
                if before.get(lab, 0) != after.get(lab, 0)}
        if gone:
            click.echo(f"lost {split:<9} {gone} (label: records the metadata listed minus records kept)")
    click.echo(f"damaged copy   {rep.damaged_copy} (delete it once the report is acceptable)")
