"""``miro-edge run --config configs/demo.yaml``: a whole continual-learning session."""
from typing import Optional

import click


@click.command("run")
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False),
              help="YAML session config (see configs/).")
@click.option("--out", "out_dir", default=None, help="Run directory (default: the config's out_dir).")
@click.option("--seed", type=int, default=None, help="Override train.seed and data.seed.")
def command(config_path: str, out_dir: Optional[str], seed: Optional[int]) -> None:
    """Run every task of a class-incremental stream and print a table of accuracies."""
    import dataclasses

    from miro_edge.config import load_yaml
    from miro_edge.session import SessionConfig, TaskResult, run_session

    config = load_yaml(config_path, SessionConfig)
    if seed is not None:
        config = dataclasses.replace(config, train=dataclasses.replace(config.train, seed=seed),
                                     data=dataclasses.replace(config.data, seed=seed))
    click.echo("miro-edge run: {} ({} classes/task), model {}, EM {}, SB {}, swap ratio {}".format(
        config.data.dataset, config.data.classes_per_task, config.train.model,
        "all" if config.memory.em_size is None else config.memory.em_size,
        "task" if config.memory.sb_size is None else config.memory.sb_size, config.memory.swap.swap_ratio))

    def progress(result: TaskResult) -> None:
        click.echo("  task {:>2} classes {:<10} avg acc {:6.3f}  EM {:>5}  SB {:>5}  swaps {:>6}  {:6.1f}s".format(
            result.task_id, ",".join(map(str, result.classes)), result.average_accuracy, result.em_size,
            result.sb_size, result.swaps_done, result.train_seconds))

    result = run_session(config, out_dir, on_task=progress)
    skipped = len(result.accuracy_matrix) - len(result.tasks)
    if skipped:
        click.echo(f"  (resumed: tasks 0..{skipped - 1} were already done in {result.out_dir})")
    click.echo("\naccuracy after each task (rows) on each task's test classes (columns):")
    header = "        " + "".join(f"  t{j:<5}" for j in range(len(result.accuracy_matrix)))
    click.echo(header)
    for i, row in enumerate(result.accuracy_matrix):
        click.echo(f"  t{i:<4} " + "".join(f"  {a:.3f} " for a in row))
    click.echo(f"\nfinal average accuracy      {result.final_average_accuracy:.3f}")
    click.echo(f"average incremental acc.    {result.average_incremental_accuracy:.3f}")
    click.echo(f"forgetting                  {result.forgetting:.3f}")
    click.echo(f"training time               {result.train_seconds:.1f}s ({result.sample_passes} sample-passes)")
    click.echo(f"results                     {result.out_dir}/results.jsonl")
