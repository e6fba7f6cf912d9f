"""The live path: frames from a source -> current engine -> predictions, with hot swap and feedback.

Pacing and dropped frames: with a paced source (``fps`` set) a producer thread emits frame *i*
at ``t0 + i / fps`` into a bounded queue. A frame counts as **dropped** if it was evicted from
the full queue (never processed) or finished after the next frame was due (``late``). Frame
latency is measured from the frame's due time to the prediction, so queueing shows up in it.
Sources without ``fps`` are read on demand and cannot drop frames.

Labelled feedback: ``LiveLoop.feedback(x, label)`` hands a sample to the ``ingest`` callable
(e.g. the store's ``ingest``) on a background thread, so a durable write never stalls a frame.
"""
import dataclasses
import logging
import queue
import threading
import time
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Union

import numpy as np

from miro_edge.config import field, require
from miro_edge.device.frame_gap import FrameSchedule
from miro_edge.errors import MiroEdgeError
from miro_edge.infer.base import EngineOptions, InferenceEngine
from miro_edge.infer.hotswap import FixedEngine, FrameGapGate, HotSwapper
from miro_edge.infer.sources import FrameSource, source_shape_check

logger = logging.getLogger(__name__)

Ingest = Callable[[np.ndarray, Any], Any]


class FeedbackBacklogError(MiroEdgeError):
    """Feedback arrives faster than ``ingest`` stores it; raise ``feedback_queue_size`` or send less."""


@dataclasses.dataclass(frozen=True)
class LiveConfig:
    """Live-loop settings."""

    queue_size: int = field(2, help="frames buffered between a paced source and the loop (older ones are dropped)")
    poll_every_frames: int = field(15, help="check the registry pointer every N frames (a stat call)")
    poll_interval_s: Optional[float] = field(None, help="also check it when this many seconds passed")
    swap_tail_frames: int = field(3, help="frames after a swap still counted as 'during swap' in the stats")
    feedback_queue_size: int = field(256, help="labelled samples waiting for ingest before feedback() blocks")
    feedback_timeout_s: float = field(5.0, help="how long feedback() waits for room before raising")

    def __post_init__(self) -> None:
        require(self.queue_size >= 1, "queue_size", "must be >= 1")
        require(self.poll_every_frames >= 1, "poll_every_frames", "must be >= 1")
        require(self.poll_interval_s is None or self.poll_interval_s > 0, "poll_interval_s", "must be > 0")
        require(self.swap_tail_frames >= 0, "swap_tail_frames", "must be >= 0")
        require(self.feedback_queue_size >= 1, "feedback_queue_size", "must be >= 1")


class Prediction(NamedTuple):
    """One frame's answer; ``label`` is the user's label when the version carries a label map
    (else the class id), ``confidence`` the softmax probability of that class."""

    index: int  # type: ignore[assignment]  # the frame's number; shadows tuple.index (public field)
    label: Any
    logits: np.ndarray
    version: Optional[int]
    latency_s: float
    class_id: int = -1
    confidence: float = float("nan")


@dataclasses.dataclass
class LiveStats:
    """Summary of one run (latencies in milliseconds)."""

    frames: int = 0
    duration_s: float = 0.0
    fps: float = 0.0
    latency_p50_ms: float = 0.0
    latency_p99_ms: float = 0.0
    latency_max_ms: float = 0.0
    steady_p99_ms: float = 0.0
    swap_p99_ms: float = 0.0
    swap_frames: int = 0
    dropped: int = 0
    dropped_queue: int = 0
    late: int = 0
    swaps: int = 0
    swap_failures: int = 0
    swap_load_ms: List[float] = dataclasses.field(default_factory=list)
    version: Optional[int] = None
    feedback_sent: int = 0
    feedback_errors: int = 0

    def as_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


_END = object()


