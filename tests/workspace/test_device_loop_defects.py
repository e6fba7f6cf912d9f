"""One test per defect a new user hit on the way from training to the live loop (issue 11's list)."""
import json
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from model_fixtures import make_checkpoint, published_registry
from workspace_fixtures import NAMES, digits

from miro_edge.device.load import LoadFile, LoadGauge
from miro_edge.errors import IncompatibleModelError, InputError
from miro_edge.export.pipeline import export_checkpoint, publish_model
from miro_edge.infer.hotswap import FixedEngine, HotSwapper
from miro_edge.infer.live import LiveConfig, LiveLoop, registry_live_loop
from miro_edge.infer.sources import SyntheticSource
from miro_edge.registry.model_registry import ModelRegistry
from miro_edge.workspace.config import WorkspaceConfig
from miro_edge.workspace.lock import WorkspaceLockedError
from miro_edge.workspace.workspace import Workspace

pytest.importorskip("onnxruntime")
FAST = {"train": {"width": 8, "epochs": 3, "threads": 1}, "memory": {"em_size": 80},
        "update": {"canary_max_drop": 0.5}}


def _config(**over):
    from miro_edge.config import from_dict
    raw = json.loads(json.dumps(FAST))
    raw.update(over)
    return from_dict(WorkspaceConfig, raw)


@pytest.fixture(scope="module")
def data():
    return digits()


def _cycle(ws_dir, x, labels):
    Workspace.open(ws_dir, writer=False).ingest(x, labels)
    with Workspace.open(ws_dir) as ws:
        return ws.update()


def test_a_label_keeps_its_class_id_when_the_data_grows(tmp_path, data):
    """Growing the data behind a workspace never remaps classes: old labels keep their ids."""
    x, y = data
    ws_dir = Workspace.init(tmp_path / "ws", _config())
    first = np.isin(y, [3, 7])
    _cycle(ws_dir, x[first], NAMES[y[first]].tolist())
    ids_before = json.loads((ws_dir / "labels.json").read_text())["labels"]
    grown = np.isin(y, [0, 3, 7])  # the same file, grown with a class that sorts first
    result = _cycle(ws_dir, x[grown], NAMES[y[grown]].tolist())
    labels = json.loads((ws_dir / "labels.json").read_text())["labels"]
    assert labels[:2] == ids_before and labels[2] == "zero"
    assert result.class_accuracy["three"] > 0.8 and result.class_accuracy["seven"] > 0.8


def test_a_grown_data_set_behind_a_run_is_refused_not_remapped(tmp_path):
    from miro_edge.config import from_dict
    from miro_edge.session import SessionConfig, run_session

    x, y = digits()
    keep = np.isin(y, [0, 1, 2, 3])
    np.savez(tmp_path / "d.npz", x=x[keep], y=y[keep])
    raw = {"data": {"dataset": "npz", "classes_per_task": 2}, "data_options": {"path": str(tmp_path / "d.npz")},
           "train": {"width": 8, "epochs": 1, "threads": 1}, "memory": {"em_size": 20}}
    run_session(from_dict(SessionConfig, raw), out_dir=str(tmp_path / "run"))
    keep = np.isin(y, [0, 1, 2, 3, 4, 5])
    np.savez(tmp_path / "d.npz", x=x[keep], y=y[keep])
    with pytest.raises(InputError, match="data set behind .* changed"):
        run_session(from_dict(SessionConfig, raw), out_dir=str(tmp_path / "run"))


