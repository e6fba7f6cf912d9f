"""Swap modes, registered by name: ``async`` (``SwapWorker``: swaps land whenever a read
finishes) and ``deterministic`` (this module: the swaps applied before each minibatch depend
only on the seed and the step).

Deterministic mode keeps the reads off the training thread but fixes when their results land:
the n-th submission is picked and drawn with a random stream seeded by ``(seed, n)`` on the
worker thread, and the trainer writes its samples into the EM right before the minibatch that
follows submission ``n + lag_steps - 1``, waiting if the read is late. Nothing is dropped, so
the backlog rule never fires; the cost is the time the trainer waits (``SwapStats.wait_s``).
"""
import logging
import queue
import threading
import time
from typing import Callable, Dict, Optional

import numpy as np

from miro_edge.memory.em import EpisodicMemory, Indices
from miro_edge.memory.swap import _WAKE, FetchedSwaps, SwapConfig, SwapWorker, choose_slots
from miro_edge.memory.types import SampleSource
from miro_edge.utils.registry import Registry

logger = logging.getLogger(__name__)
SWAP_MODES: Registry[SwapWorker] = Registry("swap mode")
SWAP_MODES.register("async")(SwapWorker)


@SWAP_MODES.register("deterministic")
class DeterministicSwapWorker(SwapWorker):
    """Reads ahead on its thread; the trainer applies each minibatch's swaps at a fixed step."""

    MODE = "deterministic"

    def __init__(self, em: EpisodicMemory, store: SampleSource, config: SwapConfig,
                 seed: int = 0, on_read: Optional[Callable[[int], None]] = None) -> None:
        super().__init__(em, store, config, seed, on_read)
        self._seed = int(seed) % (1 << 63)  # a random stream seed must be >= 0
        self._tickets = 0  # submissions so far
        self._applied = 0  # submissions whose swaps are in the EM
        self._ready: Dict[int, Optional[FetchedSwaps]] = {}
        self._cond = threading.Condition()

    def submit(self, slots: Indices) -> bool:
        """Queue one minibatch's EM slots; blocks (never drops) when ``max_backlog`` reads are
        queued, so every submission is applied at its step."""
        if self.swap_ratio <= 0 or len(slots) == 0 or self._thread is None:
            return False
        ticket = self._tickets
        self._tickets += 1
        self._queue.put((ticket, np.asarray(slots, dtype=np.int64), self.swap_ratio))
        self._submitted += 1
        return True

    def apply_due(self) -> int:
        """Write every submission at least ``lag_steps`` old into the EM, in order."""
        return self._apply_through(self._tickets - self.config.lag_steps)

    def close(self, drain: bool = True) -> None:
        """Drain: apply every submission (waiting for its read), so the EM a task ends with does
        not depend on timing. Cancel (an exception ended the fit): drop what is not applied."""
        if self._thread is None:
            return
        if drain:
            self._apply_through(self._tickets - 1)
        cancelled = self._cancelled
        super().close(drain=drain)
        self._cancelled = cancelled + self._tickets - self._applied  # queued or read, never applied
        self._ready.clear()

    def _apply_through(self, last: int) -> int:
        applied = 0
        while self._applied <= last:
            self._write(self._wait_for(self._applied))
            self._applied += 1
            applied += 1
        return applied

    def _wait_for(self, ticket: int) -> Optional[FetchedSwaps]:
        with self._cond:
            if ticket not in self._ready:
                t0 = time.perf_counter()
                while ticket not in self._ready:
                    if self._thread is None or not self._thread.is_alive():
                        return None
                    self._cond.wait(0.05)
                self._wait_s += time.perf_counter() - t0
            return self._ready.pop(ticket)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                item = self._queue.get(timeout=0.05)
            except queue.Empty:
                continue
            try:
                if item is _WAKE:
                    continue
                ticket, slots, ratio = item
                fetched: Optional[FetchedSwaps] = None
                try:
                    rng = np.random.default_rng([self._seed, ticket])
                    picked = choose_slots(slots, ratio, rng)
                    fetched = self._fetch([picked] if len(picked) else [], rng)
                except Exception:  # a failed read must not kill training; this step swaps nothing
                    logger.exception("swap of %d slots failed", len(slots))
                with self._cond:
                    self._ready[ticket] = fetched
                    self._cond.notify_all()
            finally:
                self._queue.task_done()


def create_swap_worker(em: EpisodicMemory, store: SampleSource, config: SwapConfig, seed: int = 0,
                       on_read: Optional[Callable[[int], None]] = None) -> SwapWorker:
    """The swap worker of ``config.mode``."""
    return SWAP_MODES.create(config.mode, em, store, config, seed, on_read)
