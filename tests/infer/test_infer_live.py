"""Live path: predictions, hot swap between frames, failed swaps, dropped-frame accounting, feedback, sources."""
import importlib.util
import socket
import threading
import time

import numpy as np
import pytest
from model_fixtures import published_registry

from miro_edge.errors import InputError, MissingDependencyError
from miro_edge.export.pipeline import publish_model
from miro_edge.infer.base import EngineOptions, InferenceEngine, create_engine
from miro_edge.infer.hotswap import FixedEngine, HotSwapper
from miro_edge.infer.live import LiveConfig, LiveLoop, registry_live_loop
from miro_edge.infer.sources import (
    CsvImuSource,
    SocketImuSource,
    SyntheticSource,
    VideoSource,
    frames,
    make_source,
)

pytest.importorskip("onnxruntime")


@pytest.fixture
def registry(tmp_path, ckpt_factory):
    return published_registry(tmp_path, ckpt_factory)


class SlowEngine(InferenceEngine):
    name = "slow"

    def __init__(self, delay_s: float) -> None:
        super().__init__((1, 8, 8))
        self.delay_s = delay_s

    def _open(self) -> None:
        pass

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        time.sleep(self.delay_s)
        return np.zeros((len(batch), 3), dtype=np.float32)


def test_fixed_engine_loop_emits_every_frame(registry):
    reg, pairs = registry
    preds = []
    engine = create_engine("onnxruntime", reg.artifacts(1))
    with LiveLoop(SyntheticSource((1, 8, 8), fps=None, n_frames=50), engine, preds.append) as loop:
        stats = loop.run()
    assert stats.frames == 50 and [p.index for p in preds] == list(range(50))
    assert stats.dropped == 0 and stats.swaps == 0
    ref = create_engine("onnxruntime", reg.artifacts(1)).open()
    src = SyntheticSource((1, 8, 8), fps=None, n_frames=3)
    for pred, frame in zip(preds, frames(src)):
        np.testing.assert_allclose(pred.logits, ref.infer(frame[None])[0], atol=1e-6)
        assert pred.label == int(np.argmax(pred.logits))
    assert not engine.is_open  # the loop closed it


def test_hot_swap_between_frames(registry):
    reg, pairs = registry
    seen_versions = []
    cfg = LiveConfig(poll_every_frames=2)
    loop = registry_live_loop(str(reg.root), SyntheticSource((1, 8, 8), fps=100.0), "onnxruntime",
                              EngineOptions(warmup_iterations=1), cfg, lambda p: seen_versions.append(p.version))

    def publisher():
        time.sleep(0.3)
        publish_model(reg, *pairs[1], run_parity=False)
        time.sleep(0.4)
        publish_model(reg, *pairs[2], run_parity=False)

    with loop:
        thread = threading.Thread(target=publisher)
        thread.start()
        stats = loop.run(duration_s=1.6)
        thread.join()
    assert stats.swaps == 2 and stats.version == 3 and stats.swap_failures == 0
    # versions change only between frames, monotonically, each frame served by one whole version
    assert seen_versions[0] == 1 and seen_versions[-1] == 3
    assert seen_versions == sorted(seen_versions) and set(seen_versions) == {1, 2, 3}
    assert stats.swap_frames > 0 and len(stats.swap_load_ms) == 2


def test_failed_swap_keeps_serving_the_old_version(registry, tmp_path):
    reg, pairs = registry
    publish_model(reg, *pairs[1], run_parity=False)
    # corrupt v2 after publishing, then point back and forth so the loop sees v2 become current
    reg.rollback(1)
    onnx_file = reg.root / "versions" / "v000002" / "model.onnx"
    onnx_file.write_bytes(onnx_file.read_bytes()[:-10] + b"0123456789")
    swapper = HotSwapper(reg, "onnxruntime", EngineOptions(warmup_iterations=1), poll_every_frames=1)
    versions = []
    with LiveLoop(SyntheticSource((1, 8, 8), fps=200.0), swapper, lambda p: versions.append(p.version)) as loop:
        loop.run(max_frames=10)
        reg._set_pointer(2)  # what a rollback to v2 would do (rollback itself refuses: sha256 mismatch)
        stats = loop.run(max_frames=60)
    assert stats.swap_failures == 1 and stats.swaps == 0 and set(versions) == {1}
    assert "IntegrityError" in swapper.events[0].error