def test_live_predictions_and_the_checkpoint_carry_the_users_labels(tmp_path, data):
    x, y = data
    ws_dir = Workspace.init(tmp_path / "ws", _config())
    mask = np.isin(y, [4, 9])
    _cycle(ws_dir, x[mask], NAMES[y[mask]].tolist())
    registry = ModelRegistry(ws_dir / "registry")
    assert registry.current().label_map == ["four", "nine"] or registry.current().label_map == ["nine", "four"]
    got = []
    frames = x[mask][:40]

    class Frames(SyntheticSource):
        def __init__(self):
            super().__init__((1, 8, 8), fps=None, n_frames=len(frames))
            self._pool = frames

    with registry_live_loop(str(ws_dir / "registry"), Frames(), "onnxruntime", on_prediction=got.append) as loop:
        loop.run()
    truth = NAMES[y[mask][:40]]
    assert np.mean([p.label == t for p, t in zip(got, truth)]) > 0.9  # read as the user's labels
    assert all(0.0 < p.confidence <= 1.0 and isinstance(p.label, str) for p in got)


def test_live_feedback_lands_in_the_workspace_from_another_process(tmp_path, data):
    """The documented feedback hook works: the serving side (no writer lock) queues samples, and the
    next cycle (the writer, in another process) learns them."""
    x, y = data
    ws_dir = Workspace.init(tmp_path / "ws", _config())
    mask = np.isin(y, [1, 2])
    _cycle(ws_dir, x[mask], NAMES[y[mask]].tolist())
    serving = Workspace.open(ws_dir, writer=False)  # the live process never takes the lock
    fb = np.isin(y, [5])
    swapper = HotSwapper(ModelRegistry(ws_dir / "registry"), "onnxruntime")
    with LiveLoop(SyntheticSource((1, 8, 8), fps=None, n_frames=5), swapper, ingest=serving.feedback) as loop:
        for frame in x[fb][:20]:
            loop.feedback(frame, "five")
        loop.run()
    assert loop.stats.feedback_sent == 20 and loop.stats.feedback_errors == 0
    out = subprocess.run([sys.executable, "-m", "miro_edge", "update", str(ws_dir)], capture_output=True, text=True)
    assert out.returncode == 0 and "1 new labels (five)" in out.stdout, out.stdout


def test_publishing_a_run_checkpoint_works_and_a_rejection_exits_non_zero(tmp_path):
    """A checkpoint the cycle wrote carries val_accuracy and per-class results, so its first publish
    is accepted; a rejected candidate exits 2."""
    from miro_edge.config import from_dict
    from miro_edge.session import SessionConfig, run_session

    raw = {"data": {"dataset": "digits", "classes_per_task": 5}, "train": {"width": 8, "epochs": 2, "threads": 1},
           "memory": {"em_size": 30}}
    run_session(from_dict(SessionConfig, raw), out_dir=str(tmp_path / "run"))
    ckpts = sorted((tmp_path / "run" / "checkpoints").glob("cycle-*.pt"))
    onnx = export_checkpoint(ckpts[0], tmp_path / "e0", run_parity=False).onnx.path
    out = subprocess.run([sys.executable, "-m", "miro_edge", "publish", str(onnx), "--checkpoint", str(ckpts[0]),
                          "--registry", str(tmp_path / "reg")], capture_output=True, text=True)
    assert out.returncode == 0 and "published v000001" in out.stdout, out.stdout + out.stderr
    onnx1 = export_checkpoint(ckpts[1], tmp_path / "e1", run_parity=False).onnx.path
    out = subprocess.run([sys.executable, "-m", "miro_edge", "publish", str(onnx1), "--checkpoint", str(ckpts[1]),
                          "--registry", str(tmp_path / "reg"), "--max-drop", "0.0"], capture_output=True, text=True)
    manifest = ModelRegistry(tmp_path / "reg").manifest(2)
    assert manifest.class_metrics and manifest.label_map and len(manifest.label_map) == 10
    if manifest.status == "rejected":
        assert out.returncode == 2 and "classes both know" in out.stdout
    else:
        assert out.returncode == 0 and "classes both know" in manifest.reason


