"""Hot swap: load the registry's new ``current`` version off the frame loop, swap it in between frames.

The loop calls ``poll(frame_index)`` after every frame (a ``stat`` of the pointer file every
``poll_every_frames`` frames or ``poll_interval_s`` seconds) and ``engine()`` before every frame.
When the pointer changes, a loader thread verifies the new version's sha256, opens its engine and
warms it up, doing each step right after a frame finished (``FrameGapGate``) so its CPU and GIL use
falls in the gap before the next frame. The finished engine is published to the loop with one
reference assignment; the old engine is closed on the loader thread.
"""
import logging
import queue
import threading
import time
from typing import Any, Callable, List, Optional

from miro_edge.device.priority import lower_this_thread
from miro_edge.errors import IncompatibleModelError, MiroEdgeError
from miro_edge.infer.base import EngineOptions, InferenceEngine, create_engine

logger = logging.getLogger(__name__)

_CLOSE_RETIRED = -1  # worker request: close engines swapped out


class FrameGapGate:
    """Lets a background thread start each slice of work right after the loop finished a frame."""

    def __init__(self, max_wait_s: float = 0.1) -> None:
        self.max_wait_s = max_wait_s
        self._cond = threading.Condition()
        self._frames = 0

    def frame_done(self) -> None:
        with self._cond:
            self._frames += 1
            self._cond.notify_all()

    def wait_idle(self) -> None:
        """Block until the next frame completes (or ``max_wait_s`` passes when no frames come)."""
        with self._cond:
            seen = self._frames
            self._cond.wait_for(lambda: self._frames != seen, timeout=self.max_wait_s)


class SwapEvent:
    __slots__ = ("version", "detected_at", "ready_at", "swapped_at", "load_s", "error")

    def __init__(self, version: int, detected_at: float) -> None:
        self.version = version
        self.detected_at = detected_at
        self.ready_at: Optional[float] = None
        self.swapped_at: Optional[float] = None
        self.load_s: Optional[float] = None
        self.error: Optional[str] = None

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__slots__}


class FixedEngine:
    """An engine that never changes (no registry): the same interface as ``HotSwapper``."""

    def __init__(self, engine: InferenceEngine, version: Optional[int] = None) -> None:
        self._engine = engine
        self.version = version
        self.events: List[SwapEvent] = []
        self.swap_count = 0
        self.gate = FrameGapGate()

    def start(self) -> None:
        self._engine.open()
        self._engine.warmup()

    def engine(self) -> InferenceEngine:
        return self._engine

    def poll(self, frame_index: int) -> None:
        pass

    @property
    def busy(self) -> bool:
        return False

    def stop(self) -> None:
        self._engine.close()


