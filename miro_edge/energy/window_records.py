"""Measurement windows read back from JSON lines, the input of ``miro-edge calibrate``.

A window record is what :meth:`WindowResult.to_dict` writes: the recorder's ``trial_window``
events in a run's ``results.jsonl`` are such records, and so is any file of one record per
line. Other events in the file (``task``, ``session_end``...) are skipped.
"""
import json
from pathlib import Path
from typing import Any, Dict, List, Mapping, Union

from miro_edge.energy.records import RailEnergy, WindowResult
from miro_edge.errors import InputError

REQUIRED = ("energy_j", "duration_s", "label", "source")


def is_window_record(record: Mapping[str, Any]) -> bool:
    return "window" in record and "energy_j" in record and "duration_s" in record


def window_from_record(record: Mapping[str, Any], where: str = "record") -> WindowResult:
    """Rebuild a :class:`WindowResult` from its ``to_dict`` form; errors name ``where``."""
    missing = [k for k in REQUIRED if k not in record]
    if missing:
        raise InputError("{}: window record lacks {}".format(where, ", ".join(missing)))
    try:
        duration = float(record["duration_s"])
        energy = float(record["energy_j"])
        rails: Dict[str, RailEnergy] = {}
        for name, r in dict(record.get("rails") or {}).items():
            rails[str(name)] = RailEnergy(str(name), float(r["energy_j"]), float(r.get("mean_w", 0.0)),
                                          float(r.get("peak_w", 0.0)))
        return WindowResult(
            name=str(record.get("window", "")), source=str(record["source"]), label=str(record["label"]),
            energy_j=energy, duration_s=duration, mean_w=float(record.get("mean_w", 0.0)),
            peak_w=float(record.get("peak_w", 0.0)), sample_count=int(record.get("sample_count", 0)),
            rails=rails, total_rail=record.get("total_rail"), start_s=0.0, end_s=duration,
            sample_passes=int(record.get("sample_passes", 0)), bytes_read=int(record.get("bytes_read", 0)),
            complete=bool(record.get("complete", True)), flops=float(record.get("flops", 0.0)))
    except (TypeError, ValueError, KeyError) as exc:
        raise InputError(f"{where}: bad window record: {exc}") from None


def read_windows(path: Union[str, Path]) -> List[WindowResult]:
    """Every window record of a JSON-lines file (a torn last line is skipped, like the recorder)."""
    file = Path(path)
    if not file.is_file():
        raise InputError(f"window file {file} does not exist")
    lines = file.read_text().splitlines()
    out: List[WindowResult] = []
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line:
            continue
        try:
            record = json.loads(line)
        except ValueError:
            if number == len(lines):
                continue  # torn last line: a power cut mid-write
            raise InputError(f"{file}:{number}: not a JSON line") from None
        if isinstance(record, Mapping) and is_window_record(record):
            out.append(window_from_record(record, f"{file}:{number}"))
    if not out:
        raise InputError(f"{file} holds no window records (lines with window, energy_j, duration_s)")
    return out