def test_the_canary_compares_only_the_classes_both_models_know():
    from miro_edge.registry.canary import CanaryConfig, class_canary_decision

    old = {str(c): 0.95 for c in range(6)}  # a 6-class model, very good on its classes
    new = dict({str(c): 0.70 for c in range(6)}, **{str(c): 1.0 for c in range(6, 10)})  # 10 classes
    decision = class_canary_decision(new, old, CanaryConfig(max_drop=0.05))
    assert not decision.accepted and "6 classes both know" in decision.reason  # the average over 10 (0.82) hides it
    assert class_canary_decision(dict(new, **{str(c): 0.94 for c in range(6)}), old, CanaryConfig(max_drop=0.05)).accepted


def test_another_input_shape_is_refused_and_the_live_loop_keeps_serving(tmp_path, ckpt_factory):
    reg = ModelRegistry(tmp_path / "reg")
    a = ckpt_factory("cnn2d", seed=0)
    publish_model(reg, export_checkpoint(a, tmp_path / "a", run_parity=False).onnx.path, a, run_parity=False)
    b = make_checkpoint(tmp_path / "b.pt", "cnn1d")  # (6, 100) inputs
    b_onnx = export_checkpoint(b, tmp_path / "b", run_parity=False).onnx.path
    with pytest.raises(IncompatibleModelError, match="shape"):
        publish_model(reg, b_onnx, b, run_parity=False)
    assert reg.current_version() == 1
    with registry_live_loop(str(reg.root), SyntheticSource((1, 8, 8), fps=None, n_frames=None), "onnxruntime",
                            config=LiveConfig(poll_every_frames=5)) as loop:
        publish_model(reg, b_onnx, b, run_parity=False, force=True)  # an operator forces it anyway
        loop.run(max_frames=30)
        deadline = time.monotonic() + 20
        while loop.engines.failures == 0 and time.monotonic() < deadline:
            loop.run(max_frames=10)
        stats = loop.run(max_frames=10)
    assert stats.frames == 10 and stats.version == 1 and loop.engines.failures == 1  # kept serving v1
    assert "shape" in (loop.engines.events[-1].error or "")


def test_publish_with_a_checkpoint_of_another_model_is_one_clean_error(tmp_path, ckpt_factory):
    a = ckpt_factory("cnn2d", seed=0)
    b = make_checkpoint(tmp_path / "b.pt", "cnn1d")
    onnx = export_checkpoint(a, tmp_path / "a", run_parity=False).onnx.path
    out = subprocess.run([sys.executable, "-m", "miro_edge", "publish", str(onnx), "--checkpoint", str(b),
                          "--registry", str(tmp_path / "reg")], capture_output=True, text=True)
    assert out.returncode == 1 and out.stderr.startswith("Error:") and "Traceback" not in out.stderr
    assert "not the same model" in out.stderr


def test_a_second_run_of_the_live_loop_keeps_hot_swapping(tmp_path, ckpt_factory):
    reg, pairs = published_registry(tmp_path, ckpt_factory)
    with registry_live_loop(str(reg.root), SyntheticSource((1, 8, 8), fps=None, n_frames=None), "onnxruntime",
                            config=LiveConfig(poll_every_frames=5)) as loop:
        loop.run(max_frames=30)
        publish_model(reg, *pairs[1], run_parity=False, force=True)
        deadline = time.monotonic() + 20
        while loop.engines.version != 2 and time.monotonic() < deadline:
            loop.run(max_frames=20)  # every later run must keep polling
        assert loop.engines.version == 2


def test_an_app_built_workspace_resumes_in_a_new_process(tmp_path, data):
    x, y = data
    ws_dir = Workspace.init(tmp_path / "ws", _config())
    mask = np.isin(y, [6, 8])
    _cycle(ws_dir, x[mask], NAMES[y[mask]].tolist())
    more = np.isin(y, [0])
    Workspace.open(ws_dir, writer=False).ingest(x[more], ["zero"] * int(more.sum()))
    out = subprocess.run([sys.executable, "-m", "miro_edge", "update", str(ws_dir)], capture_output=True, text=True)
    assert out.returncode == 0 and "cycle 1" in out.stdout, out.stdout + out.stderr


