"""Batch-boundary control of a training run: pause while the live path is busy, start each batch
between two live frames, stop on request."""
import threading
import time
from collections import deque
from typing import Any, Callable, Deque, Optional

import numpy as np

from miro_edge.train.callbacks import BatchInfo, TaskContext, TrainCallback


class BatchControl(TrainCallback):
    """Before every batch: stop if ``stop()`` says so; else wait on ``gate`` (an ``IdleGate``) until
    the idle policy allows training again; then, with a ``gap`` (a ``FrameGap``), wait until a
    batch as long as the recent ones (their 90th percentile) fits before the next live frame.
    A pause therefore always falls between two batches."""

    def __init__(self, stop: Optional[Callable[[], bool]], gate: Any = None, poll_s: float = 0.5,
                 gap: Any = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.stop = stop
        self.gate = gate
        self.gap = gap
        self.poll_s = poll_s
        self.clock = clock
        self.stopped = False
        self.pauses = 0
        self.paused_s = 0.0
        self._event = threading.Event()
        self._batch_s: Deque[float] = deque(maxlen=16)
        self._started: Optional[float] = None

    def _stop_requested(self) -> bool:
        return self.stop is not None and bool(self.stop())

    def before_batch(self, ctx: TaskContext, epoch: int, step: int) -> None:
        if self._stop_requested():
            self.stopped = ctx.stopped = True
            return
        if self.gate is not None and not self._wait_for_idle(ctx):
            return
        if self.gap is not None:
            need = float(np.percentile(self._batch_s, 90)) if self._batch_s else 0.0
            self.gap.wait(need)
        self._started = self.clock()

    def after_batch(self, ctx: TaskContext, batch: BatchInfo) -> None:
        if self._started is not None:
            self._batch_s.append(self.clock() - self._started)
            self._started = None

    def _wait_for_idle(self, ctx: TaskContext) -> bool:
        """Block until the idle policy allows training; False when a stop came meanwhile."""
        while True:
            result = self.gate.wait_until_allowed(self._event, poll_s=self.poll_s, timeout_s=self.poll_s)
            if result.allowed:
                if result.waited_s > 0:
                    self.pauses += 1
                    self.paused_s += result.waited_s
                return True
            if self._stop_requested():
                self.stopped = ctx.stopped = True
                return False