class PacedFeed:
    """Producer thread emitting ``source`` frames at ``fps`` into a bounded queue, counting evictions."""

    def __init__(self, source: FrameSource, fps: float, queue_size: int) -> None:
        self.source = source
        self.period_s = 1.0 / fps
        self.queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self.evicted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="miro-live-source", daemon=True)
        self.t0 = 0.0

    def start(self) -> None:
        self.t0 = time.perf_counter() + 0.005
        self._thread.start()

    def _run(self) -> None:
        index = 0
        while not self._stop.is_set():
            due = self.t0 + index * self.period_s
            delay = due - time.perf_counter()
            if delay > 0:
                self._stop.wait(delay)
                if self._stop.is_set():
                    break
            frame = self.source.read()
            item = _END if frame is None else (index, due, frame)
            while True:
                try:
                    self.queue.put_nowait(item)
                    break
                except queue.Full:
                    try:
                        old = self.queue.get_nowait()
                        if old is not _END:
                            self.evicted += 1
                    except queue.Empty:
                        pass
            if frame is None:
                break
            index += 1

    def get(self) -> Any:
        return self.queue.get()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class OnDemandFeed:
    """Reads the source when the loop asks (no pacing, nothing dropped)."""

    def __init__(self, source: FrameSource) -> None:
        self.source = source
        self.evicted = 0
        self._index = 0
        self.period_s: Optional[float] = None

    def start(self) -> None:
        pass

    def get(self) -> Any:
        frame = self.source.read()
        if frame is None:
            return _END
        now = time.perf_counter()
        item = (self._index, now, frame)
        self._index += 1
        return item

    def stop(self) -> None:
        pass


class FeedbackSink:
    """Background thread calling ``ingest(x, label)`` for labelled samples sent by the app."""

    def __init__(self, ingest: Ingest, queue_size: int, timeout_s: float) -> None:
        self.ingest = ingest
        self.timeout_s = timeout_s
        self.queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self.sent = 0
        self.errors = 0
        self._thread = threading.Thread(target=self._run, name="miro-feedback", daemon=True)
        self._thread.start()

    def put(self, x: np.ndarray, label: Any) -> None:
        try:
            self.queue.put((np.array(x, copy=True), label), timeout=self.timeout_s)
        except queue.Full:
            raise FeedbackBacklogError(f"{self.queue.qsize()} labelled samples are waiting for ingest; it is slower than the feedback "
                                       "rate (raise feedback_queue_size or send less)") from None

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            try:
                self.ingest(item[0], item[1])
                self.sent += 1
            except Exception as exc:
                self.errors += 1
                logger.error("feedback ingest failed: %s", exc)

    def close(self) -> None:
        """Deliver everything queued, then stop."""
        self.queue.put(None)
        self._thread.join()


def _prediction(index: int, logits: np.ndarray, version: Optional[int], latency: float,
                labels: Optional[List[Any]]) -> Prediction:
    cid = int(np.argmax(logits))
    z = logits.astype(np.float64) - float(np.max(logits))
    confidence = float(np.exp(z[cid]) / np.exp(z).sum())
    label = labels[cid] if labels is not None and cid < len(labels) else cid
    return Prediction(index, label, logits, version, latency, cid, confidence)


class LoadMeter:
    """The live load the idle policy reads: the busy fraction of the frame period (latency / period;
    1 when frames come back to back) over the last ``window`` frames, taken at the 90th percentile so
    that the latency spikes training causes raise it (a mean would hide them), published to a gauge
    or file."""

    def __init__(self, sink: Any, window: int = 30) -> None:
        self.sink = sink  # LoadGauge (set) or LoadFile (publish)
        self.window = window
        self._busy: List[float] = []
        self._t: List[float] = []

    def frame(self, latency_s: float, period_s: Optional[float], due_s: Optional[float] = None) -> None:
        """One frame: ``latency_s`` from its due time (``due_s``, on ``time.perf_counter``) to its prediction."""
        busy = 1.0 if not period_s else min(1.0, max(0.0, latency_s) / period_s)
        now = time.perf_counter()
        self._busy.append(busy)
        self._t.append(now)
        if len(self._busy) > self.window:
            del self._busy[0], self._t[0]
        level = float(np.percentile(self._busy, 90))
        fps = (len(self._t) - 1) / (self._t[-1] - self._t[0]) if len(self._t) > 1 and self._t[-1] > self._t[0] else 0.0
        if hasattr(self.sink, "publish"):
            schedule = None
            if period_s and due_s is not None:  # a paced loop: others may time their work around its frames
                schedule = FrameSchedule(period_s, due_s + (time.monotonic() - time.perf_counter()), level * period_s)
            self.sink.publish(level, fps, schedule=schedule)
        else:
            self.sink.set(level)

    def idle(self) -> None:
        """The loop stopped: publish zero load."""
        if hasattr(self.sink, "publish"):
            self.sink.publish(0.0, 0.0, force=True)
        else:
            self.sink.set(0.0)


