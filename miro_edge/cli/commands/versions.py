"""``miro-edge versions``: list the registry's versions, marking the current one."""
import json

import click


@click.command(help="List registry versions (current marked with *; 'staged': accepted but never made current, a "
                    "publish cut short); --all includes rejected candidates. --verify exits 1 if any is CORRUPT.")
@click.option("--registry", "registry_dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="registry directory")
@click.option("--all", "include_rejected", is_flag=True, help="include rejected candidates")
@click.option("--json", "as_json", is_flag=True, help="print manifests as JSON")
@click.option("--verify", is_flag=True, help="check every artifact's sha256 (slower)")
def command(registry_dir: str, include_rejected: bool, as_json: bool, verify: bool) -> None:
    from miro_edge.errors import RegistryError
    from miro_edge.registry.model_registry import ModelRegistry

    registry = ModelRegistry(registry_dir)
    current = registry.current_version()
    manifests = registry.versions(include_rejected=include_rejected)
    if as_json:
        click.echo(json.dumps({"current": current, "versions": [m.as_dict() for m in manifests]}, indent=2,
                              sort_keys=True, default=str))
        return
    if not manifests:
        click.echo(f"no versions in {registry_dir}")
        return
    corrupt = []
    for m in manifests:
        check = ""
        if verify:
            try:
                registry.verify(m.version)
                check = " ok"
            except RegistryError as exc:
                check = f" CORRUPT ({exc})"
                corrupt.append(m.name)
        metrics = " ".join(f"{k}={v:.4f}" for k, v in sorted(m.metrics.items()))
        click.echo("{} {} {:<8} parent={} task={} {} {}{}".format(
            "*" if m.version == current else " ", m.name, m.status, m.parent, m.task_id, metrics,
            m.reason if m.status == "rejected" else "", check).rstrip())
    if corrupt:
        raise click.ClickException("{} version(s) failed verification: {}; roll back to a version that passes "
                                   "(`miro-edge rollback --to N`) or republish".format(
                                       len(corrupt), ", ".join(corrupt)))
