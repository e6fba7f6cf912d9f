"""The controller loop on real parts: store, EM, SB, trainer, swap worker, calibrated meter."""
import dataclasses
import hashlib
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import torch

from miro_edge.controller import ControllerConfig, MiroController, measure_overhead_bytes
from miro_edge.controller.adapt import SwapAdapterConfig
from miro_edge.controller.forgetting import ForgettingConfig
from miro_edge.controller.grid import GridConfig
from miro_edge.controller.scorer import TrialStatus
from miro_edge.data.holdout import holdout_splits
from miro_edge.energy import open_meter
from miro_edge.memory.em import EpisodicMemory
from miro_edge.memory.sb import StreamBuffer
from miro_edge.memory.store import SampleStore
from miro_edge.memory.swap import SwapConfig, SwapWorker
from miro_edge.model.architectures import create_model
from miro_edge.recorder import Recorder
from miro_edge.train.callbacks import SwapCallback, TrainCallback
from miro_edge.train.trainer import IncrementalTrainer, TrainConfig

SHAPE = (1, 8, 8)
NO_EM_RULE = ForgettingConfig(enabled=False)  # these tests are about the trials, not the EM rule
TRAIN = TrainConfig(model="cnn2d", width=8, epochs=2, batch_size=16, seed=0)


def blobs(classes, n=60, seed=0, shape=SHAPE):
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for c in classes:
        centre = np.zeros(shape, np.float32)
        centre.reshape(-1)[c::7] = 2.0
        xs.append(centre + 0.5 * rng.standard_normal((n,) + shape).astype(np.float32))
        ys.append(np.full(n, c, dtype=np.int64))
    return np.concatenate(xs), np.concatenate(ys)


