"""Frame sources for the live path: synthetic (tests, benchmarks), video/camera (OpenCV), IMU CSV/socket.

A source is a context manager with ``read() -> Optional[np.ndarray]`` returning one model input
(shaped like the model's per-sample input) or None at the end, and ``fps``: the rate frames
arrive at (None: read on demand, e.g. a camera that paces itself or a file replayed as fast as
possible). Sources are registered by name in ``SOURCES``.
"""
from __future__ import annotations

import csv
import importlib
import logging
import socket
from collections import deque
from typing import Any, Deque, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from miro_edge.errors import InputError
from miro_edge.utils.optional import require as require_module
from miro_edge.utils.registry import Registry

logger = logging.getLogger(__name__)

SOURCES: Registry[FrameSource] = Registry("frame source")


class FrameSource:
    """Base class: ``open``/``close`` via ``with``; ``read()`` one frame or None at the end."""

    fps: Optional[float] = None

    def open(self) -> FrameSource:
        return self

    def close(self) -> None:
        pass

    def read(self) -> Optional[np.ndarray]:
        raise NotImplementedError

    @classmethod
    def from_uri(cls, uri: Optional[str], input_shape: Sequence[int], fps: Optional[float]) -> FrameSource:
        """Build from a command-line ``uri`` and the model's per-sample input shape."""
        raise NotImplementedError

    def __enter__(self) -> FrameSource:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()


@SOURCES.register("synthetic")
class SyntheticSource(FrameSource):
    """Random frames of ``shape`` from a small pre-generated pool (generation costs nothing per frame)."""

    def __init__(self, shape: Sequence[int], fps: Optional[float] = 30.0, n_frames: Optional[int] = None,
                 seed: int = 0, pool: int = 64) -> None:
        if fps is not None and fps <= 0:
            raise InputError(f"fps must be > 0, got {fps}")
        self.shape = tuple(int(v) for v in shape)
        self.fps = fps
        self.n_frames = n_frames
        rng = np.random.default_rng(seed)
        self._pool = rng.standard_normal((max(1, pool),) + self.shape).astype(np.float32)
        self._count = 0

    def read(self) -> Optional[np.ndarray]:
        if self.n_frames is not None and self._count >= self.n_frames:
            return None
        frame = self._pool[self._count % len(self._pool)]
        self._count += 1
        return frame

    @classmethod
    def from_uri(cls, uri: Optional[str], input_shape: Sequence[int], fps: Optional[float]) -> SyntheticSource:
        """``uri``: the number of frames (empty: endless)."""
        return cls(input_shape, fps=fps if fps is not None else 30.0, n_frames=int(uri) if uri else None)


@SOURCES.register("video")
class VideoSource(FrameSource):
    """Camera index or video file through OpenCV (extra ``video``), converted to the model's (C, H, W).

    Frames are resized to (H, W), converted to grey when C == 1, scaled to [0, 1] by ``scale``.
    """

    def __init__(self, uri: str, input_shape: Sequence[int], fps: Optional[float] = None,
                 scale: float = 1.0 / 255.0) -> None:
        if len(input_shape) != 3 or input_shape[0] not in (1, 3):
            raise InputError(f"video frames need a (1|3, H, W) model input, got {tuple(input_shape)}")
        self.uri = uri
        self.input_shape = tuple(int(v) for v in input_shape)
        self.fps = fps
        self.scale = scale
        self._cap: Any = None
        self._cv2: Any = None

    @classmethod
    def from_uri(cls, uri: Optional[str], input_shape: Sequence[int], fps: Optional[float]) -> VideoSource:
        """``uri``: a camera index ("0") or a video file path."""
        if not uri:
            raise InputError("the video source needs --uri (a camera index such as 0, or a video file)")
        return cls(uri, input_shape, fps=fps)

    def open(self) -> VideoSource:
        cv2 = require_module("cv2", "video", "camera and video sources")
        target = int(self.uri) if str(self.uri).isdigit() else str(self.uri)
        cap = cv2.VideoCapture(target)
        if not cap.isOpened():
            raise InputError(f"OpenCV cannot open video source {self.uri!r}; check the device index or file path")
        self._cv2, self._cap = cv2, cap
        return self

    def read(self) -> Optional[np.ndarray]:
        ok, frame = self._cap.read()
        if not ok:
            return None
        return self.convert(frame)

    def convert(self, frame: np.ndarray) -> np.ndarray:
        cv2 = self._cv2
        c, h, w = self.input_shape
        if c == 1 and frame.ndim == 3:
            frame = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        frame = cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA)
        arr = frame.astype(np.float32) * self.scale
        return arr[None] if arr.ndim == 2 else np.ascontiguousarray(arr.transpose(2, 0, 1))

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class _Windower:
    """Turns a stream of IMU rows (one value per channel) into (channels, window) arrays every ``hop`` rows."""

    def __init__(self, channels: int, window: int, hop: int) -> None:
        if channels < 1 or window < 1 or hop < 1:
            raise InputError("IMU windows need channels, window and hop >= 1")
        self.channels, self.window, self.hop = channels, window, hop
        self._rows: Deque[np.ndarray] = deque(maxlen=window)
        self._since = 0
        self.skipped_lines = 0  # headers and malformed lines

    def push_fields(self, fields: List[str], columns: Optional[Sequence[int]]) -> Optional[np.ndarray]:
        """One text line's fields (``columns`` picks the channels): a window when one is due;
        a line that does not parse as numbers is skipped and counted."""
        row = _parse_row(fields, columns)
        if row is None:
            self.skipped_lines += 1
            return None
        return self.push(row)

    def push(self, row: Sequence[float]) -> Optional[np.ndarray]:
        values = np.asarray(row, dtype=np.float32)
        if values.shape != (self.channels,):
            raise InputError(f"IMU row has {values.size} values, expected {self.channels} channels")
        self._rows.append(values)
        self._since += 1
        if len(self._rows) == self.window and self._since >= self.hop:
            self._since = 0
            return np.ascontiguousarray(np.stack(self._rows, axis=1))
        return None


