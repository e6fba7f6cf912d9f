"""The Miro controller loop: profile candidate (EM, SB) configurations on copies, choose the most
cost-effective, apply it, and adapt while the task trains.

Profiling never touches the live state: every trial trains a deep copy of one shared warm start
(the live model briefly trained on the new task) with its own EM and SB built from the store
(reads only), on a ``data_ratio`` fraction for ``trial_epochs``. Accuracy comes from the store's
held-out validation slice; energy from the active power meter's window (labelled measured or
estimated). Torch's RNG is forked so profiling does not even shift the live run's random stream.
"""
import copy
import dataclasses
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from miro_edge.config import field, require
from miro_edge.errors import MiroEdgeError
from miro_edge.controller.adapt import BudgetDecision, MemoryBudgetAdapter, SwapAdapterConfig, SwapRatioAdapter
from miro_edge.controller.grid import Candidate, GridConfig, GridInputs, build_grid, describe_grid, max_fit
from miro_edge.controller.idle import IdleGate, IdlePolicy, IdlePolicyConfig
from miro_edge.controller.report import ChoiceEvent, SwapRatioEvent, TrialEvent
from miro_edge.controller.scorer import (Choice, NoViableCandidateError, ScorerConfig, Trial, TrialStatus,
                                         create_scorer)
from miro_edge.memory.em import EpisodicMemory, balanced_quota
from miro_edge.memory.sb import StreamBuffer
from miro_edge.memory.swap import SwapConfig, SwapWorker
from miro_edge.memory.types import SampleSource
from miro_edge.recorder import Recorder
from miro_edge.train.callbacks import (BatchInfo, TaskContext, TrainCallback, WorkCounterCallback,
                                       replay_callbacks)
from miro_edge.train.trainer import IncrementalTrainer, TrainConfig, accuracy
from miro_edge.utils.registry import Registry

logger = logging.getLogger(__name__)
_MB = 1024.0 * 1024.0
POLICIES = Registry("controller policy")  # type: Registry[MiroController]


@dataclass(frozen=True)
class ControllerConfig:
    enabled: bool = field(False, help="choose (EM, SB) per task; off = the fixed memory config")
    policy: str = field("profile", help="'profile' (Miro: profiled cost-effectiveness) or 'max_fit' (baseline)")
    memory_budget_mb: float = field(16.0, help="memory for EM + SB + model/optimizer/activations, in MB")
    follow_available_memory: bool = field(False, help="also cap the budget at a fraction of the memory "
                                                      "the OS reports available (cgroup-aware)")
    available_memory_fraction: float = field(0.5, help="fraction of available memory usable when following it")
    start_task: int = field(0, help="first task that is profiled (task 0 has nothing to replay, so only SB "
                                    "sizes are tried there)")
    data_ratio: float = field(0.12, help="largest fraction of EM and SB each trial trains on (class-balanced)")
    max_profile_share: Optional[float] = field(0.04, help="cap on a task's profiling work (warm start + trials, "
                                               "in sample-passes) as a fraction of the cheapest candidate's "
                                               "full training; trials train on less than data_ratio when needed. "
                                               "null: always data_ratio")
    trial_epochs: int = field(2, help="epochs of each trial")
    warm_start_epochs: int = field(1, help="epochs of the shared warm start on the new task (data_ratio of SB)")
    val_per_class: int = field(20, help="validation samples per class read from the store's held-out slice")
    successive_halving: bool = field(True, help="train every trial 1 epoch, then only the better half by "
                                                "accuracy the remaining trial_epochs - 1 (saves profiling energy)")
    trial_energy: str = field("extrapolated", help="'extrapolated': score each candidate by its trial's "
                              "measured joules per sample-pass (shrunk toward the profile's median) times the "
                              "sample-passes of its full training; 'raw': by the trial's own joules")
    adapt_window_steps: int = field(4, help="minibatches per window of the swap-congestion and budget checks")
    grid: GridConfig = field(default_factory=GridConfig, help="the candidate grid")
    scorer: ScorerConfig = field(default_factory=ScorerConfig, help="how a candidate is chosen")
    swap_adapt: SwapAdapterConfig = field(default_factory=SwapAdapterConfig, help="swap-ratio congestion rule")
    idle: Optional[IdlePolicyConfig] = field(None, help="idle-window policy; null = the device is always idle")
    idle_poll_s: float = field(1.0, help="how often a paused trainer re-checks the idle policy")

    def __post_init__(self) -> None:
        require(self.memory_budget_mb > 0, "controller.memory_budget_mb", "must be > 0")
        require(self.policy in POLICIES, "controller.policy", "must be one of {}".format(", ".join(POLICIES.names())))
        require(0 < self.available_memory_fraction <= 1, "controller.available_memory_fraction", "must be in (0, 1]")
        require(self.start_task >= 0, "controller.start_task", "must be >= 0")
        require(0 < self.data_ratio <= 1, "controller.data_ratio", "must be in (0, 1]")
        require(self.max_profile_share is None or self.max_profile_share > 0, "controller.max_profile_share",
                "must be > 0 or null")
        require(self.trial_epochs >= 1, "controller.trial_epochs", "must be >= 1")
        require(self.warm_start_epochs >= 0, "controller.warm_start_epochs", "must be >= 0")
        require(self.val_per_class >= 1, "controller.val_per_class", "must be >= 1")
        require(self.trial_energy in ("extrapolated", "raw"), "controller.trial_energy",
                "must be 'extrapolated' or 'raw'")
        require(self.adapt_window_steps >= 1, "controller.adapt_window_steps", "must be >= 1")
        require(self.idle_poll_s > 0, "controller.idle_poll_s", "must be > 0")