def test_the_live_loop_sets_the_load_the_idle_policy_reads(tmp_path, data):
    """In one process (a LoadGauge) and across processes (live/load.json, read by the daemon)."""
    gauge = LoadGauge()

    class Busy:
        name, input_shape = "busy", (1, 8, 8)

        def infer(self, batch):
            time.sleep(0.03)
            return np.zeros((1, 3), np.float32)

    class Fixed(FixedEngine):
        def start(self):
            pass

        def stop(self):
            pass

    with LiveLoop(SyntheticSource((1, 8, 8), fps=25, n_frames=20), Fixed(Busy()), load=gauge) as loop:
        seen = []
        threading.Thread(target=lambda: [seen.append(gauge.get()) or time.sleep(0.05) for _ in range(12)]).start()
        loop.run()
    assert max(seen) > 0.5 and gauge.get() == 0.0  # busy while serving, idle after
    load = LoadFile(tmp_path / "load.json")
    load.publish(0.9, 25.0, force=True)
    assert load.get() == 0.9 and not load.read()["stale"]
    ws_dir = Workspace.init(tmp_path / "ws", _config(daemon={"poll_s": 0.1, "idle": {"max_live_load": 0.5}}))
    x, y = data
    Workspace.open(ws_dir, writer=False).ingest(x[y == 1], ["one"] * int((y == 1).sum()))
    serving = threading.Event()

    def busy_server():  # a server keeps publishing its load (a file left alone goes stale: idle)
        while not serving.wait(0.5):
            LoadFile(ws_dir / "live" / "load.json").publish(0.9, 25.0, force=True)

    LoadFile(ws_dir / "live" / "load.json").publish(0.9, 25.0, force=True)
    server = threading.Thread(target=busy_server)
    server.start()
    try:
        out = subprocess.run([sys.executable, "-m", "miro_edge", "daemon", str(ws_dir), "--timeout", "3"],
                             capture_output=True, text=True)
    finally:
        serving.set()
        server.join()
    assert out.returncode == 0 and "after 0 cycles" in out.stdout, out.stdout  # waited, never trained
    LoadFile(ws_dir / "live" / "load.json").publish(0.1, 25.0, force=True)
    out = subprocess.run([sys.executable, "-m", "miro_edge", "daemon", str(ws_dir), "--max-cycles", "1",
                          "--timeout", "120"], capture_output=True, text=True)
    assert "cycle 0:" in out.stdout and "after 1 cycles" in out.stdout, out.stdout + out.stderr


def test_a_second_writer_is_refused_naming_the_holder(tmp_path):
    ws_dir = Workspace.init(tmp_path / "ws", _config())
    with Workspace.open(ws_dir, what="daemon"):
        with pytest.raises(WorkspaceLockedError, match=r"pid \d+ \(daemon\)"):
            Workspace.open(ws_dir).__enter__()
        out = subprocess.run([sys.executable, "-m", "miro_edge", "update", str(ws_dir)], capture_output=True,
                             text=True)
        assert out.returncode == 1 and "in use by another writer" in out.stderr and "Traceback" not in out.stderr
        status = subprocess.run([sys.executable, "-m", "miro_edge", "status", str(ws_dir)], capture_output=True,
                                text=True)
        assert status.returncode == 0  # readers never need the lock


def test_bad_samples_are_rejected_naming_the_index_and_nothing_is_queued(tmp_path, data):
    x, y = data
    ws_dir = Workspace.init(tmp_path / "ws", _config())
    ws = Workspace.open(ws_dir, writer=False)
    bad = x[:10].copy()
    bad[7, 0, 3, 3] = np.nan
    with pytest.raises(InputError, match="sample 7 contains NaN"):
        ws.ingest(bad, ["a"] * 10)
    with pytest.raises(InputError, match="empty label .*sample 4"):
        ws.ingest(x[:10], ["a"] * 4 + [" "] + ["a"] * 5)
    ws.ingest(x[:10], ["a"] * 10)
    with pytest.raises(InputError, match=r"shape \(8, 8\)"):
        ws.ingest(x[:10, 0], ["a"] * 10)
    assert ws.waiting() == 10
    np.savez(tmp_path / "f.npz", x=np.concatenate([x[:5], bad[7:8]]), y=["b"] * 6)
    out = subprocess.run([sys.executable, "-m", "miro_edge", "ingest", str(ws_dir), "--from", str(tmp_path / "f.npz")],
                         capture_output=True, text=True)
    assert out.returncode == 1 and "f.npz sample 5 contains NaN" in out.stderr
    assert ws.waiting() == 10  # nothing of the bad file was queued