class LiveLoop:
    """Runs frames through the current engine; a context manager owning the engine slot and feedback thread.

    ``engines`` is a ``HotSwapper`` (registry-backed, hot swap) or a ``FixedEngine`` (or an
    ``InferenceEngine``, wrapped). ``on_prediction`` is called on the loop thread for each frame:
    keep it short.
    """

    def __init__(self, source: FrameSource, engines: Union[HotSwapper, FixedEngine, InferenceEngine],
                 on_prediction: Optional[Callable[[Prediction], None]] = None,
                 config: Optional[LiveConfig] = None, ingest: Optional[Ingest] = None,
                 preprocess: Optional[Callable[[np.ndarray], np.ndarray]] = None,
                 load: Optional[Any] = None) -> None:
        self.source = source
        self.load = LoadMeter(load) if load is not None else None  # the live load for the idle policy
        self.engines = FixedEngine(engines) if isinstance(engines, InferenceEngine) else engines
        self.on_prediction = on_prediction
        self.config = config or LiveConfig()
        self.preprocess = preprocess
        self._ingest = ingest
        self._feedback: Optional[FeedbackSink] = None
        self.gate = getattr(self.engines, "gate", None) or FrameGapGate()
        self.stats = LiveStats()
        self._opened = False

    # lifecycle -----------------------------------------------------------------
    def __enter__(self) -> "LiveLoop":
        self.source.open()
        try:
            self.engines.start()
        except BaseException:
            self.source.close()
            raise
        if self._ingest is not None:
            self._feedback = FeedbackSink(self._ingest, self.config.feedback_queue_size, self.config.feedback_timeout_s)
        self._opened = True
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self._feedback is not None:
                self._feedback.close()
                self.stats.feedback_sent, self.stats.feedback_errors = self._feedback.sent, self._feedback.errors
        finally:
            self.engines.stop()
            self.source.close()
            self._opened = False

    def feedback(self, x: np.ndarray, label: Any) -> None:
        """Send one labelled sample to ``ingest`` (asynchronously). Raises if no ingest was given."""
        if self._feedback is None:
            raise MiroEdgeError("feedback() needs an ingest callable: LiveLoop(..., ingest=store.ingest)")
        self._feedback.put(x, label)

    # the loop --------------------------------------------------------------------
    def run(self, max_frames: Optional[int] = None, duration_s: Optional[float] = None) -> LiveStats:
        """Process frames until the source ends, ``max_frames`` or ``duration_s``; return the stats."""
        if not self._opened:
            raise MiroEdgeError("LiveLoop.run() must be called inside `with LiveLoop(...) as loop:`")
        fps = self.source.fps
        feed = PacedFeed(self.source, fps, self.config.queue_size) if fps else OnDemandFeed(self.source)
        period = 1.0 / fps if fps else None
        latencies: List[float] = []
        in_swap: List[bool] = []
        late = 0
        frames_since_swap = self.config.swap_tail_frames + 1
        swaps_seen = self.engines.swap_count
        expected_shape = None
        t_start = time.perf_counter()
        feed.start()
        try:
            while True:
                item = feed.get()
                if item is _END:
                    break
                index, due, frame = item
                engine = self.engines.engine()
                if self.engines.swap_count != swaps_seen:
                    swaps_seen, frames_since_swap = self.engines.swap_count, 0
                x = self.preprocess(frame) if self.preprocess is not None else frame
                if expected_shape is None:
                    expected_shape = engine.input_shape
                    source_shape_check(np.asarray(x), expected_shape)
                logits = engine.infer(np.asarray(x, dtype=np.float32)[None])
                done = time.perf_counter()
                latency = done - due
                latencies.append(latency)
                in_swap.append(self.engines.busy or frames_since_swap <= self.config.swap_tail_frames)
                frames_since_swap += 1
                if period is not None and done > due + period:
                    late += 1
                if self.on_prediction is not None:
                    self.on_prediction(_prediction(index, logits[0], self.engines.version, latency,
                                                   getattr(self.engines, "labels", None)))
                if self.load is not None:
                    self.load.frame(done - due, period, due)
                self.gate.frame_done()
                self.engines.poll(index + 1)
                if max_frames is not None and len(latencies) >= max_frames:
                    break
                if duration_s is not None and done - t_start >= duration_s:
                    break
        finally:
            feed.stop()
            if self.load is not None:
                self.load.idle()
        elapsed = time.perf_counter() - t_start
        self.stats = self._summarise(latencies, in_swap, late, feed.evicted, elapsed)
        return self.stats

    def _summarise(self, latencies: List[float], in_swap: List[bool], late: int, evicted: int,
                   elapsed: float) -> LiveStats:
        lat = np.asarray(latencies) * 1e3
        mask = np.asarray(in_swap, dtype=bool)

        def pct(values: np.ndarray, q: float) -> float:
            return float(np.percentile(values, q)) if values.size else 0.0

        events = self.engines.events
        return LiveStats(
            frames=len(latencies), duration_s=elapsed, fps=len(latencies) / elapsed if elapsed > 0 else 0.0,
            latency_p50_ms=pct(lat, 50), latency_p99_ms=pct(lat, 99), latency_max_ms=float(lat.max()) if lat.size else 0.0,
            steady_p99_ms=pct(lat[~mask], 99) if lat.size else 0.0, swap_p99_ms=pct(lat[mask], 99) if lat.size else 0.0,
            swap_frames=int(mask.sum()), dropped=late + evicted, dropped_queue=evicted, late=late,
            swaps=len([e for e in events if e.swapped_at is not None]),
            swap_failures=len([e for e in events if e.error is not None]),
            swap_load_ms=[round(e.load_s * 1e3, 3) for e in events if e.load_s is not None],
            version=self.engines.version,
            feedback_sent=self._feedback.sent if self._feedback else 0,
            feedback_errors=self._feedback.errors if self._feedback else 0)