def _parse_row(fields: List[str], columns: Optional[Sequence[int]]) -> Optional[List[float]]:
    picked = [fields[i] for i in columns] if columns is not None else fields
    try:
        return [float(v) for v in picked]
    except ValueError:
        return None  # a header or a malformed line


class _WindowedSource(FrameSource):
    """An IMU source that cuts text rows into windows with ``self._windower``."""

    _windower: _Windower  # set by each subclass's __init__

    @property
    def skipped_lines(self) -> int:
        """Lines skipped so far because they were not numbers (headers, malformed)."""
        return self._windower.skipped_lines


@SOURCES.register("imu-csv")
class CsvImuSource(_WindowedSource):
    """IMU rows from a CSV file (one row per time step), windowed to (channels, window)."""

    def __init__(self, path: str, channels: int = 6, window: int = 100, hop: int = 50,
                 columns: Optional[Sequence[int]] = None, fps: Optional[float] = None) -> None:
        self.path = path
        self.columns = list(columns) if columns is not None else None
        self.fps = fps
        self._windower = _Windower(channels, window, hop)
        self._handle: Any = None
        self._reader: Optional[Iterator[List[str]]] = None

    @classmethod
    def from_uri(cls, uri: Optional[str], input_shape: Sequence[int], fps: Optional[float]) -> CsvImuSource:
        """``uri``: the CSV path; windows take the model's (channels, length) and hop half a window."""
        if not uri or len(input_shape) != 2:
            raise InputError("the imu-csv source needs --uri FILE and a (channels, length) model")
        return cls(uri, channels=int(input_shape[0]), window=int(input_shape[1]),
                   hop=max(1, int(input_shape[1]) // 2), fps=fps)

    def open(self) -> CsvImuSource:
        try:
            self._handle = open(self.path, newline="")
        except OSError as exc:
            raise InputError(f"cannot open IMU CSV {self.path}: {exc}") from None
        self._reader = csv.reader(self._handle)
        return self

    def read(self) -> Optional[np.ndarray]:
        assert self._reader is not None, "use the source inside `with`"
        for fields in self._reader:
            if not fields:
                continue
            window = self._windower.push_fields(fields, self.columns)
            if window is not None:
                return window
        return None

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


@SOURCES.register("imu-socket")
class SocketImuSource(_WindowedSource):
    """IMU rows as comma-separated text lines from a TCP server, windowed to (channels, window)."""

    def __init__(self, host: str, port: int, channels: int = 6, window: int = 100, hop: int = 50,
                 timeout_s: float = 5.0, fps: Optional[float] = None) -> None:
        self.address = (host, int(port))
        self.timeout_s = timeout_s
        self.fps = fps
        self._windower = _Windower(channels, window, hop)
        self._sock: Any = None
        self._file: Any = None

    @classmethod
    def from_uri(cls, uri: Optional[str], input_shape: Sequence[int], fps: Optional[float]) -> SocketImuSource:
        """``uri``: ``host:port`` of a TCP server sending one CSV line per time step."""
        if not uri or ":" not in uri or len(input_shape) != 2:
            raise InputError("the imu-socket source needs --uri HOST:PORT and a (channels, length) model")
        host, port = uri.rsplit(":", 1)
        return cls(host, int(port), channels=int(input_shape[0]), window=int(input_shape[1]),
                   hop=max(1, int(input_shape[1]) // 2), fps=fps)

    def open(self) -> SocketImuSource:
        try:
            self._sock = socket.create_connection(self.address, timeout=self.timeout_s)
        except OSError as exc:
            raise InputError(f"cannot connect to IMU stream {self.address[0]}:{self.address[1]}: {exc}") from None
        self._file = self._sock.makefile("r", encoding="ascii", newline="\n")
        return self

    def read(self) -> Optional[np.ndarray]:
        while True:
            try:
                line = self._file.readline()
            except socket.timeout:
                logger.warning("IMU stream %s:%d silent for %.1f s; ending", self.address[0], self.address[1],
                               self.timeout_s)
                return None
            if not line:
                return None
            window = self._windower.push_fields(line.strip().split(","), None)
            if window is not None:
                return window

    def close(self) -> None:
        for obj in (self._file, self._sock):
            if obj is not None:
                obj.close()
        self._file = self._sock = None


@SOURCES.register("npz")
class NpzSource(FrameSource):
    """Frames from an ``.npz`` file's ``x`` array (N, *shape), in order, optionally paced at ``fps``.

    If the file also has ``y`` (one label per frame: ints or strings), ``label_of(index)`` gives a
    frame's label, which the serving process may send back as live feedback (an app that learns the
    true label of a frame later does the same).
    """

    def __init__(self, path: str, fps: Optional[float] = None, loop: bool = False) -> None:
        self.path = path
        self.fps = fps
        self.loop = loop
        self._x: Optional[np.ndarray] = None
        self._y: Optional[np.ndarray] = None
        self._index = 0

    @classmethod
    def from_uri(cls, uri: Optional[str], input_shape: Sequence[int], fps: Optional[float]) -> NpzSource:
        """``uri``: the path of an ``.npz`` with ``x`` (and optionally ``y``)."""
        if not uri:
            raise InputError("the npz source needs --uri PATH.npz (arrays x and, for feedback, y)")
        source = cls(uri, fps)
        source.expected_shape = tuple(int(v) for v in input_shape)
        return source

    expected_shape: Optional[Tuple[int, ...]] = None

    def open(self) -> NpzSource:
        try:
            with np.load(self.path, allow_pickle=False) as data:
                self._x = np.asarray(data["x"], dtype=np.float32)
                self._y = np.asarray(data["y"]) if "y" in data.files else None
        except (OSError, KeyError, ValueError) as exc:
            raise InputError(f"cannot read frames from {self.path} ({exc}); it needs an array named x") from None
        if self.expected_shape is not None and tuple(self._x.shape[1:]) != self.expected_shape:
            raise InputError(f"{self.path} holds frames of shape {tuple(self._x.shape[1:])} but the model takes {self.expected_shape}")
        self._index = 0
        return self

    def read(self) -> Optional[np.ndarray]:
        assert self._x is not None, "open() first"
        if self._index >= len(self._x):
            if not self.loop or not len(self._x):
                return None
            self._index = 0
        frame = self._x[self._index]
        self._index += 1
        return frame

    def frame(self, index: int) -> np.ndarray:
        """Frame ``index`` (counted from the first read; wraps when looping)."""
        assert self._x is not None, "open() first"
        return self._x[index % len(self._x)]

    def label_of(self, index: int) -> Any:
        """The label of frame ``index`` (counted from the first read), or None without ``y``."""
        if self._y is None or self._x is None:
            return None
        value = self._y[index % len(self._y)]
        return value.item() if hasattr(value, "item") else value

    def close(self) -> None:
        self._x = self._y = None


# Sources in their own module, imported only when asked for: the wav source needs torch for the
# audio front end, and the live path on an ONNX model must not load torch for the others.
LAZY_SOURCES = {"wav": "miro_edge.infer.audio_source"}


def make_source(kind: str, uri: Optional[str], input_shape: Sequence[int], fps: Optional[float]) -> FrameSource:
    """A registered source by name, configured from a uri (see each class's ``from_uri``)."""
    if kind in LAZY_SOURCES and kind not in SOURCES.names():
        importlib.import_module(LAZY_SOURCES[kind])  # registers it
    return SOURCES.get(kind).from_uri(uri, input_shape, fps)  # type: ignore[attr-defined]


def frames(source: FrameSource) -> Iterator[np.ndarray]:
    """Iterate a source's frames until it ends (the source must be open)."""
    while True:
        frame = source.read()
        if frame is None:
            return
        yield frame


def source_shape_check(frame: np.ndarray, expected: Tuple[int, ...]) -> None:
    if tuple(frame.shape) != tuple(expected):
        raise InputError(f"source frame shaped {frame.shape} does not fit the model input {expected}; pass a preprocess function or "
                         "fix the source's shape settings")