def bytes_per_sample(sample_shape: Sequence[int], dtype_bytes: int = 4) -> int:
    """RAM one EM/SB slot costs: the sample plus its label and store record id (int64 each)."""
    return int(np.prod(sample_shape)) * dtype_bytes + 16


def measure_overhead_bytes(model: nn.Module, input_shape: Sequence[int], batch_size: int,
                           num_classes: int) -> int:
    """Fixed training memory, measured once: weights, gradients and momentum (3x the parameter
    bytes) plus the activations a minibatch keeps for backward (module outputs, measured with
    forward hooks on a real forward pass of a copy)."""
    probe = copy.deepcopy(model)
    if hasattr(probe, "grow"):
        probe.grow(num_classes)
    params = sum(p.numel() * p.element_size() for p in probe.parameters())
    sizes = []  # type: List[int]

    def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
        if isinstance(output, torch.Tensor):
            sizes.append(output.numel() * output.element_size())

    handles = [m.register_forward_hook(hook) for m in probe.modules() if not list(m.children())]
    try:
        probe.train()
        with torch.no_grad():
            probe(torch.zeros((max(2, batch_size),) + tuple(input_shape)))
    finally:
        for h in handles:
            h.remove()
    return int(3 * params + sum(sizes))


def profile_data_ratio(config: ControllerConfig, trial_sizes: Sequence[int], task_size: int,
                       train_epochs: int) -> float:
    """The fraction of EM and SB the warm start and the trials train on for one task.

    ``config.data_ratio`` unless the planned profiling work (warm start on the task, every trial's
    first epoch, the better half's remaining epochs under successive halving) would exceed
    ``max_profile_share`` of the cheapest candidate's full training (``min(trial_sizes) x
    train_epochs`` sample-passes); then the fraction that meets that cap. Trials are noisy
    either way, and a profile that costs more than the choice can save defeats its purpose.
    """
    if config.max_profile_share is None or not trial_sizes:
        return config.data_ratio
    sizes = sorted(trial_sizes)
    if config.successive_halving and config.trial_epochs > 1 and len(sizes) > 2:
        keep = (len(sizes) + 1) // 2
        trials = sum(sizes) + (config.trial_epochs - 1) * keep * float(np.mean(sizes))  # who is kept is unknown
    else:
        trials = float(config.trial_epochs * sum(sizes))
    planned = config.warm_start_epochs * task_size + trials  # sample-passes at a fraction of 1
    cap = config.max_profile_share * sizes[0] * train_epochs / planned
    return float(min(config.data_ratio, cap))


