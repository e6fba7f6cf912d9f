"""Named fault points for crash tests: ``fault_point("drain:after-commit")`` kills this process
with SIGKILL (no cleanup, no flush: like a power cut) when the environment variable
``MIRO_EDGE_KILL_AT`` names that point. Unset (always, outside tests), it is one dict lookup.

``MIRO_EDGE_KILL_AT=name@N`` kills at the N-th time the point is reached (1-based).
"""
import os
import signal
from typing import Dict

ENV = "MIRO_EDGE_KILL_AT"
_hits: Dict[str, int] = {}


def fault_point(name: str) -> None:
    wanted = os.environ.get(ENV)
    if not wanted:
        return
    point, _, nth = wanted.partition("@")
    if point != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