def test_dropped_frames_are_counted(registry):
    # 100 fps source, 25 ms per frame: the loop cannot keep up
    with LiveLoop(SyntheticSource((1, 8, 8), fps=100.0, n_frames=40), SlowEngine(0.025),
                  config=LiveConfig(queue_size=1)) as loop:
        stats = loop.run()
    assert stats.dropped_queue > 10 and stats.late > 0
    assert stats.dropped == stats.dropped_queue + stats.late
    assert stats.frames + stats.dropped_queue <= 40
    # 50 fps source, 2 ms per frame: nothing dropped
    with LiveLoop(SyntheticSource((1, 8, 8), fps=50.0, n_frames=25), SlowEngine(0.002)) as loop:
        stats = loop.run()
    assert stats.frames == 25 and stats.dropped == 0


def test_feedback_goes_to_ingest(registry):
    got = []
    engine = FixedEngine(SlowEngine(0.0))

    def ingest(x, label):
        time.sleep(0.002)  # a durable write: slower than a frame, must not block the loop
        got.append((x.copy(), label))

    holder = {}

    def on_prediction(pred):
        if pred.index % 5 == 0:
            holder["loop"].feedback(np.full((1, 8, 8), pred.index, dtype=np.float32), pred.index)

    with LiveLoop(SyntheticSource((1, 8, 8), fps=None, n_frames=50), engine, on_prediction, ingest=ingest) as loop:
        holder["loop"] = loop
        loop.run()
    assert [label for _, label in got] == list(range(0, 50, 5))
    assert all(float(x[0, 0, 0]) == label for x, label in got)
    assert loop.stats.feedback_sent == 10
    with LiveLoop(SyntheticSource((1, 8, 8), n_frames=1), FixedEngine(SlowEngine(0.0))) as plain:
        with pytest.raises(Exception, match="ingest"):
            plain.feedback(np.zeros((1, 8, 8)), 1)


def test_shape_mismatch_is_a_clear_error(registry):
    reg, _ = registry
    engine = create_engine("onnxruntime", reg.artifacts(1))
    with LiveLoop(SyntheticSource((1, 4, 4), fps=None, n_frames=3), engine) as loop:
        with pytest.raises(InputError, match="preprocess"):
            loop.run()


def test_imu_csv_windows(tmp_path):
    path = tmp_path / "imu.csv"
    rows = np.arange(250 * 6, dtype=np.float32).reshape(250, 6)
    with open(str(path), "w") as f:
        f.write("ax,ay,az,gx,gy,gz\n")
        for r in rows:
            f.write(",".join(str(v) for v in r) + "\n")
    with CsvImuSource(str(path), channels=6, window=100, hop=50) as src:
        wins = list(frames(src))
    assert len(wins) == 4 and wins[0].shape == (6, 100)
    np.testing.assert_array_equal(wins[0], rows[:100].T)
    np.testing.assert_array_equal(wins[1], rows[50:150].T)
    assert src.skipped_lines == 1
    assert isinstance(make_source("imu-csv", str(path), (6, 100), None), CsvImuSource)


def test_imu_socket_stream():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    rows = np.random.default_rng(0).standard_normal((30, 3)).round(3)

    def serve():
        conn, _ = server.accept()
        with conn:
            for r in rows:
                conn.sendall((",".join(str(v) for v in r) + "\n").encode())
        server.close()

    threading.Thread(target=serve, daemon=True).start()
    with SocketImuSource("127.0.0.1", port, channels=3, window=10, hop=10) as src:
        wins = list(frames(src))
    assert len(wins) == 3
    np.testing.assert_allclose(wins[2], rows[20:30].T.astype(np.float32))


def test_video_source_needs_the_video_extra():
    src = VideoSource("0", (1, 8, 8))
    if importlib.util.find_spec("cv2") is None:
        with pytest.raises(MissingDependencyError, match=r"miro-edge\[video\]"):
            src.open()
    else:  # pragma: no cover - only where OpenCV is installed
        with pytest.raises(InputError):
            VideoSource("/nonexistent.mp4", (1, 8, 8)).open()