@dataclass(frozen=True)
class ProfileResult:
    """The candidate to apply and why; ``choice`` is None when no trial could be scored and the
    controller fell back to max-fit for the budget."""

    task_id: int
    candidate: Candidate
    reason: str
    choice: Optional[Choice]
    trials: List[Trial]
    energy_j: float
    energy_label: str
    seconds: float


class _Budget:
    """The current memory budget: the config's, lowered by API calls or available memory."""

    def __init__(self, config: ControllerConfig, snapshot: Optional[Callable[[], Any]]) -> None:
        self._config = config
        self._snapshot = snapshot
        self._override = None  # type: Optional[int]
        self._lock = threading.Lock()

    def set_bytes(self, value: Optional[int]) -> None:
        with self._lock:
            self._override = value

    def bytes(self) -> int:
        with self._lock:
            budget = int(self._config.memory_budget_mb * _MB) if self._override is None else self._override
        if self._config.follow_available_memory and self._snapshot is not None:
            avail = self._snapshot().mem_available_bytes
            budget = min(budget, int(avail * self._config.available_memory_fraction))
        return budget


@POLICIES.register("profile")
class MiroController:
    """Chooses (EM, SB) per task by profiled cost-effectiveness and adapts during training."""

    def __init__(self, config: ControllerConfig, train_config: TrainConfig, meter: Any, recorder: Recorder,
                 snapshot: Optional[Callable[[], Any]] = None) -> None:
        self.config = config
        self.train_config = train_config
        self.meter = meter
        self.recorder = recorder
        self.scorer = create_scorer(config.scorer)
        self.budget = _Budget(config, snapshot)
        self.gate = IdleGate(IdlePolicy(config.idle), snapshot) if config.idle is not None and snapshot else None
        self.stop = threading.Event()  # set by the app to cancel waiting for an idle window
        self.trials = []  # type: List[Trial]
        self.current = None  # type: Optional[Candidate]
        self.profiled_swap_ratio = 0.0
        self._overhead = None  # type: Optional[int]
        self._inputs = None  # type: Optional[GridInputs]
        self._passes = {}  # type: Dict[Tuple[int, int], int]

    # -- memory model --------------------------------------------------------------------------
    def set_memory_budget_mb(self, mb: Optional[float]) -> None:
        """Lower (or restore, with None) the memory budget; the running task adapts at its next window."""
        self.budget.set_bytes(None if mb is None else int(mb * _MB))

    def _task_inputs(self, model: nn.Module, task_x: np.ndarray, task_y: np.ndarray, store: SampleSource,
                     old_classes: Sequence[int]) -> Tuple[GridInputs, List[int]]:
        """What this task's grid is derived from (kept for budget fallbacks), and its new classes.
        The fixed overhead is measured once, on the first task profiled."""
        new_classes = sorted(set(int(c) for c in np.unique(task_y)))
        counts = store.class_counts()
        shape = task_x.shape[1:]
        if self._overhead is None:
            self._overhead = measure_overhead_bytes(model, shape, self.train_config.batch_size,
                                                    max(list(old_classes) + new_classes) + 1)
        self._inputs = GridInputs(self.budget.bytes(), bytes_per_sample(shape), self._overhead,
                                  {c: counts.get(c, 0) for c in old_classes}, len(task_y))
        return self._inputs, new_classes

    def active_for(self, task_id: int) -> bool:
        return self.config.enabled and task_id >= self.config.start_task

    # -- profiling -----------------------------------------------------------------------------
    def profile(self, task_id: int, model: nn.Module, em: EpisodicMemory, task_x: np.ndarray, task_y: np.ndarray,
                store: SampleSource, old_classes: Sequence[int], swap_ratio: float) -> ProfileResult:
        """Try every fitting candidate on copies; return the scorer's choice (live state untouched)."""
        with torch.random.fork_rng(devices=[]):  # not even the live run's random stream moves
            return self._profile(task_id, model, em, task_x, task_y, store, old_classes, swap_ratio)

    def _profile(self, task_id: int, model: nn.Module, em: EpisodicMemory, task_x: np.ndarray,
                 task_y: np.ndarray, store: SampleSource, old_classes: Sequence[int],
                 swap_ratio: float) -> ProfileResult:
        t0 = time.perf_counter()
        self.wait_for_idle()
        inputs, new_classes = self._task_inputs(model, task_x, task_y, store, old_classes)
        grid = build_grid(inputs, self.config.grid)
        ratio = profile_data_ratio(self.config, [c.em_size + c.sb_size for c in grid.candidates], len(task_y),
                                   self.train_config.epochs)
        self.recorder.record("grid", task_id=task_id, data_ratio=ratio, **describe_grid(grid))
        trials = [Trial.blacklisted(c, reason) for c, reason in grid.blacklisted]
        energy = 0.0
        label = None  # type: Optional[str]
        val_x, val_y = self._validation_slice(store, list(old_classes) + new_classes, task_id)
        torch.manual_seed(self.train_config.seed + 7919 * task_id)
        rng = np.random.default_rng(self.train_config.seed + task_id)
        warm = copy.deepcopy(model)
        if self.config.warm_start_epochs:
            warm_sb = self._sb(task_x, task_y, len(task_y), rng)
            result, _ = self._measured("profile-warm-task-{}".format(task_id), lambda: IncrementalTrainer(
                warm, self.train_config).fit(task_id, warm_sb, EpisodicMemory(0, task_x.shape[1:]),
                                             epochs=self.config.warm_start_epochs,
                                             data_ratio=ratio,
                                             callbacks=[WorkCounterCallback(self.meter.add_work)]))
            energy += result.energy_j
            label = result.label
        runs = []  # type: List[_TrialRun]
        halving = self.config.successive_halving and self.config.trial_epochs > 1
        for cand in grid.candidates:
            self.wait_for_idle()
            started = self._start_trial(task_id, cand, warm, task_x, task_y, store, old_classes, new_classes,
                                        swap_ratio, ratio, rng)
            if isinstance(started, Trial):
                trials.append(started)
                continue
            started.train(1 if halving else self.config.trial_epochs, val_x, val_y)
            runs.append(started)
        if halving and len(runs) > 2:
            # successive halving: only the better half by accuracy trains the remaining epochs
            ranked = sorted(runs, key=lambda r: (-r.accuracy, r.candidate.memory_bytes))
            keep = (len(ranked) + 1) // 2
            for run in ranked[:keep]:
                self.wait_for_idle()
                run.train(self.config.trial_epochs - 1, val_x, val_y)
            for run in ranked[keep:]:
                run.note = "stopped after 1 of {} epochs (accuracy in the lower half)".format(self.config.trial_epochs)
        elif halving:
            for run in runs:
                run.train(self.config.trial_epochs - 1, val_x, val_y)
        for run in runs:
            trial = run.finish()
            if trial.status == TrialStatus.OK:
                self._passes[run.candidate.key] = run.passes
                energy += run.energy_j
                label = run.label
            trials.append(trial)
        if self.config.trial_energy == "extrapolated":
            trials = self._extrapolate(trials)
        for trial in trials:
            event = TrialEvent.from_trial(task_id, trial)
            self.recorder.record(event.KIND, **event.fields())
        try:
            choice = self.scorer.choose(trials)  # type: Optional[Choice]
            candidate, reason = choice.candidate, choice.reason
            event = ChoiceEvent.from_choice(task_id, choice)
        except NoViableCandidateError as exc:
            choice, candidate = None, max_fit(inputs.memory_budget_bytes, inputs, self.config.grid)
            reason = "{}; applying max-fit {} for this budget".format(exc, candidate.label())
            logger.warning("task %d: %s", task_id, reason)
            event = ChoiceEvent(task_id, candidate.em_size, candidate.sb_size, "max_fit_fallback", reason, None)
        self.recorder.record(event.KIND, **event.fields())
        seconds = time.perf_counter() - t0
        self.recorder.record("profile", task_id=task_id, energy_j=energy, energy_label=label, seconds=seconds,
                             candidates=len(grid.candidates), blacklisted=len(grid.blacklisted), data_ratio=ratio)
        logger.info("task %d: profiled %d candidates in %.1fs (%.2f J %s): %s", task_id, len(grid.candidates),
                    seconds, energy, label, reason)
        self.trials = trials
        self.current = candidate
        self.profiled_swap_ratio = swap_ratio
        return ProfileResult(task_id, candidate, reason, choice, trials, energy, label or "estimated", seconds)

    def _start_trial(self, task_id: int, cand: Candidate, warm: nn.Module, task_x: np.ndarray,
                     task_y: np.ndarray, store: SampleSource, old_classes: Sequence[int],
                     new_classes: Sequence[int], swap_ratio: float, ratio: float,
                     rng: np.random.Generator) -> Any:
        """A ready ``_TrialRun`` for ``cand``, or a degenerate ``Trial`` when it cannot be tried.

        The trial trains on a ``ratio`` fraction of the candidate's EM and SB, drawn
        class-balanced so every class keeps at least one sample (a plain random fraction of a
        small EM would silently drop classes and make small candidates look worse)."""
        if cand.em_size and cand.em_size < len(old_classes):
            return Trial(cand, None, None, "none", None, TrialStatus.DEGENERATE,
                         "EM {} cannot hold one sample of each of the {} old classes".format(
                             cand.em_size, len(old_classes)))
        em_used = max(len(old_classes), int(round(cand.em_size * ratio))) if cand.em_size else 0
        sb_used = max(len(new_classes), int(round(cand.sb_size * ratio)))
        trial_em = EpisodicMemory(0, task_x.shape[1:])
        if em_used:
            trial_em.rebalance(em_used, old_classes, store, rng)
        trial_sb = self._balanced_sb(task_x, task_y, sb_used, rng)
        return _TrialRun(self, task_id, cand, copy.deepcopy(warm), trial_em, trial_sb, store, swap_ratio,
                         int(rng.integers(1 << 31)))

    def _extrapolate(self, trials: List[Trial]) -> List[Trial]:
        """Replace each ok trial's joules by the joules its full training would take: its measured
        J per sample-pass (geometric mean with the median over this profile's trials, which damps
        timing noise of very short trials) times (em_size + sb_size) x epochs. The profiling
        energy actually spent is accounted separately from the raw windows."""
        rates = {t.candidate.key: t.energy_j / self._passes[t.candidate.key] for t in trials
                 if t.status == TrialStatus.OK and self._passes.get(t.candidate.key)}
        if not rates:
            return trials
        pooled = float(np.median(list(rates.values())))
        out = []
        for t in trials:
            rate = rates.get(t.candidate.key)
            if rate is None:
                out.append(t)
                continue
            passes = (t.candidate.em_size + t.candidate.sb_size) * self.train_config.epochs
            out.append(dataclasses.replace(t, energy_j=float(np.sqrt(rate * pooled)) * passes))
        return out

    def _measured(self, name: str, fn: Callable[[], Any]) -> Tuple[Any, Any]:
        with self.meter.window(name) as window:
            out = fn()
        return window.result, out

    @staticmethod
    def _balanced_sb(x: np.ndarray, y: np.ndarray, size: int, rng: np.random.Generator) -> StreamBuffer:
        """An SB of ``size`` samples of the task, class-balanced, random within each class."""
        labels, counts = np.unique(y, return_counts=True)
        quota = balanced_quota(size, labels.tolist(), {int(c): int(n) for c, n in zip(labels, counts)})
        rows = np.concatenate([rng.choice(np.flatnonzero(y == c), size=q, replace=False)
                               for c, q in quota.items() if q > 0])
        rows = rng.permutation(rows)
        sb = StreamBuffer(max(1, len(rows)), x.shape[1:])
        sb.add(x[rows], y[rows])
        return sb

    @staticmethod
    def _sb(x: np.ndarray, y: np.ndarray, size: int, rng: np.random.Generator) -> StreamBuffer:
        sb = StreamBuffer(max(1, size), x.shape[1:], np.random.default_rng(int(rng.integers(1 << 31))))
        order = rng.permutation(len(y))
        sb.add(x[order], y[order])
        return sb

    def _validation_slice(self, store: SampleSource, classes: Sequence[int], task_id: int) -> Tuple[np.ndarray, np.ndarray]:
        """Class-balanced samples from the store's held-out split (never trained on)."""
        rng = np.random.default_rng(10007 + task_id)
        ids = []  # type: List[int]
        for c in classes:
            ids.extend(store.sample_ids(c, self.config.val_per_class, rng, split="val"))
        samples = store.read_many(ids)
        if not samples:
            return np.zeros((0,) + tuple(store.sample_shape or ())), np.zeros(0, dtype=np.int64)
        return np.stack([s.x for s in samples]).astype(np.float32), np.array([s.label for s in samples])

    # -- during training -----------------------------------------------------------------------
    def wait_for_idle(self) -> bool:
        """Block until the idle policy allows work (no-op without a policy). Returns False only
        when ``stop`` was set while waiting (the app is shutting down)."""
        if self.gate is None:
            return True
        while not self.stop.is_set():
            result = self.gate.wait_until_allowed(self.stop, poll_s=self.config.idle_poll_s, timeout_s=3600.0)
            if result.waited_s > 0:
                self.recorder.record("idle_pause", waited_s=result.waited_s, allowed=result.allowed,
                                     reason=result.reason)
            if result.allowed:
                return True
        return False

    def training_callback(self, task_id: int, worker: Optional[SwapWorker]) -> "AdaptCallback":
        return AdaptCallback(self, task_id, worker)

    def budget_decision(self) -> Optional[BudgetDecision]:
        """A switch decision when the current candidate no longer fits the budget, else None."""
        if self.current is None:
            return None
        budget = self.budget.bytes()
        if self.current.memory_bytes <= budget:
            return None
        decision = MemoryBudgetAdapter(self.scorer).decide(budget, self.trials, self.current)
        if decision.needs_fallback:
            fallback = self._fallback(budget)
            decision = BudgetDecision(fallback, True, decision.reason + "; using max-fit {}".format(
                fallback.label() if fallback else "none"), None)
        return decision

    def _fallback(self, budget: int) -> Optional[Candidate]:
        """No profiled candidate fits: the largest EM and SB that do (max-fit for this budget)."""
        if self._inputs is None:
            return None
        try:
            return max_fit(budget, self._inputs.with_budget(budget), self.config.grid)
        except MiroEdgeError as exc:
            logger.warning("memory budget %.2f MB fits no configuration: %s", budget / _MB, exc)
            return None


