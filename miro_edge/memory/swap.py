"""The swap worker: replaces EM slots used by a minibatch with random same-class samples from
the store, off the training thread (CarM's asynchronous swapping).

The trainer submits the EM slots of each minibatch after its step; the worker picks
``swap_ratio`` of them, draws same-class record ids uniformly from the store, reads them in one
call and writes whole slots under the EM lock. Use it as a context manager: entering starts the
thread, leaving drains pending swaps (bounded by ``drain_timeout_s``) or cancels them.
"""
import collections
import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Callable, Deque, Dict, List, Optional

import numpy as np

from miro_edge.config import field, require
from miro_edge.errors import InputError
from miro_edge.memory.em import EpisodicMemory, Indices
from miro_edge.memory.types import SampleSource

logger = logging.getLogger(__name__)
_WAKE = object()  # queue sentinel: wakes the worker without carrying work


@dataclass(frozen=True)
class SwapConfig:
    swap_ratio: float = field(0.0, help="fraction of the EM samples of each minibatch replaced from the store")
    swap_period: int = field(1, help="swap during one epoch out of every swap_period epochs")
    max_backlog: int = field(64, help="pending minibatch submissions before new ones are dropped")
    drain_timeout_s: float = field(5.0, help="at task end, wait this long for pending swaps, then cancel")
    coalesce: int = field(16, help="at most this many minibatches merged into one store read")
    linger_s: float = field(0.05, help="wait up to this long for more minibatches before a read")
    mode: str = field("deterministic", help="'deterministic': the swaps applied before each minibatch depend "
                      "only on the seed and the step (reads still run off the training thread, lag_steps "
                      "ahead; the trainer waits for a late read); 'async': swaps land whenever the worker "
                      "finishes (faster under load, not reproducible)")
    lag_steps: int = field(2, help="deterministic mode: the swaps of a minibatch's EM slots are applied "
                           "before the minibatch lag_steps submissions later (1 = before the next one)")

    def __post_init__(self) -> None:
        require(0.0 <= self.swap_ratio <= 1.0, "swap_ratio", "must be in [0, 1]")
        require(self.swap_period >= 1, "swap_period", "must be >= 1")
        require(self.max_backlog >= 1, "max_backlog", "must be >= 1")
        require(self.drain_timeout_s >= 0, "drain_timeout_s", "must be >= 0")
        require(self.coalesce >= 1, "coalesce", "must be >= 1")
        require(self.linger_s >= 0, "linger_s", "must be >= 0")
        require(self.mode in ("deterministic", "async"), "mode", "must be 'deterministic' or 'async'")
        require(self.lag_steps >= 1, "lag_steps", "must be >= 1")


@dataclass
class FetchedSwaps:
    """Replacement samples read from the store, not yet written: slot i gets xs[i]."""

    slots: List[int]
    xs: List[np.ndarray]
    ys: List[int]
    record_ids: List[int]
    latency_s: float


@dataclass(frozen=True)
class SwapStats:
    """Live counters of the worker, read by the controller's congestion rule. ``wait_s``: time
    the training thread spent waiting for late reads (deterministic mode only)."""

    swaps_done: int
    submitted: int
    dropped_submissions: int
    cancelled: int
    backlog: int
    latency_ewma_s: float
    latency_p95_s: float
    bytes_read: int
    swap_ratio: float
    wait_s: float = 0.0


