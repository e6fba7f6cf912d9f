import numpy as np
import pytest
import torch
from miro_fakes import make_source

from miro_edge.errors import ConfigError
from miro_edge.memory.em import EpisodicMemory
from miro_edge.memory.sb import StreamBuffer
from miro_edge.model.architectures import create_model
from miro_edge.train.callbacks import BatchInfo, TaskContext, TrainCallback
from miro_edge.train.metrics import AccuracyMatrix
from miro_edge.train.trainer import IncrementalTrainer, TrainConfig, accuracy


def blobs(classes, n=40, seed=0):
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for c in classes:
        centre = np.zeros((1, 8, 8), np.float32)
        centre[0, c % 8, :] = 3.0
        xs.append(centre + 0.3 * rng.standard_normal((n, 1, 8, 8)).astype(np.float32))
        ys.append(np.full(n, c))
    return np.concatenate(xs), np.concatenate(ys)


class Phases(TrainCallback):
    def __init__(self):
        self.calls = []

    def before_task(self, ctx):
        self.calls.append("before_task")

    def after_batch(self, ctx, batch: BatchInfo):
        self.calls.append(("batch", batch.epoch, len(batch.em_slots)))

    def after_epoch(self, ctx, epoch, mean_loss):
        self.calls.append(("epoch", epoch))

    def after_task(self, ctx):
        self.calls.append("after_task")


def test_head_grows_keeping_old_weights():
    model = create_model("cnn2d", (1, 8, 8), 2, width=8)
    old = model.head.weight.detach().clone()
    assert model.grow(4) and model.num_classes == 4
    assert torch.equal(model.head.weight[:2], old)
    assert not model.grow(3)


def test_fit_runs_phases_in_order_and_replays_em_slots():
    torch.manual_seed(0)
    x, y = blobs([0, 1])
    sb = StreamBuffer(len(y), (1, 8, 8))
    sb.add(x, y)
    src = make_source(n_per_class=10, classes=(2, 3), shape=(1, 8, 8))
    em = EpisodicMemory(0, (1, 8, 8))
    em.rebalance(8, [2, 3], src, np.random.default_rng(0))
    phases = Phases()
    trainer = IncrementalTrainer(create_model("cnn2d", (1, 8, 8), 2, width=8),
                                 TrainConfig(epochs=2, batch_size=16), [phases])
    report = trainer.fit(0, sb, em)
    assert phases.calls[0] == "before_task" and phases.calls[-1] == "after_task"
    assert trainer.model.num_classes == 4  # grew to the EM's labels
    em_used = sum(c[2] for c in phases.calls if isinstance(c, tuple) and c[0] == "batch")
    assert em_used == 2 * 8  # every EM slot once per epoch
    assert report.sample_passes == 2 * (len(y) + 8)
    assert report.steps == sum(1 for c in phases.calls if isinstance(c, tuple) and c[0] == "batch")


def test_data_ratio_trains_on_a_fraction():
    x, y = blobs([0, 1])
    sb = StreamBuffer(len(y), (1, 8, 8))
    sb.add(x, y)
    em = EpisodicMemory(0, (1, 8, 8))
    trainer = IncrementalTrainer(create_model("cnn2d", (1, 8, 8), 2, width=8), TrainConfig(epochs=1))
    report = trainer.fit(0, sb, em, data_ratio=0.25)
    assert report.sample_passes == 20


def test_learns_separable_data_and_replay_prevents_forgetting():
    torch.manual_seed(0)
    cfg = TrainConfig(epochs=8, batch_size=16, lr=0.05, seed=0)
    x0, y0 = blobs([0, 1], seed=1)
    x1, y1 = blobs([2, 3], seed=2)
    results = {}
    for replay in (False, True):
        torch.manual_seed(0)
        model = create_model("cnn2d", (1, 8, 8), 2, width=8)
        trainer = IncrementalTrainer(model, cfg)
        sb = StreamBuffer(len(y0), (1, 8, 8))
        sb.add(x0, y0)
        em = EpisodicMemory(0, (1, 8, 8))
        trainer.fit(0, sb, em)
        assert accuracy(model, x0, y0) > 0.9
        if replay:
            from miro_fakes import MemorySource
            em.rebalance(40, [0, 1], MemorySource(x0, y0), np.random.default_rng(0))
        sb = StreamBuffer(len(y1), (1, 8, 8))
        sb.add(x1, y1)
        trainer.fit(1, sb, em)
        results[replay] = accuracy(model, x0, y0)
    assert results[True] > results[False] + 0.3


def test_stop_flag_interrupts_at_batch_boundary():
    class StopAfter(TrainCallback):
        def before_batch(self, ctx: TaskContext, epoch, step):
            if ctx.steps_done >= 2:
                ctx.stopped = True

    x, y = blobs([0, 1])
    sb = StreamBuffer(len(y), (1, 8, 8))
    sb.add(x, y)
    trainer = IncrementalTrainer(create_model("cnn2d", (1, 8, 8), 2, width=8), TrainConfig(epochs=3, batch_size=8))
    report = trainer.fit(0, sb, EpisodicMemory(0, (1, 8, 8)), callbacks=[StopAfter()])
    assert report.interrupted and report.steps == 2


def test_config_validation_names_the_key():
    with pytest.raises(ConfigError, match="epochs"):
        TrainConfig(epochs=0)


def test_accuracy_matrix_metrics():
    m = AccuracyMatrix()
    m.add_row([1.0])
    m.add_row([0.6, 0.9])
    m.add_row([0.4, 0.8, 1.0])
    assert m.final_average_accuracy == pytest.approx((0.4 + 0.8 + 1.0) / 3)
    assert m.average_incremental_accuracy == pytest.approx((1.0 + 0.75 + 2.2 / 3) / 3)
    assert m.forgetting == pytest.approx(((1.0 - 0.4) + (0.9 - 0.8)) / 2)
    with pytest.raises(ValueError):
        m.add_row([1.0])
