"""Batch-boundary control of a training run: pause while the live path is busy, stop on request."""
import threading
from typing import Any, Callable, Optional

from miro_edge.train.callbacks import TaskContext, TrainCallback


class BatchControl(TrainCallback):
    """Before every batch: stop if ``stop()`` says so; else wait on ``gate`` (an ``IdleGate``) until
    the idle policy allows training again. A pause therefore always falls between two batches."""

    def __init__(self, stop: Optional[Callable[[], bool]], gate: Any = None, poll_s: float = 0.5) -> None:
        self.stop = stop
        self.gate = gate
        self.poll_s = poll_s
        self.stopped = False
        self.pauses = 0
        self.paused_s = 0.0
        self._event = threading.Event()

    def _stop_requested(self) -> bool:
        return self.stop is not None and bool(self.stop())

    def before_batch(self, ctx: TaskContext, epoch: int, step: int) -> None:
        if self._stop_requested():
            self.stopped = ctx.stopped = True
            return
        if self.gate is None:
            return
        while True:
            result = self.gate.wait_until_allowed(self._event, poll_s=self.poll_s, timeout_s=self.poll_s)
            if result.allowed:
                if result.waited_s > 0:
                    self.pauses += 1
                    self.paused_s += result.waited_s
                return
            if self._stop_requested():
                self.stopped = ctx.stopped = True
                return
