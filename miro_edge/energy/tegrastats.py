"""Power rails parsed from ``tegrastats`` output (JetPack 4, 5 and 6 line formats).

``tegrastats --interval <ms>`` runs as a subprocess; each line becomes one sample. Rail fields:

* JetPack 4: ``VDD_IN 1876/1876`` (current/average, mW, no unit);
* JetPack 5: ``VDD_IN 2500mW/2500mW``;
* JetPack 6: a timestamp first and up to three values per rail ``VDD_IN 5139mW/5139mW/5139mW``.

Only the first (instantaneous) value is used; averages are not integrated. Memory fields such
as ``RAM 2102/7846MB`` have a unit other than mW and are not rails.
"""
import logging
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence

from miro_edge.energy.integrate import total_of
from miro_edge.energy.meter import METERS, PowerMeter
from miro_edge.energy.records import MeterUnavailableError, PowerSample, SensorLostError
from miro_edge.utils.sysfs import under

logger = logging.getLogger(__name__)

_RAIL = re.compile(
    r"(?:^|\s)([A-Za-z][A-Za-z0-9_]*)\s+(\d+(?:\.\d+)?)(?:mW)?/(\d+(?:\.\d+)?)(?:mW)?"
    r"(?:/(\d+(?:\.\d+)?)(?:mW)?)?(?=\s|$)")
_TIMESTAMP = re.compile(r"^\s*(\d{2}-\d{2}-\d{4} \d{2}:\d{2}:\d{2})")
_NOT_RAILS = frozenset({"RAM", "SWAP", "IRAM", "EMC_FREQ", "GR3D_FREQ"})


@dataclass(frozen=True)
class TegrastatsReading:
    """The rails of one tegrastats line, instantaneous values in mW."""

    rails_mw: Mapping[str, float]
    timestamp: Optional[str] = None

    def to_sample(self, t_s: float) -> PowerSample:
        rails_w = {name: mw / 1000.0 for name, mw in self.rails_mw.items()}
        total_w, _ = total_of(rails_w)
        return PowerSample(t_s, total_w, rails_w)


def parse_line(line: str) -> Optional[TegrastatsReading]:
    """Rails of one tegrastats line; None for a line without power rails."""
    rails: Dict[str, float] = {}
    for match in _RAIL.finditer(line):
        name = match.group(1)
        if name.upper() in _NOT_RAILS:
            continue
        rails[name] = float(match.group(2))
    if not rails:
        return None
    stamp = _TIMESTAMP.match(line)
    return TegrastatsReading(rails, stamp.group(1) if stamp else None)


def find_tegrastats(root: str = "/") -> Optional[str]:
    """Path of the tegrastats binary (``/usr/bin/tegrastats`` on JetPack), or None."""
    candidate = under(root, "/usr/bin/tegrastats")
    if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
        return candidate
    if root == "/":
        return shutil.which("tegrastats")
    return None


@METERS.register("tegrastats")
class TegrastatsMeter(PowerMeter):
    """Streams ``tegrastats --interval <ms>``; ``command`` replaces the program for tests."""

    name = "tegrastats"
    fidelity = 60
    default_interval_s = 0.1
    streaming = True

    def __init__(self, root: str = "/", command: Optional[Sequence[str]] = None, **kwargs: Any) -> None:
        kwargs.pop("background", None)  # always streams
        super().__init__(**kwargs)
        self.root = root
        self.command = list(command) if command is not None else None
        self._proc: Optional[subprocess.Popen] = None
        self._stderr: Any = None
        self._rails: List[str] = []

    @classmethod
    def probe(cls, root: str = "/", command: Optional[Sequence[str]] = None, **options: Any) -> Optional[str]:
        if command is not None:
            return None if shutil.which(command[0]) or os.path.isfile(command[0]) else \
                f"tegrastats command {command[0]!r} not found"
        if find_tegrastats(root) is None:
            return "tegrastats not found ({} missing and not on PATH)".format(under(root, "/usr/bin/tegrastats"))
        return None

    def rails(self) -> List[str]:
        return list(self._rails)

    def _argv(self) -> List[str]:
        program = self.command if self.command is not None else [find_tegrastats(self.root) or "tegrastats"]
        return list(program) + ["--interval", str(max(1, int(round(self.interval_s * 1000))))]

    def _open_source(self) -> None:
        reason = self.probe(self.root, self.command)
        if reason is not None:
            raise MeterUnavailableError(f"{reason}; tegrastats ships with JetPack on Jetson boards; pick another "
                                        "source with --source")
        argv = self._argv()
        self._stderr = tempfile.TemporaryFile()
        try:
            self._proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self._stderr,
                                          stdin=subprocess.DEVNULL, universal_newlines=True, bufsize=1)
        except OSError as exc:
            self._stderr.close()
            raise MeterUnavailableError("cannot start {}: {}".format(" ".join(argv), exc)) from exc
        logger.debug("started %s (pid %d)", " ".join(argv), self._proc.pid)

    def _run_stream(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        for line in proc.stdout:
            if self._stop.is_set():
                return
            reading = parse_line(line)
            if reading is None:
                continue
            if not self._rails:
                self._rails = list(reading.rails_mw)
                _, self.total_rail = total_of(reading.rails_mw)
            self._publish(reading.to_sample(self.clock()))
        if self._stop.is_set():
            return
        code = proc.wait()
        raise SensorLostError(f"tegrastats exited with status {code}{self._stderr_tail()}")

    def _stderr_tail(self) -> str:
        if self._stderr is None:
            return ""
        try:
            self._stderr.seek(0)
            text = self._stderr.read().decode("utf-8", "replace").strip()
        except (OSError, ValueError):
            return ""
        return ": " + text[-300:] if text else ""

    def _interrupt_stream(self) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()

    def _close_source(self) -> None:
        proc = self._proc
        self._proc = None
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
            try:
                proc.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