def registry_live_loop(registry_root: str, source: FrameSource, engine: str = "auto",
                       options: Optional[EngineOptions] = None, config: Optional[LiveConfig] = None,
                       on_prediction: Optional[Callable[[Prediction], None]] = None,
                       ingest: Optional[Ingest] = None,
                       preprocess: Optional[Callable[[np.ndarray], np.ndarray]] = None,
                       load: Optional[Any] = None) -> LiveLoop:
    """A LiveLoop serving the registry's current version with hot swap (use it with ``with``);
    ``load`` (a LoadGauge or LoadFile) receives the live load the update cycle's idle policy reads."""
    from miro_edge.registry.model_registry import ModelRegistry

    cfg = config or LiveConfig()
    swapper = HotSwapper(ModelRegistry(registry_root), engine, options, cfg.poll_every_frames, cfg.poll_interval_s)
    return LiveLoop(source, swapper, on_prediction, cfg, ingest, preprocess, load)


def run_live(registry_root: str, source: str = "synthetic", uri: Optional[str] = None, fps: Optional[float] = None,
             duration_s: Optional[float] = None, max_frames: Optional[int] = None, engine: str = "auto",
             options: Optional[EngineOptions] = None, config: Optional[LiveConfig] = None,
             on_prediction: Optional[Callable[[Prediction], None]] = None) -> LiveStats:
    """Serve the registry's current version on a named source until it ends or a limit is hit."""
    from miro_edge.infer.base import input_shape_of
    from miro_edge.infer.sources import make_source
    from miro_edge.registry.model_registry import ModelRegistry

    registry = ModelRegistry(registry_root)
    version = registry.current_version()
    if version is None:
        raise MiroEdgeError(f"registry {registry_root} has no current version; publish one first (`miro-edge publish`)")
    shape = input_shape_of(registry.artifacts(version))
    frame_source = make_source(source, uri, shape, fps)
    with registry_live_loop(registry_root, frame_source, engine, options, config, on_prediction) as loop:
        return loop.run(max_frames=max_frames, duration_s=duration_s)