@pytest.fixture
def world(tmp_path):
    """A store holding task 0 (classes 0, 1) and task 1 (classes 2, 3), a model trained on task 0
    and an EM over the old classes: the state at the start of profiling task 1."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    store = SampleStore(tmp_path / "store", sample_shape=SHAPE, dtype=np.float32)
    x0, y0 = blobs([0, 1], seed=1)
    x1, y1 = blobs([2, 3], seed=2)
    store.ingest_batch(x0, y0, 0, splits=holdout_splits(y0, 0.2, rng))
    splits1 = holdout_splits(y1, 0.2, rng)
    store.ingest_batch(x1, y1, 1, splits=splits1)
    model = create_model("cnn2d", SHAPE, 2, width=8)
    sb = StreamBuffer(len(y0), SHAPE)
    sb.add(x0, y0)
    em = EpisodicMemory(0, SHAPE)
    IncrementalTrainer(model, TRAIN).fit(0, sb, em)
    em.rebalance(20, [0, 1], store, rng)
    train1 = np.array([s == "train" for s in splits1])
    yield store, model, em, sb, x1[train1], y1[train1]
    store.close()


def controller_for(recorder, meter, **overrides):
    cfg = ControllerConfig(enabled=True, memory_budget_mb=1.0, data_ratio=0.5, trial_epochs=1, val_per_class=10,
                           grid=GridConfig(em_steps=2, sb_steps=2, min_em_per_class=5, min_sb_size=16),
                           **dict(dict(forgetting=NO_EM_RULE, max_profile_share=None), **overrides))
    return MiroController(cfg, TRAIN, meter, recorder)


def digest_store(path: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(path.iterdir()):
        if f.name.startswith("lock") or f.name.endswith("-shm"):
            continue  # lock tables, not data
        h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()


def state_digest(model, em, sb, store) -> dict:
    return {
        "model": {k: v.clone() for k, v in model.state_dict().items()},
        "em": (em.data.clone(), em.labels.clone(), em.record_ids.copy(), len(em)),
        "sb": (sb.data.clone(), sb.labels.clone(), len(sb)),
        "store": (digest_store(store.path), store.class_counts(), store.class_counts("val"), len(store)),
    }


def test_profiling_leaves_live_state_byte_identical_and_records_everything(world):
    store, model, em, sb, tx, ty = world
    before = state_digest(model, em, sb, store)
    torch_rng = torch.get_rng_state()
    with Recorder() as rec, open_meter("model") as meter:
        ctl = controller_for(rec, meter)
        result = ctl.profile(1, model, em, tx, ty, store, [0, 1], SwapConfig(swap_ratio=1.0))
    after = state_digest(model, em, sb, store)
    for key, value in before["model"].items():
        assert torch.equal(value, after["model"][key]), key
    for a, b in zip(before["em"][:2] + before["sb"][:2], after["em"][:2] + after["sb"][:2]):
        assert torch.equal(a, b)
    np.testing.assert_array_equal(before["em"][2], after["em"][2])
    assert before["store"] == after["store"]
    assert torch.equal(torch_rng, torch.get_rng_state())
    ok = [t for t in result.trials if t.status == TrialStatus.OK]
    assert len(ok) >= 2 and all(t.energy_label == "estimated" and t.energy_j > 0 for t in ok)
    assert result.choice is not None and result.candidate == result.choice.candidate
    assert result.candidate in [t.candidate for t in ok]
    kinds = [e["kind"] for e in rec.events]
    assert kinds.count("trial") == len(result.trials) and "choice" in kinds and "profile" in kinds
    windows = rec.of_kind("trial_window")
    assert len(windows) == len(ok) and all(w["label"] == "estimated" for w in windows)
    assert result.energy_j > sum(w["energy_j"] for w in windows)  # raw trial windows + the warm start
    # scored energy is extrapolated to each candidate's full training: bigger configs cost more
    by_size = sorted(ok, key=lambda t: t.candidate.em_size + t.candidate.sb_size)
    assert by_size[0].energy_j < by_size[-1].energy_j


def test_blacklist_degenerate_trials_and_max_fit_fallback(world, tmp_path):
    store, model, em, sb, tx, ty = world
    overhead = measure_overhead_bytes(model, SHAPE, TRAIN.batch_size, 4)
    budget_mb = (overhead + 60 * (64 * 4 + 16)) / 2.0 ** 20  # room for ~60 samples
    # a store without a validation slice: no trial can be scored
    x0, y0 = blobs([0, 1], seed=1)
    with SampleStore(tmp_path / "noval", sample_shape=SHAPE, dtype=np.float32) as bare:
        bare.ingest_batch(x0, y0, 0)
        bare.ingest_batch(tx, ty, 1)
        with Recorder() as rec, open_meter("model") as meter:
            cfg = ControllerConfig(enabled=True, memory_budget_mb=budget_mb, data_ratio=0.2, trial_epochs=1,
                                   val_per_class=5, grid=GridConfig(em_steps=3, sb_steps=2, min_em_per_class=5,
                                                                    min_sb_size=16), forgetting=NO_EM_RULE)
            ctl = MiroController(cfg, TRAIN, meter, rec)
            result = ctl.profile(1, model, em, tx, ty, bare, [0, 1], SwapConfig())
    budget = int(budget_mb * 2 ** 20)
    statuses = [t.status for t in result.trials]
    assert TrialStatus.BLACKLISTED in statuses
    assert all(t.candidate.memory_bytes > budget for t in result.trials if t.status == TrialStatus.BLACKLISTED)
    assert TrialStatus.DEGENERATE in statuses and TrialStatus.OK not in statuses  # reported, never scored
    assert all("no validation samples" in t.reason for t in result.trials if t.status == TrialStatus.DEGENERATE)
    assert result.choice is None and result.candidate.memory_bytes <= budget
    event = rec.of_kind("choice")[-1]
    assert event["scorer"] == "max_fit_fallback" and "degenerate" in event["reason"]


def test_trial_subsets_keep_every_class(world):
    store, model, em, sb, tx, ty = world
    from miro_edge.controller.grid import Candidate
    from miro_edge.controller.trials import TrialRun
    with Recorder() as rec, open_meter("model") as meter:
        ctl = controller_for(rec, meter)
        val_x, val_y = ctl.validation_slice(store, [0, 1, 2, 3], 1)
        rng = np.random.default_rng(0)
        run = TrialRun.start(1, Candidate(10, 16, 0), model, tx, ty, store, [0, 1], [2, 3], SwapConfig(), 0.5, rng,
                             TRAIN, meter, rec)
        run.train(1, val_x, val_y)
        trial = run.finish()
        tiny = TrialRun.start(1, Candidate(1, 16, 0), model, tx, ty, store, [0, 1], [2, 3], SwapConfig(), 0.5, rng,
                              TRAIN, meter, rec)
    # 50% of EM 10 and SB 16: 5 + 8 samples, every class represented, one epoch
    assert trial.status == TrialStatus.OK and rec.of_kind("trial_window")[-1]["sample_passes"] == 5 + 8
    assert sorted(run.em.class_counts()) == [0, 1] and sorted(set(run.sb.labels[: len(run.sb)].tolist())) == [2, 3]
    assert tiny.status == TrialStatus.DEGENERATE and "one sample of each" in tiny.reason


def test_successive_halving_trains_only_the_better_half_further(world):
    store, model, em, sb, tx, ty = world
    with Recorder() as rec, open_meter("model") as meter:
        cfg = ControllerConfig(enabled=True, memory_budget_mb=1.0, data_ratio=0.5, trial_epochs=2, val_per_class=10,
                               grid=GridConfig(em_steps=2, sb_steps=2, min_em_per_class=5, min_sb_size=16),
                               max_profile_share=None, forgetting=NO_EM_RULE)
        result = MiroController(cfg, TRAIN, meter, rec).profile(1, model, em, tx, ty, store, [0, 1], SwapConfig())
    ok = [t for t in result.trials if t.status == TrialStatus.OK]
    stopped = [t for t in ok if "stopped after 1 of 2 epochs" in t.reason]
    assert len(ok) == 4 and len(stopped) == 2
    finalists = [t for t in ok if t not in stopped]
    # 4 first-round windows + 2 second-round windows
    assert len(rec.of_kind("trial_window")) == 6
    assert min(t.accuracy for t in finalists) >= 0.0 and result.candidate in [t.candidate for t in ok]


class SlowStore:
    """Wraps the real store and adds read latency on demand (I/O congestion)."""

    def __init__(self, store):
        self.store = store
        self.latency_s = 0.0
        self.sample_shape = store.sample_shape
        self.dtype = store.dtype

    def class_counts(self, split="train"):
        return self.store.class_counts(split)

    def sample_ids(self, label, n, rng, split="train"):
        return self.store.sample_ids(label, n, rng, split)

    def read_many(self, ids):
        if self.latency_s:
            time.sleep(self.latency_s)
        return self.store.read_many(ids)

    def draw(self, counts, rng, split="train"):
        if self.latency_s:
            time.sleep(self.latency_s)
        return self.store.draw(counts, rng, split)


def test_congestion_halves_swap_ratio_and_recovers_when_latency_goes(world):
    store, model, em, sb, tx, ty = world
    slow = SlowStore(store)
    sb1 = StreamBuffer(len(ty), SHAPE)
    sb1.add(tx, ty)

    class Latency(TrainCallback):  # congested for the first 40 steps, then clear
        def before_batch(self, ctx, epoch, step):
            slow.latency_s = 0.03 if ctx.steps_done < 40 else 0.0

    adapt_cfg = SwapAdapterConfig(max_read_latency_s=0.01, congested_windows=2, clear_windows=2, recover_step=0.5)
    with Recorder() as rec, open_meter("model") as meter:
        ctl = controller_for(rec, meter, swap_adapt=adapt_cfg, adapt_window_steps=2)
        with SwapWorker(em, slow, SwapConfig(mode="async", swap_ratio=1.0, linger_s=0.0, coalesce=1)) as worker:
            adapt = ctl.training_callback(1, worker)
            IncrementalTrainer(model, dataclasses.replace(TRAIN, epochs=12, batch_size=8)).fit(
                1, sb1, em, callbacks=[Latency(), SwapCallback(worker), adapt])
    changes = [(e["old"], e["new"]) for e in rec.of_kind("swap_ratio")]
    assert changes, "no swap-ratio change recorded"
    assert changes[0] == (1.0, 0.5)  # halved first
    assert min(new for _, new in changes) < 1.0
    assert changes[-1][1] == 1.0  # recovered to the profiled value once reads were fast again
    assert all(e["reason"] for e in rec.of_kind("swap_ratio"))


def test_memory_budget_drop_mid_task_switches_and_rss_stays_under_budget(tmp_path):
    """Large samples (48 KB IMU-like windows) so EM and SB dominate the learner's memory; the
    budget is lowered mid-task: the run switches to a smaller config at a batch boundary, and
    the process RSS above its warmed-up baseline stays under the new budget."""
    from controller_harness import TaskRunner

    from miro_edge.config import from_dict
    from miro_edge.data.sources import ArraySource
    from miro_edge.data.stream import ClassIncrementalStream
    from miro_edge.session import SessionConfig

    shape = (4, 3000)
    x, y = blobs([0, 1, 2, 3], n=400, seed=3, shape=shape)
    stream = ClassIncrementalStream(ArraySource("big", x, y), 2, seed=0)
    tasks = list(stream)  # the app's incoming data exists before the learner runs
    config = from_dict(SessionConfig, {
        "data": {"dataset": "npz", "classes_per_task": 2},
        "memory": {"em_size": 500, "swap": {"swap_ratio": 0.0}, "val_fraction": 0.05},
        "train": {"model": "cnn1d", "width": 4, "epochs": 2, "batch_size": 64},
        "controller": {"enabled": True, "memory_budget_mb": 512.0, "data_ratio": 0.1, "trial_epochs": 1,
                       "warm_start_epochs": 0, "adapt_window_steps": 1,
                       "grid": {"em_steps": 2, "sb_steps": 1, "min_em_per_class": 100, "min_sb_size": 500}}})
    process = psutil.Process()
    state = {}

    class DropBudget(TrainCallback):
        def after_batch(self, ctx, batch):
            if ctx.task_id == 1 and ctx.steps_done == 2 and "budget" not in state:
                state["before_mb"] = (process.memory_info().rss - state["base"]) / 2.0 ** 20
                state["held_before"] = controller.current.memory_bytes
                per_sample = int(np.prod(shape)) * 4 + 16
                overhead = controller.current.memory_bytes - per_sample * (
                    controller.current.em_size + controller.current.sb_size)
                state["budget"] = overhead + per_sample * 500  # below every profiled candidate
                controller.set_memory_budget_mb(state["budget"] / 2.0 ** 20)

    class RssProbe(TrainCallback):
        def before_batch(self, ctx, epoch, step):
            if "budget" in state and controller.current.memory_bytes <= state["budget"]:
                state.setdefault("after", []).append(process.memory_info().rss - state["base"])

    with Recorder(tmp_path / "r.jsonl") as rec, open_meter("model") as meter, \
            SampleStore(tmp_path / "store", sample_shape=shape, dtype=np.float32) as store:
        controller = MiroController(config.controller, config.train, meter, rec)
        session = TaskRunner(config, store, stream, rec, meter, [DropBudget(), RssProbe()], controller)
        session.run_task(tasks[0])
        state["base"] = process.memory_info().rss - session.em.nbytes - session.sb.data.nelement() * 4
        session.run_task(tasks[1])
        switches = rec.of_kind("budget_switch")
        state["held_after"] = controller.current.memory_bytes
    assert len(switches) == 1, "the budget drop was not acted on"
    budget = state["budget"]
    assert switches[0]["memory_bytes"] <= budget and switches[0]["reason"]
    assert controller.current.memory_bytes <= budget
    assert session.em.nbytes + session.sb.data.nelement() * 4 <= budget
    assert state["held_before"] > budget >= state["held_after"]  # EM + SB + overhead really shrank
    assert state["after"] and max(state["after"]) <= budget, (state["before_mb"], budget / 2.0 ** 20,
                                                               max(state["after"]) / 2.0 ** 20)


def test_training_pauses_outside_idle_windows_and_resumes_where_it_stopped(world):
    from types import SimpleNamespace

    from miro_edge.controller.idle import IdlePolicyConfig

    store, model, em, sb, tx, ty = world
    sb1 = StreamBuffer(len(ty), SHAPE)
    sb1.add(tx, ty)
    loads = iter([0.0] * 5 + [0.9] * 4 + [0.0] * 10000)  # the live path gets busy after 5 checks
    snapshot = lambda: SimpleNamespace(live_load=next(loads), on_external_power=True)  # noqa: E731
    steps = []

    class Steps(TrainCallback):
        def after_batch(self, ctx, batch):
            steps.append((batch.epoch, batch.step))

    with Recorder() as rec, open_meter("model") as meter:
        cfg = ControllerConfig(enabled=True, idle=IdlePolicyConfig(max_live_load=0.5), idle_poll_s=0.01)
        ctl = MiroController(cfg, TRAIN, meter, rec, snapshot)
        report = IncrementalTrainer(model, TRAIN).fit(1, sb1, em, callbacks=[ctl.training_callback(1, None), Steps()])
    assert ctl.gate.pauses == 1 and rec.of_kind("idle_pause")
    assert not report.interrupted and report.epochs_completed == TRAIN.epochs
    # every minibatch of every epoch ran exactly once: the pause lost nothing
    per_epoch = -(-(len(sb1) + len(em)) // TRAIN.batch_size)
    assert len(steps) == len(set(steps)) == TRAIN.epochs * per_epoch


def test_stop_while_waiting_for_idle_ends_the_fit_cleanly(world):
    from types import SimpleNamespace

    from miro_edge.controller.idle import IdlePolicyConfig

    store, model, em, sb, tx, ty = world
    busy = lambda: SimpleNamespace(live_load=1.0, on_external_power=True)  # noqa: E731
    with Recorder() as rec, open_meter("model") as meter:
        ctl = MiroController(ControllerConfig(enabled=True, idle=IdlePolicyConfig(max_live_load=0.5),
                                              idle_poll_s=0.01), TRAIN, meter, rec, busy)
        import threading
        threading.Timer(0.2, ctl.stop.set).start()
        report = IncrementalTrainer(model, TRAIN).fit(1, sb, em, callbacks=[ctl.training_callback(1, None)])
    assert report.interrupted and report.steps == 0


def test_profile_that_cannot_pay_for_itself_applies_the_cheapest_allowed_candidate_untried(world):
    """When the previous profile's measured cost outside training, for the runs planned, already
    exceeds max_profile_share of the cheapest allowed training, nothing is trained: the cheapest
    candidate the forgetting rule allows is applied, and every candidate is recorded with why."""
    store, model, em, sb, tx, ty = world
    with Recorder() as rec, open_meter("model") as meter:
        ctl = controller_for(rec, meter, forgetting=ForgettingConfig(), max_profile_share=0.03)
        ctl._fixed_passes_per_run = 1e6  # as measured on an earlier, expensive profile
        result = ctl.profile(1, model, em, tx, ty, store, [0, 1], SwapConfig())
    rule = rec.of_kind("em_rule")[-1]
    allowed = [tuple(int(v) for v in k.split("/")) for k in rule["allowed"]]
    assert result.candidate.key == min(allowed, key=sum)
    assert rec.of_kind("trial_window") == [] and result.energy_j >= 0
    choice = rec.of_kind("choice")[-1]
    assert choice["scorer"] == "forgetting_rule" and "without trials" in choice["reason"]
    assert all(t["status"] in ("skipped", "blacklisted") and t["reason"] for t in rec.of_kind("trial"))