class HotSwapper:
    """Keeps the engine of the registry's current version, reloading it when ``CURRENT`` moves."""

    def __init__(self, registry: object, engine_name: str = "auto", options: Optional[EngineOptions] = None,
                 poll_every_frames: int = 15, poll_interval_s: Optional[float] = None,
                 gate: Optional[FrameGapGate] = None,
                 loader: Optional[Callable[[int, Callable[[], None]], InferenceEngine]] = None) -> None:
        self.registry = registry
        self.engine_name = engine_name
        self.options = options or EngineOptions()
        self.poll_every_frames = max(1, int(poll_every_frames))
        self.poll_interval_s = poll_interval_s
        self.gate = gate or FrameGapGate()
        self._loader = loader or self._load
        self._engine: Optional[InferenceEngine] = None
        self._pending: Optional[InferenceEngine] = None
        self._pending_event: Optional[SwapEvent] = None
        self.version: Optional[int] = None
        self.labels: Optional[List[Any]] = None  # the serving version's label map
        self._pending_labels: Optional[List[Any]] = None
        self._frames = 0  # frames this swapper has seen, over every LiveLoop.run()
        self._token: object = None
        self._last_poll_frame = 0
        self._last_poll_time = 0.0
        self._requests: queue.Queue = queue.Queue()
        self._retired: List[InferenceEngine] = []
        self._busy = threading.Event()
        self._lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None
        self.events: List[SwapEvent] = []
        self.failures = 0
        self.swap_count = 0

    # ---------------------------------------------------------------- loading
    def _load(self, version: int, yield_point: Callable[[], None]) -> InferenceEngine:
        yield_point()
        artifacts = self.registry.artifacts(version)  # type: ignore[attr-defined]  # sha256-verified
        yield_point()
        engine = create_engine(self.engine_name, artifacts, self.options)
        engine.open()
        try:
            current = self._engine
            if current is not None and tuple(engine.input_shape) != tuple(current.input_shape):
                raise IncompatibleModelError(f"version {version} takes inputs of shape {tuple(engine.input_shape)} but the live source gives {tuple(current.input_shape)}; "
                                             "not swapping to it")
            for _ in range(self.options.warmup_iterations):
                yield_point()
                engine.warmup(1)
        except BaseException:
            engine.close()
            raise
        return engine

    def _labels_of(self, version: int) -> Optional[List[Any]]:
        """The version's label map (class id -> the user's label), from its manifest."""
        manifest = getattr(self.registry, "manifest", None)
        if manifest is None:
            return None
        try:
            labels = manifest(version).label_map
        except MiroEdgeError:
            return None
        return None if labels is None else list(labels)

    def start(self) -> None:
        """Load the current version synchronously (before the first frame) and start the loader thread."""
        self._token = self.registry.pointer_token()  # type: ignore[attr-defined]
        version = self.registry.current_version()  # type: ignore[attr-defined]
        if version is None:
            raise MiroEdgeError("registry {} has no current version; publish one first".format(
                getattr(self.registry, "root", "?")))
        self._engine = self._loader(version, lambda: None)
        self.version = version
        self.labels = self._labels_of(version)
        self._thread = threading.Thread(target=self._worker, name="miro-hotswap", daemon=True)
        self._thread.start()

    def _worker(self) -> None:
        lower_this_thread()  # loading a version is background work: the frame loop wins the core
        while True:
            version = self._requests.get()
            if version is None:
                break
            self._close_retired()
            if version == _CLOSE_RETIRED:
                continue
            event = self._pending_event
            assert event is not None
            t0 = time.perf_counter()
            try:
                engine = self._loader(version, self.gate.wait_idle)
            except Exception as exc:  # keep serving the old engine; the failure is recorded
                logger.error("cannot load version %s, keeping version %s: %s", version, self.version, exc)
                event.error = f"{type(exc).__name__}: {exc}"
                self.failures += 1
                self._busy.clear()
                continue
            event.load_s = time.perf_counter() - t0
            event.ready_at = time.perf_counter()
            labels = self._labels_of(version)
            with self._lock:
                self._pending = engine
                self._pending_labels = labels
        self._close_retired()

    def _close_retired(self) -> None:
        with self._lock:
            retired, self._retired = self._retired, []
        for engine in retired:
            self.gate.wait_idle()
            engine.close()

    # ---------------------------------------------------------------- frame loop side
    def engine(self) -> InferenceEngine:
        """The engine for the next frame; swaps in a loaded one (a reference assignment)."""
        if self._pending is not None:
            with self._lock:
                new, self._pending = self._pending, None
                old, self._engine = self._engine, new
                if old is not None:
                    self._retired.append(old)
                event = self._pending_event
            if event is not None:
                event.swapped_at = time.perf_counter()
                self.version = event.version
                self.labels = self._pending_labels
                logger.info("swapped in version %s (loaded in %.1f ms)", event.version, (event.load_s or 0) * 1e3)
            self.swap_count += 1
            self._busy.clear()
            self._requests.put(_CLOSE_RETIRED)
        assert self._engine is not None, "call start() first"
        return self._engine

    @property
    def busy(self) -> bool:
        """True while a new version is being loaded or waits to be swapped in."""
        return self._busy.is_set()

    def poll(self, frame_index: int) -> None:
        """Cheap check of the pointer file; starts a background load when it moved.

        Frames are counted here (not taken from ``frame_index``, which restarts at every
        ``LiveLoop.run()``), so a second run keeps polling."""
        now = time.perf_counter()
        self._frames += 1
        frame_index = self._frames
        due = frame_index - self._last_poll_frame >= self.poll_every_frames
        if self.poll_interval_s is not None and now - self._last_poll_time >= self.poll_interval_s:
            due = True
        if not due or self._busy.is_set():
            return
        self._last_poll_frame, self._last_poll_time = frame_index, now
        token = self.registry.pointer_token()  # type: ignore[attr-defined]
        if token == self._token:
            return
        self._token = token
        try:
            version = self.registry.current_version()  # type: ignore[attr-defined]
        except MiroEdgeError as exc:
            logger.error("registry pointer unreadable, keeping version %s: %s", self.version, exc)
            return
        if version is None or version == self.version:
            return
        event = SwapEvent(version, now)
        self.events.append(event)
        self._pending_event = event
        self._busy.set()
        self._requests.put(version)

    def stop(self) -> None:
        if self._thread is not None:
            self._requests.put(None)
            self._thread.join(timeout=30)
            self._thread = None
        with self._lock:
            pending, self._pending = self._pending, None
            retired, self._retired = self._retired, []
        for engine in [pending, self._engine] + retired:
            if engine is not None:
                engine.close()
        self._engine = None
