"""Readers for the files under docker/jetson/, shared by the image tests (no Docker engine here)."""
import re
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional

REPO = Path(__file__).resolve().parents[2]
JETSON = REPO / "docker" / "jetson"
BOARDS = {"tx2": "TX2_", "xavier-nx": "XAVIER_NX_"}  # board folder -> its keys' prefix in versions.env


def versions() -> Dict[str, str]:
    """versions.env as a dict (KEY=VALUE lines; comments and blank lines skipped)."""
    out = {}
    for line in (JETSON / "versions.env").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"[A-Z0-9_]+", key) and " " not in value, "bad line: " + line
        out[key] = value
    return out


class Arg(NamedTuple):
    name: str
    default: Optional[str]


def dockerfile_lines(board: str) -> List[str]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    text = (JETSON / board / "Dockerfile").read_text()
    joined = re.sub(r"\\\n", " ", text)
    return [line.strip() for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def dockerfile_args(board: str) -> List[Arg]:
    args = []
    for line in dockerfile_lines(board):
        if line.startswith("ARG "):
            name, sep, default = line[4:].strip().partition("=")
            args.append(Arg(name, default if sep else None))
    return args
