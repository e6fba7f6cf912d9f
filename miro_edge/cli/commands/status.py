"""``miro-edge status RUN_DIR``: tasks done, accuracy, energy, store contents, latest choice."""
import click


@click.command("status")
@click.argument("run_dir", type=click.Path(file_okay=False))
def command(run_dir: str) -> None:
    """Summarise a run directory (read-only)."""
    from miro_edge.run_status import run_status

    st = run_status(run_dir)
    click.echo("run            {} ({})".format(st.run_dir, "finished" if st.finished else "in progress or stopped"))
    click.echo("tasks done     {}".format(", ".join(map(str, st.tasks_done)) or "none"))
    if st.average_accuracy is not None:
        click.echo("avg accuracy   {:.3f} over {} tasks".format(st.average_accuracy, len(st.last_accuracies)))
        click.echo("energy         {:.1f} J ({})".format(st.energy_j, st.energy_label))
    if st.last_choice:
        click.echo("last choice    task {task_id}: EM {em_size}, SB {sb_size} ({scorer})".format(**st.last_choice))
    if st.store_records is not None:
        click.echo("store          {} records; per class {}".format(st.store_records, st.store_class_counts))
