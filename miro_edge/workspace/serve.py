"""Serving a workspace's current model: the live loop over ``DIR/registry`` with hot swap, the
user's labels in every prediction, the live load published to ``DIR/live/load.json`` (the
daemon's idle policy reads it from another process) and live feedback into ``DIR/inbox``.

Import-light on purpose: the serving process loads the inference engine, the registry and the
inbox, never the trainer, the exporter or the controller (it does not read workspace.yaml).
"""
import json
import logging
import signal
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Optional, TextIO

import numpy as np

from miro_edge.device.load import LoadFile
from miro_edge.errors import MiroEdgeError
from miro_edge.infer.live import LiveConfig, LiveStats, Prediction, registry_live_loop
from miro_edge.infer.sources import FrameSource, make_source
from miro_edge.model.artifacts import input_shape_of
from miro_edge.registry.model_registry import ModelRegistry
from miro_edge.workspace.inbox import Inbox, validate_samples

logger = logging.getLogger(__name__)


def load_file(root: Path) -> LoadFile:
    return LoadFile(Path(root) / "live" / "load.json")


class FeedbackInbox:
    """The serving process's feedback hook: validated samples into the workspace's inbox."""

    def __init__(self, root: Path, input_shape: Any) -> None:
        self.inbox = Inbox(Path(root) / "inbox")
        self.input_shape = tuple(input_shape)
        self.sent = 0

    def __call__(self, x: np.ndarray, label: Any) -> None:
        arr, labels = validate_samples(np.asarray(x)[None], [label], self.input_shape, where="feedback sample")
        self.inbox.put(arr, labels, source="live-feedback")
        self.sent += 1


def serve(root: Path, source: str = "synthetic", uri: Optional[str] = None, fps: Optional[float] = None,
          engine: str = "auto", max_frames: Optional[int] = None, duration_s: Optional[float] = None,
          on_prediction: Optional[Callable[[Prediction], None]] = None, predictions_out: Optional[TextIO] = None,
          feedback_every: int = 0, config: Optional[LiveConfig] = None,
          stop: Optional[threading.Event] = None, loop_source: bool = False,
          preprocess: Optional[Callable[[np.ndarray], np.ndarray]] = None,
          on_ready: Optional[Callable[[FeedbackInbox], None]] = None) -> LiveStats:
    """Serve until the source ends, a limit is hit, or SIGTERM/SIGINT; return the loop's stats.

    ``feedback_every`` N > 0 sends every N-th frame with its label back as live feedback (sources
    that know their frames' labels, e.g. ``npz`` with ``y``).
    """
    root = Path(root)
    registry = ModelRegistry(root / "registry")
    version = registry.current_version()
    if version is None:
        raise MiroEdgeError(f"{root} has no published model yet; run `miro-edge update {root}` first")
    shape = input_shape_of(registry.artifacts(version))
    frames = make_source(source, uri, shape, fps)
    if loop_source and hasattr(frames, "loop"):
        frames.loop = True  # a file source replayed until stopped
    feedback = FeedbackInbox(root, shape)
    if on_ready is not None:
        on_ready(feedback)  # e.g. an app's UI thread sending the user's corrections
    state: Dict[str, Any] = {"loop": None}

    def emit(pred: Prediction) -> None:
        if on_prediction is not None:
            on_prediction(pred)
        if predictions_out is not None:
            predictions_out.write(json.dumps({"index": pred.index, "label": pred.label, "class_id": pred.class_id,
                                              "confidence": round(pred.confidence, 6), "version": pred.version,
                                              "latency_ms": round(pred.latency_s * 1e3, 3), "time": round(time.time(), 4)}) + "\n")
            predictions_out.flush()
        if feedback_every and pred.index % feedback_every == 0:
            label_of = getattr(frames, "label_of", None)
            label = label_of(pred.index) if label_of is not None else None
            if label is not None and state["loop"] is not None:
                state["loop"].feedback(frames.frame(pred.index), label)  # type: ignore[attr-defined]

    stop_event = stop or threading.Event()
    previous = _install_stop(stop_event)
    load = load_file(root)
    try:
        with registry_live_loop(str(root / "registry"), _Stoppable(frames, stop_event), engine, None, config, emit,
                                ingest=feedback, preprocess=preprocess, load=load) as loop:
            state["loop"] = loop
            loop.run(max_frames=max_frames, duration_s=duration_s)
        return loop.stats  # after exit: includes the feedback delivered
    finally:
        _restore(previous)
        load.publish(0.0, 0.0, force=True)


class _Stoppable(FrameSource):
    """A source that ends when the stop event is set (SIGTERM), so the loop exits between frames."""

    def __init__(self, inner: FrameSource, stop: threading.Event) -> None:
        self.inner = inner
        self.stop = stop
        self.fps = inner.fps

    def open(self) -> "_Stoppable":
        self.inner.open()
        return self

    def read(self) -> Optional[np.ndarray]:
        return None if self.stop.is_set() else self.inner.read()

    def close(self) -> None:
        self.inner.close()


def _install_stop(event: threading.Event) -> Any:
    if threading.current_thread() is not threading.main_thread():
        return None
    handler = lambda *_: event.set()  # noqa: E731
    return signal.signal(signal.SIGTERM, handler), signal.signal(signal.SIGINT, handler)


def _restore(previous: Any) -> None:
    if previous is not None:
        signal.signal(signal.SIGTERM, previous[0])
        signal.signal(signal.SIGINT, previous[1])
