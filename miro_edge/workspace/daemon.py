"""``miro-edge daemon``: wait for an idle window, run an update cycle when enough is waiting,
pause training at a batch boundary when the live path gets busy, stop cleanly on SIGTERM.

The live load comes from ``DIR/live/load.json``, written by the serving process (another process);
the idle policy is the controller's (``daemon.idle`` in workspace.yaml: load threshold, external
power, a daily time window).
"""
import logging
import signal
import threading
import time
from typing import Any, Callable, Dict, Optional

from miro_edge.controller.idle import IdleGate, IdlePolicy
from miro_edge.device.frame_gap import FrameGap
from miro_edge.device.priority import yield_cpu
from miro_edge.device.resources import ResourceMonitor
from miro_edge.workspace.cycle import CycleStopped, import_training_stack
from miro_edge.workspace.serve import load_file
from miro_edge.workspace.workspace import Workspace

logger = logging.getLogger(__name__)


def due(ws: Workspace) -> Optional[str]:
    """Why a cycle should run now (or None): an interrupted cycle, a new label, or enough samples."""
    if ws.state.cycle is not None:
        return "an interrupted cycle is waiting to finish"
    count, labels = ws.inbox.waiting()
    if not count:
        return None
    new = ws.labels.new_labels(labels)
    if new:
        return f"{count} samples waiting, new labels {new}"
    if count >= ws.config.update.min_new_samples:
        return f"{count} samples waiting (>= {ws.config.update.min_new_samples})"
    return None


def run_daemon(ws: Workspace, log: Callable[[str], None], max_cycles: Optional[int] = None,
               stop: Optional[threading.Event] = None, timeout_s: Optional[float] = None) -> Dict[str, Any]:
    """Loop until SIGTERM/SIGINT (or ``max_cycles`` cycles, or ``timeout_s``); one log line per cycle."""
    stop = stop or threading.Event()
    priority = yield_cpu(ws.config.daemon.nice, ws.config.daemon.cpu_policy)
    import_training_stack()
    previous = None
    if threading.current_thread() is threading.main_thread():
        handler = lambda *_: stop.set()  # noqa: E731
        previous = signal.signal(signal.SIGTERM, handler), signal.signal(signal.SIGINT, handler)
    monitor = ResourceMonitor(gauge=load_file(ws.root))
    gate = IdleGate(IdlePolicy(ws.config.daemon.idle), monitor.snapshot)
    gap = FrameGap(load_file(ws.root)) if ws.config.daemon.frame_gap else None
    poll = ws.config.daemon.poll_s
    cycles, stopped_cycles, t0 = 0, 0, time.monotonic()
    log(f"daemon on {ws.root} (pid-locked; {priority}); idle when live load <= "
        f"{ws.config.daemon.idle.max_live_load:.2f}; polling every {poll:.1f} s")
    try:
        while not stop.is_set():
            if max_cycles is not None and cycles >= max_cycles:
                break
            if timeout_s is not None and time.monotonic() - t0 >= timeout_s:
                break
            reason = due(ws)
            if reason is None:
                stop.wait(poll)
                continue
            decision = gate.check()
            if not decision.allowed:
                logger.info("%s; waiting", decision.reason)
                stop.wait(poll)
                continue
            try:
                result = ws.update(progress=lambda line: logger.info("%s", line), stop=stop.is_set, gate=gate,
                                   frame_gap=gap)
            except CycleStopped as exc:
                stopped_cycles += 1
                log(f"cycle stopped: {exc}")
                break
            cycles += 1
            if result is not None:
                log("cycle {}: {} new samples ({}), val acc {:.3f}, {} v{:06d} ({}), {:.1f} J {}, paused {:.1f} s{}".format(
                    result.cycle, result.new_samples, reason, result.val_accuracy,
                    "published" if result.published else "rejected", result.version or 0, result.publish_reason,
                    result.energy_j + result.profile_energy_j, result.energy_label, gate.paused_s,
                    "" if gap is None else f", {gap.waits} batches waited {gap.waited_s:.2f} s for a frame gap"))
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous[0])
            signal.signal(signal.SIGINT, previous[1])
    log(f"daemon stopped after {cycles} cycles")
    return {"cycles": cycles, "stopped_cycles": stopped_cycles, "paused_s": gate.paused_s,
            "frame_gap_waited_s": 0.0 if gap is None else gap.waited_s}