class SwapWorker:
    """Background thread that refreshes EM slots from the store at ``swap_ratio`` whenever its
    reads finish (``mode: async``; ``swap_modes.create_swap_worker`` picks the class by mode)."""

    MODE = "async"

    def __init__(self, em: EpisodicMemory, store: SampleSource, config: SwapConfig,
                 seed: int = 0, on_read: Optional[Callable[[int], None]] = None) -> None:
        if config.mode != self.MODE:
            raise InputError(f"{type(self).__name__} runs memory.swap.mode {self.MODE!r}, the config asks {config.mode!r}; build the worker with "
                             "miro_edge.memory.swap_modes.create_swap_worker")
        self.em = em
        self.store = store
        self.config = config
        self.swap_ratio = config.swap_ratio
        self._rng = np.random.default_rng(seed)
        self._queue: queue.Queue = queue.Queue(maxsize=config.max_backlog)
        self._stop = threading.Event()
        self._closing = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._on_read = on_read
        self._lat: Deque[float] = collections.deque(maxlen=256)
        self._window_lat: List[float] = []
        self._window_swaps = 0
        self._ewma = 0.0
        self._swaps = self._submitted = self._dropped = self._cancelled = self._bytes = 0
        self._counter_lock = threading.Lock()
        self._pending: List[np.ndarray] = []
        self._inflight_since: Optional[float] = None
        self._wait_s = 0.0

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> "SwapWorker":
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="miro-swap", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(drain=exc[0] is None)

    def close(self, drain: bool = True) -> None:
        """Drain (bounded) or cancel pending swaps, then stop the thread. The worker is woken
        at once (no linger, no poll timeout), so closing costs the pending reads and no more."""
        if self._thread is None:
            return
        self._closing.set()
        self._nudge()
        if drain:
            deadline = time.monotonic() + self.config.drain_timeout_s
            while self._queue.unfinished_tasks and time.monotonic() < deadline:
                time.sleep(0.0005)
        self._stop.set()
        self._cancel_pending()
        self._nudge()
        self._thread.join()
        self._thread = None
        self._cancel_pending()  # the wake-up a worker that was mid-read never took is no backlog
        self._closing.clear()

    def _cancel_pending(self) -> None:
        """Empty the queue: each submission left is counted as cancelled, wake-ups just go."""
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not _WAKE:
                self._cancelled += 1
            self._queue.task_done()

    def _nudge(self) -> None:
        """Wake a worker blocked on the queue (a full queue means it is busy anyway)."""
        try:
            self._queue.put_nowait(_WAKE)
        except queue.Full:
            pass

    # -- producer side ---------------------------------------------------------------------
    def set_swap_ratio(self, ratio: float) -> None:
        """Change the fraction of each minibatch's EM slots swapped from now on (the controller's
        congestion rule); submissions already queued are picked at the new ratio."""
        if not 0.0 <= ratio <= 1.0:
            raise InputError(f"swap ratio must be in [0, 1], got {ratio}")
        self.swap_ratio = float(ratio)

    def apply_due(self) -> int:
        """Called by the trainer before each minibatch. Async mode writes swaps on the worker
        thread as reads finish, so there is nothing to apply here."""
        return 0

    def active_in_epoch(self, epoch: int) -> bool:
        return self.swap_ratio > 0 and epoch % self.config.swap_period == 0

    def submit(self, slots: Indices) -> bool:
        """Queue the EM slots a minibatch used; never blocks the training thread."""
        if self.swap_ratio <= 0 or len(slots) == 0 or self._thread is None:
            return False
        try:
            self._queue.put_nowait(np.asarray(slots, dtype=np.int64))
        except queue.Full:
            self._dropped += 1
            return False
        self._submitted += 1
        return True

    # -- worker side -----------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                items = [self._queue.get(timeout=0.05)]
            except queue.Empty:
                continue
            # Linger briefly to merge several minibatches into one store read: fewer wake-ups
            # and transactions, so less CPU taken from the training thread. Not while closing.
            deadline = time.monotonic() + self.config.linger_s
            while len(items) < self.config.coalesce and items[-1] is not _WAKE:
                remaining = 0.0 if self._closing.is_set() else deadline - time.monotonic()
                try:
                    items.append(self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                for slots in items:
                    if slots is not _WAKE:
                        self._pick(slots)
                self._swap(self._pending)
            except Exception:  # a failed swap must not kill training; it is logged and counted
                logger.exception("swap of %d slots failed", len(self._pending))
            finally:
                self._pending = []
                for _ in items:
                    self._queue.task_done()

    def _pick(self, slots: np.ndarray) -> None:
        picked = choose_slots(slots, self.swap_ratio, self._rng)
        if len(picked):
            self._pending.append(picked)

    def _swap(self, picked: List[np.ndarray]) -> None:
        self._write(self._fetch(picked, self._rng))

    def _fetch(self, picked: List[np.ndarray], rng: np.random.Generator) -> Optional["FetchedSwaps"]:
        """Draw and read same-class replacements for the picked slots (no EM write yet)."""
        if not picked:
            return None
        chosen = np.unique(np.concatenate(picked))
        labels = self.em.labels.numpy()[chosen]
        groups: Dict[int, List[int]] = {}  # label -> its EM slots to refill, ascending
        for slot, label in zip(chosen.tolist(), labels.tolist()):
            groups.setdefault(label, []).append(slot)
        # One call draws and reads every label (for the SampleStore: one transaction, one
        # decode pass, the least time holding the GIL). Latency covers the draw and the read.
        t0 = time.perf_counter()
        self._inflight_since = t0
        try:
            samples = self.store.draw({label: len(slots) for label, slots in groups.items()}, rng)
        finally:
            self._inflight_since = None
        latency = time.perf_counter() - t0
        samples = sorted(samples, key=lambda smp: smp.record_id)  # the store promises no order
        for free in groups.values():
            free.reverse()  # pop() below then hands out each label's lowest slots first
        fetched = FetchedSwaps([], [], [], [], latency)
        for sample in samples:  # each sample takes the next free slot of its label
            slots = groups.get(sample.label)
            if slots:
                fetched.slots.append(slots.pop())
                fetched.xs.append(sample.x)
                fetched.ys.append(sample.label)
                fetched.record_ids.append(sample.record_id)
        return fetched

    def _write(self, fetched: Optional["FetchedSwaps"]) -> None:
        """Write fetched samples into their EM slots (whole, under the EM lock) and count them."""
        if fetched is None:
            return
        written = self.em.write_slots(fetched.slots, fetched.xs, fetched.ys, fetched.record_ids) \
            if fetched.slots else 0
        nbytes = sum(x.nbytes for x in fetched.xs)
        latency = fetched.latency_s
        with self._counter_lock:
            self._swaps += written
            self._bytes += nbytes
            self._lat.append(latency)
            self._window_lat.append(latency)
            self._window_swaps += written
            self._ewma = latency if self._ewma == 0.0 else 0.8 * self._ewma + 0.2 * latency
        if self._on_read is not None:
            self._on_read(nbytes)

    def stats(self) -> SwapStats:
        """Counters since start; latency p95 over the last 256 reads."""
        with self._counter_lock:
            return self._stats(self._swaps, list(self._lat))

    def take_window(self) -> SwapStats:
        """Stats of the window since the previous call (swaps and latency p95 of that window
        only), then start a new window: what the congestion rule compares with its budgets."""
        with self._counter_lock:
            latencies = list(self._window_lat)
            since = self._inflight_since
            if since is not None:  # a read still running counts with its age so far: a stuck
                latencies.append(time.perf_counter() - since)  # read is visible before it ends
            stats = self._stats(self._window_swaps, latencies)
            self._window_lat = []
            self._window_swaps = 0
            return stats

    def _stats(self, swaps: int, latencies: List[float]) -> SwapStats:
        lat = sorted(latencies)
        p95 = lat[min(len(lat) - 1, int(0.95 * len(lat)))] if lat else 0.0
        return SwapStats(swaps, self._submitted, self._dropped, self._cancelled,
                         self._queue.qsize(), self._ewma, p95, self._bytes, self.swap_ratio, self._wait_s)


def choose_slots(slots: np.ndarray, ratio: float, rng: np.random.Generator) -> np.ndarray:
    """``ratio`` of one minibatch's EM slots, chosen for replacement (all of them at ratio 1,
    without touching the random stream)."""
    count = int(round(ratio * len(slots)))
    if count >= len(slots):
        return slots
    if count <= 0:
        return slots[:0]
    return rng.choice(slots, size=count, replace=False)