class _TrialRun:
    """One candidate's trial: its model copy, EM and SB, trained in measured windows (possibly in
    two rounds, see successive halving) and evaluated on the validation slice."""

    def __init__(self, ctl: MiroController, task_id: int, candidate: Candidate, model: nn.Module,
                 em: EpisodicMemory, sb: StreamBuffer, store: SampleSource, swap_ratio: float, seed: int) -> None:
        self.ctl = ctl
        self.task_id = task_id
        self.candidate = candidate
        self.model = model
        self.trainer = IncrementalTrainer(model, ctl.train_config)
        self.em, self.sb, self.store = em, sb, store
        self.swap = SwapConfig(swap_ratio=swap_ratio)
        self.seed = seed
        self.energy_j = 0.0
        self.passes = 0
        self.seconds = 0.0
        self.label = ""
        self.accuracy = float("nan")
        self.val_samples = 0
        self.note = ""

    def train(self, epochs: int, val_x: np.ndarray, val_y: np.ndarray) -> None:
        def run() -> Any:
            with replay_callbacks(self.em, self.store, self.swap, self.seed, self.ctl.meter.add_work) as (_, cbs):
                return self.trainer.fit(self.task_id, self.sb, self.em, epochs=epochs, callbacks=cbs)

        t0 = time.perf_counter()
        c = self.candidate
        result, _ = self.ctl._measured("trial-task-{}-em{}-sb{}".format(self.task_id, c.em_size, c.sb_size), run)
        self.seconds += time.perf_counter() - t0
        self.energy_j += result.energy_j
        self.passes += result.sample_passes
        self.label = result.label
        self.accuracy = accuracy(self.model, val_x, val_y)
        self.val_samples = len(val_y)
        self.ctl.recorder.record("trial_window", task_id=self.task_id, em_size=c.em_size, sb_size=c.sb_size,
                                 **result.to_dict())

    def finish(self) -> Trial:
        if not np.isfinite(self.accuracy) or self.energy_j <= 0:
            return Trial(self.candidate, None, None, "none", self.seconds, TrialStatus.DEGENERATE,
                         "no validation samples or no energy measured")
        return Trial(self.candidate, self.accuracy, self.energy_j, self.label, self.seconds, reason=self.note,
                     val_samples=self.val_samples)


