"""How a background process (the update daemon) yields the CPU to the live loop.

Niceness alone still gives training a share of a contended core (a nice-10 task gets about a
tenth of one against a nice-0 task, and the scheduler lets it finish its slice first), so the
live loop's tail latency grows while a cycle runs. SCHED_IDLE (Linux) runs a thread only on CPU
time nothing else wants, and a waking normal thread preempts it at once. Lowering one's own
priority needs no privilege; threads made later inherit the policy.
"""
import logging
import os
import threading
from pathlib import Path
from typing import List

logger = logging.getLogger(__name__)

CPU_POLICIES = ("idle", "nice")
DEFAULT_CPU_POLICY = "idle"
DEFAULT_NICE = 10


def yield_cpu(nice: int = DEFAULT_NICE, cpu_policy: str = DEFAULT_CPU_POLICY) -> str:
    """Raise this process's niceness to ``nice`` and, for ``cpu_policy="idle"``, move every thread
    of it to SCHED_IDLE. Idempotent; failures are warnings (the idle policy still pauses training
    under load). Returns what was applied, for the daemon's first log line."""
    applied = []
    try:
        current = os.nice(0)
        if nice > current:
            current = os.nice(nice - current)
        applied.append(f"nice {current}")
    except OSError as exc:
        logger.warning("cannot lower the daemon's CPU priority: %s", exc)
    if cpu_policy == "idle":
        policy = getattr(os, "SCHED_IDLE", None)
        if policy is None:
            logger.warning("SCHED_IDLE is not available on this OS; the daemon runs at its niceness only")
        else:
            try:
                for tid in _threads():
                    os.sched_setscheduler(tid, policy, os.sched_param(0))
                applied.append("SCHED_IDLE")
            except OSError as exc:
                logger.warning("cannot move the daemon to SCHED_IDLE: %s", exc)
    return ", ".join(applied) or "default priority"


def lower_this_thread(delta: int = 10) -> bool:
    """Raise the calling thread's niceness by ``delta`` (Linux: per thread), e.g. for a loader
    thread inside the live process: it still runs, but a frame never waits behind it. Returns
    whether it took effect."""
    get_tid = getattr(threading, "get_native_id", None)
    if get_tid is None or not hasattr(os, "setpriority"):
        return False
    try:
        tid = get_tid()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + delta))
        return True
    except OSError as exc:
        logger.debug("cannot lower this thread's priority: %s", exc)
        return False


def yield_cpu_early(config_path: Path) -> str:
    """``yield_cpu`` with the ``daemon`` section of a workspace's YAML read raw, before the heavy
    imports (loading torch is CPU work the live loop should not wait behind). Anything unreadable
    falls back to the defaults here; the full config load reports it properly right after."""
    nice, policy = DEFAULT_NICE, DEFAULT_CPU_POLICY
    try:
        import yaml

        section = (yaml.safe_load(config_path.read_text()) or {}).get("daemon") or {}
        nice = int(section.get("nice", nice))
        policy = str(section.get("cpu_policy", policy))
    except Exception as exc:  # missing, malformed or mistyped: the config load right after names it
        logger.debug("reading %s for the daemon's priority: %s", config_path, exc)
    return yield_cpu(min(max(nice, 0), 19), policy if policy in CPU_POLICIES else DEFAULT_CPU_POLICY)


def _threads() -> List[int]:
    """Thread ids of this process (Linux ``/proc/self/task``; elsewhere just this thread)."""
    try:
        return [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        return [0]