def test_resume_checks_the_store_against_state_json(tmp_path, data):
    """A store that lost samples (a deleted WAL, a restored old copy) or is gone is a clear error that
    says what is missing and how to go on; never a quiet resume."""
    import shutil

    from miro_edge.memory.store import SampleStore

    x, y = data
    ws_dir = Workspace.init(tmp_path / "ws", _config())
    mask = np.isin(y, [1, 2])
    _cycle(ws_dir, x[mask], NAMES[y[mask]].tolist())
    Workspace.open(ws_dir, writer=False).ingest(x[y == 3], ["three"] * int((y == 3).sum()))
    with SampleStore(ws_dir / "store", create=False) as store:
        store.delete(list(range(5)))  # five samples of the first cycle vanish
    out = subprocess.run([sys.executable, "-m", "miro_edge", "update", str(ws_dir)], capture_output=True, text=True)
    assert out.returncode == 1 and "does not hold what state.json recorded" in out.stderr, out.stderr
    assert "--accept-store-loss" in out.stderr and "Traceback" not in out.stderr
    out = subprocess.run([sys.executable, "-m", "miro_edge", "update", str(ws_dir), "--accept-store-loss"],
                         capture_output=True, text=True)
    assert out.returncode == 0 and "cycle 1" in out.stdout, out.stdout + out.stderr
    shutil.rmtree(str(ws_dir / "store"))
    Workspace.open(ws_dir, writer=False).ingest(x[y == 4], ["four"] * int((y == 4).sum()))
    out = subprocess.run([sys.executable, "-m", "miro_edge", "update", str(ws_dir)], capture_output=True, text=True)
    assert out.returncode == 1 and "is gone" in out.stderr and not (ws_dir / "store").exists()


def test_two_runs_on_one_out_dir_never_both_write(tmp_path):
    """The second `miro-edge run` on a directory in use fails at once naming the holder; the store
    holds each task once."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("data: {dataset: digits, classes_per_task: 5}\ntrain: {width: 8, epochs: 30, threads: 1}\n"
                   "memory: {em_size: 20}\n")
    cmd = [sys.executable, "-m", "miro_edge", "run", "--config", str(cfg), "--out", str(tmp_path / "run")]
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    lock = tmp_path / "run" / ".writer.lock"
    while not (lock.exists() and "(run)" in lock.read_text()):
        assert time.monotonic() < deadline and first.poll() is None
        time.sleep(0.02)
    second = subprocess.run(cmd, capture_output=True, text=True)
    assert first.poll() is None, "the first run ended before the second one tried: the test proves nothing"
    first.communicate(timeout=600)
    assert first.returncode == 0
    assert second.returncode == 1 and f"in use by another writer (pid {first.pid} (run))" in second.stderr
    status = json.loads(subprocess.run([sys.executable, "-m", "miro_edge", "status", str(tmp_path / "run"),
                                        "--json"], capture_output=True, text=True, check=True).stdout)
    from miro_edge.data.sources import load_source
    from miro_edge.data.stream import ClassIncrementalStream

    stream = ClassIncrementalStream(load_source("digits"), 5, seed=0)
    assert status["store_records"] == sum(len(task.y_train) for task in stream)  # each task once
    assert [t["task_id"] for t in status["tasks"]] == [0, 1]