class AdaptCallback(TrainCallback):
    """Every window: feed swap stats to the congestion rule and check the memory budget; an
    over-budget candidate stops the fit at the batch boundary so the session can switch."""

    def __init__(self, controller: MiroController, task_id: int, worker: Optional[SwapWorker]) -> None:
        self.controller = controller
        self.task_id = task_id
        self.worker = worker
        self.adapter = SwapRatioAdapter(controller.config.swap_adapt, worker.swap_ratio) if worker else None
        self.switch = None  # type: Optional[BudgetDecision]
        self._checked_budget = None  # type: Optional[int]

    def before_batch(self, ctx: TaskContext, epoch: int, step: int) -> None:
        if not self.controller.wait_for_idle():  # pause at the batch boundary, resume where we stopped
            ctx.stopped = True

    def after_batch(self, ctx: TaskContext, batch: BatchInfo) -> None:
        if ctx.steps_done % self.controller.config.adapt_window_steps:
            return
        if self.worker is not None and self.adapter is not None:
            change = self.adapter.observe(self.worker.take_window())
            if change is not None:
                self.worker.swap_ratio = change.new
                event = SwapRatioEvent.from_change(self.task_id, change)
                self.controller.recorder.record(event.KIND, **event.fields())
        budget = self.controller.budget.bytes()
        if budget == self._checked_budget:  # decide once per budget value, not every window
            return
        self._checked_budget = budget
        decision = self.controller.budget_decision()
        if decision is not None and decision.candidate is None:
            self.controller.recorder.record("budget_infeasible", task_id=self.task_id, budget_bytes=budget,
                                            reason=decision.reason)
        if decision is not None and decision.candidate is not None:
            self.switch = decision
            ctx.stopped = True


