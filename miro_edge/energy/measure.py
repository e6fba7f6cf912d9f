"""Measure the energy of running one command (``miro-edge measure -- CMD ...``)."""
import logging
import os
import subprocess
from dataclasses import dataclass
from typing import Optional, Sequence

from miro_edge.energy.detect import AUTO, open_meter
from miro_edge.energy.meter import PowerMeter
from miro_edge.energy.records import WindowResult
from miro_edge.errors import InputError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CommandEnergy:
    """The command's exit status and the window that covered its run."""

    argv: Sequence[str]
    returncode: int
    result: WindowResult


def measure_command(argv: Sequence[str], source: str = AUTO, interval_s: Optional[float] = None,
                    root: str = "/", meter: Optional[PowerMeter] = None) -> CommandEnergy:
    """Run ``argv`` inside a measurement window of ``meter`` (or a newly opened ``source``).

    The whole device is measured, not only the command. With the calibrated model (no sensor)
    the estimate covers idle power only, because an arbitrary command reports no work.
    """
    if not argv:
        raise InputError("no command given; usage: miro-edge measure -- CMD [ARGS...]")
    if meter is None:
        with open_meter(source, root=root, interval_s=interval_s) as opened:
            return measure_command(argv, meter=opened)
    name = os.path.basename(str(argv[0]))
    with meter.window(name) as window:
        try:
            returncode = subprocess.call(list(argv))
        except OSError as exc:
            raise InputError(f"cannot run {argv[0]!r}: {exc}") from exc
    return CommandEnergy(tuple(argv), returncode, window.result)
