"""The ``miro-edge`` command line: a thin layer over the library.

Subcommands live one per module in ``miro_edge.cli.commands`` (module ``foo_bar`` is command
``foo-bar`` and exposes a click command named ``command``). They are imported only when invoked,
so ``miro-edge --help`` stays instant and never imports torch.
"""
import errno
import importlib
import logging
import pkgutil
import sys
from typing import Any, List, Optional

import click

from miro_edge import __version__
from miro_edge.cli import commands as _commands_pkg
from miro_edge.errors import MiroEdgeError


class LazyGroup(click.Group):
    """A click group whose subcommands are modules discovered without importing them."""

    def list_commands(self, ctx: click.Context) -> List[str]:
        names = [m.name.replace("_", "-") for m in pkgutil.iter_modules(_commands_pkg.__path__)
                 if not m.name.startswith("_")]
        return sorted(names)

    def get_command(self, ctx: click.Context, cmd_name: str) -> Optional[click.Command]:
        if cmd_name not in self.list_commands(ctx):
            return None
        module = importlib.import_module("miro_edge.cli.commands." + cmd_name.replace("-", "_"))
        return module.command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="miro-edge")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def cli(verbose: int) -> None:
    """On-device continual learning: update cycles, export, energy and status."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def main(argv: Optional[List[str]] = None) -> Any:
    """Entry point; library errors become one clean line and exit status 1."""
    try:
        return cli.main(args=argv, prog_name="miro-edge", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except MiroEdgeError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    except OSError as exc:  # a full, read-only or forbidden disk on a path the library did not map itself
        click.echo(f"Error: {os_error_line(exc)}", err=True)
        sys.exit(1)


_OS_FIXES = {
    errno.ENOSPC: "free space on that disk (or point out_dir/--registry at another) and rerun; what was written "
                  "before is kept",
    errno.EROFS: "the file system is read-only; point out_dir/--registry at writable storage, or use a read-only "
                 "command (status, versions, store summary)",
    errno.EACCES: "check the permissions of that path (or run as its owner)",
    errno.EPERM: "check the permissions of that path (or run as its owner)",
    errno.EDQUOT: "the disk quota is exhausted; free space and rerun",
}


def os_error_line(exc: OSError) -> str:
    """One line for an OS error: what failed, on which file, and the fix."""
    where = exc.filename if exc.filename is not None else "a file"
    fix = _OS_FIXES.get(exc.errno or 0, "check the path and the disk, then rerun")
    return f"{exc.strerror or exc} on {where}: {fix}"