@POLICIES.register("max_fit")
class MaxFitPolicy(MiroController):
    """The baseline a user gets by giving replay all the memory they have: per task, the largest
    EM and SB that fit the budget (``grid.max_fit``), no profiling. It adapts to budget drops
    and I/O congestion exactly like the controller, so comparisons isolate the choice."""

    def profile(self, task_id: int, model: nn.Module, em: EpisodicMemory, task_x: np.ndarray, task_y: np.ndarray,
                store: SampleSource, old_classes: Sequence[int], swap_ratio: float) -> ProfileResult:
        inputs, _ = self._task_inputs(model, task_x, task_y, store, old_classes)
        candidate = max_fit(inputs.memory_budget_bytes, inputs, self.config.grid)
        reason = "max-fit: the largest EM and SB within {:.2f} MB".format(inputs.memory_budget_bytes / _MB)
        event = ChoiceEvent(task_id, candidate.em_size, candidate.sb_size, "max_fit", reason, None)
        self.recorder.record(event.KIND, **event.fields())
        self.current = candidate
        self.profiled_swap_ratio = swap_ratio
        return ProfileResult(task_id, candidate, reason, None, [], 0.0, self.meter.label, 0.0)


def create_controller(config: ControllerConfig, train_config: TrainConfig, meter: Any, recorder: Recorder,
                      snapshot: Optional[Callable[[], Any]] = None) -> MiroController:
    """The controller the config's ``policy`` names."""
    return POLICIES.create(config.policy, config, train_config, meter, recorder, snapshot)
