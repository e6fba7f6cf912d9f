"""The Miro controller: profile candidate (EM, SB) configurations on copies, choose the most
cost-effective, and keep the choice inside the memory budget while the task trains.

Profiling never touches the live state (see ``trials``). Accuracy comes from the store's
held-out validation slice; energy from the active power meter's window (labelled measured or
estimated). Torch's RNG is forked so profiling does not even shift the live run's random stream.
"""
import copy
import dataclasses
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from miro_edge.controller.adapt import BudgetDecision, MemoryBudgetAdapter
from miro_edge.controller.adapt_callback import AdaptCallback
from miro_edge.controller.config import POLICIES, ControllerConfig
from miro_edge.controller.footprint import MB, MemoryBudget, bytes_per_sample, measure_overhead_bytes
from miro_edge.controller.forgetting import ForgettingModel, PerClass
from miro_edge.controller.grid import Candidate, Grid, GridInputs, build_grid, fits, max_fit
from miro_edge.controller.idle import IdleGate, IdlePolicy
from miro_edge.controller.report import choice_event, em_rule_event, grid_event, trial_event
from miro_edge.controller.scorer import Choice, NoViableCandidateError, Trial, TrialStatus, create_scorer
from miro_edge.controller.trials import (
    TrialRun,
    extrapolate_energy,
    measured,
    profile_data_ratio,
    shuffled_sb,
    validation_slice,
)
from miro_edge.errors import MiroEdgeError
from miro_edge.events import (
    ChoiceEvent,
    ForgettingEvidenceEvent,
    IdlePauseEvent,
    ProfileEnergyEvent,
    ProfileEvent,
)
from miro_edge.memory.em import EpisodicMemory
from miro_edge.memory.swap import SwapConfig, SwapWorker
from miro_edge.memory.types import SampleSource
from miro_edge.model.architectures import IncrementalClassifier
from miro_edge.recorder import Recorder
from miro_edge.train.callbacks import WorkCounterCallback
from miro_edge.train.trainer import IncrementalTrainer, TrainConfig, predict

logger = logging.getLogger(__name__)


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


@POLICIES.register("profile")
class MiroController:
    """Chooses (EM, SB) per task by profiled cost-effectiveness and adapts during training.

    ``current`` (the candidate the live run holds) is written only here: by ``profile`` and by
    ``adopt`` when the session applies a budget switch."""

    def __init__(self, config: ControllerConfig, train_config: TrainConfig, meter: Any, recorder: Recorder,
                 snapshot: Optional[Callable[[], Any]] = None) -> None:
        self.config = config
        self.train_config = train_config
        self.meter = meter
        self.recorder = recorder
        self.scorer = create_scorer(config.scorer)
        self.budget = MemoryBudget(config, snapshot)
        self.gate = IdleGate(IdlePolicy(config.idle), snapshot) if config.idle is not None and snapshot else None
        self.stop = threading.Event()  # set by the app to cancel waiting for an idle window
        self.trials: List[Trial] = []
        self.current: Optional[Candidate] = None
        self.profiled_swap_ratio = 0.0
        self._overhead: Optional[int] = None
        self._inputs: Optional[GridInputs] = None
        self._passes: Dict[Tuple[int, int], int] = {}
        self.forgetting = ForgettingModel(config.forgetting)
        self._val: Optional[Tuple[np.ndarray, np.ndarray, List[int]]] = None  # last profile's slice
        self._fixed_passes_per_run = 0.0  # profiling cost outside training, per run, in sample-passes
        self._profile_work = (0, 0)  # (sample-passes trained, runs) of the profile in progress

    # -- memory model --------------------------------------------------------------------------
    def set_memory_budget_mb(self, mb: Optional[float]) -> None:
        """Lower (or restore, with None) the memory budget; the running task adapts at its next window."""
        self.budget.set_bytes(None if mb is None else int(mb * MB))

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

    def adopt(self, candidate: Candidate) -> None:
        """The session applied ``candidate`` mid-task (a budget switch): later budget decisions
        start from it."""
        self.current = candidate

    # -- profiling -----------------------------------------------------------------------------
    def profile(self, task_id: int, model: IncrementalClassifier, em: EpisodicMemory, task_x: np.ndarray, task_y: np.ndarray,
                store: SampleSource, old_classes: Sequence[int], swap: SwapConfig) -> ProfileResult:
        """Try every fitting candidate on copies; return the scorer's choice (live state untouched).
        Trials swap like the live run (``swap``: ratio and mode), so a deterministic run profiles
        deterministically too."""
        with torch.random.fork_rng(devices=[]):  # not even the live run's random stream moves
            with self.meter.window(f"profile-task-{task_id}") as window:
                result = self._profile(task_id, model, em, task_x, task_y, store, old_classes, swap)
        # Everything profiling cost (copies, validation, worker start-up, the gaps between trials),
        # not only the trials' own windows: that is what the profile_share target is about.
        total = window.result
        passes, runs = self._profile_work
        if passes and runs and result.energy_j > 0:  # learn what each run costs besides its training
            j_per_pass = result.energy_j / passes
            self._fixed_passes_per_run = max(0.0, total.energy_j - result.energy_j) / j_per_pass / runs
        self.recorder.write(ProfileEnergyEvent(
            task_id=task_id, energy_j=total.energy_j, energy_label=total.label, energy_source=total.source,
            trial_windows_j=result.energy_j, seconds=total.duration_s, fixed_passes_per_run=self._fixed_passes_per_run))
        return dataclasses.replace(result, energy_j=total.energy_j, energy_label=total.label)

    def _profile(self, task_id: int, model: IncrementalClassifier, em: EpisodicMemory, task_x: np.ndarray,
                 task_y: np.ndarray, store: SampleSource, old_classes: Sequence[int],
                 swap: SwapConfig) -> ProfileResult:
        t0 = time.perf_counter()
        self.wait_for_idle()
        inputs, new_classes = self._task_inputs(model, task_x, task_y, store, old_classes)
        grid = build_grid(inputs, self.config.grid)
        trials = [Trial.blacklisted(c, reason) for c, reason in grid.blacklisted]
        candidates, excluded, rule_reason, spread = self._em_rule(task_id, grid, inputs, new_classes, len(em))
        trials += excluded
        runs_planned = len(candidates) + (1 if self.config.warm_start_epochs else 0)
        fixed = self._fixed_passes_per_run * runs_planned
        ratio = profile_data_ratio(self.config, [c.em_size + c.sb_size for c in candidates], len(task_y),
                                   self.train_config.epochs, fixed)
        self.recorder.write(grid_event(task_id, grid, ratio, fixed))
        energy = 0.0
        label: Optional[str] = None
        val_x, val_y = self.validation_slice(store, list(old_classes) + new_classes, task_id)
        self._val = (val_x, val_y, list(old_classes))
        skip = self._why_no_trials(candidates, fixed, spread)
        if rule_reason and skip:
            return self._without_trials(task_id, candidates, trials, skip, rule_reason, swap, t0)
        torch.manual_seed(self.train_config.seed + 7919 * task_id)
        rng = np.random.default_rng(self.train_config.seed + task_id)
        warm = copy.deepcopy(model)
        if self.config.warm_start_epochs:
            warm_sb = shuffled_sb(task_x, task_y, len(task_y), rng)
            result, _ = measured(self.meter, f"profile-warm-task-{task_id}", lambda: IncrementalTrainer(
                warm, self.train_config).fit(task_id, warm_sb, EpisodicMemory(0, task_x.shape[1:]),
                                             epochs=self.config.warm_start_epochs,
                                             data_ratio=ratio,
                                             callbacks=[WorkCounterCallback(self.meter.add_work)]))
            energy += result.energy_j
            label = result.label
            warm_passes, warm_runs = result.sample_passes, 1
        else:
            warm_passes, warm_runs = 0, 0
        runs: List[TrialRun] = []
        halving = self.config.successive_halving and self.config.trial_epochs > 1
        for cand in candidates:
            self.wait_for_idle()
            started = TrialRun.start(task_id, cand, warm, task_x, task_y, store, old_classes, new_classes,
                                     swap, ratio, rng, self.train_config, self.meter, self.recorder)
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
                run.note = f"stopped after 1 of {self.config.trial_epochs} epochs (accuracy in the lower half)"
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
        self._profile_work = (warm_passes + sum(r.passes for r in runs), warm_runs + len(runs))
        if self.config.trial_energy == "extrapolated":
            trials = extrapolate_energy(trials, self._passes, self.train_config.epochs)
        for trial in trials:
            self.recorder.write(trial_event(task_id, trial))
        choice: Optional[Choice]
        try:
            chosen = self.scorer.choose(trials)
            candidate, reason = chosen.candidate, chosen.reason + rule_reason
            choice = dataclasses.replace(chosen, reason=reason)
            event = choice_event(task_id, choice)
        except NoViableCandidateError as exc:
            choice, candidate = None, max_fit(inputs.memory_budget_bytes, inputs, self.config.grid)
            reason = f"{exc}; applying max-fit {candidate.label()} for this budget"
            logger.warning("task %d: %s", task_id, reason)
            event = ChoiceEvent(task_id, candidate.em_size, candidate.sb_size, "max_fit_fallback", reason, None)
        self.recorder.write(event)
        seconds = time.perf_counter() - t0
        self.recorder.write(ProfileEvent(task_id=task_id, energy_j=energy, energy_label=label, seconds=seconds,
                                         candidates=len(grid.candidates), blacklisted=len(grid.blacklisted),
                                         data_ratio=ratio))
        logger.info("task %d: profiled %d candidates in %.1fs (%.2f J %s): %s", task_id, len(grid.candidates),
                    seconds, energy, label, reason)
        self.trials = trials
        self.current = candidate
        self.profiled_swap_ratio = swap.swap_ratio
        return ProfileResult(task_id, candidate, reason, choice, trials, energy, label or "estimated", seconds)

    def _why_no_trials(self, candidates: Sequence[Candidate], fixed: float, spread: float) -> str:
        """Why trials cannot pay for themselves this task ('' when they can): the forgetting
        rule predicts every allowed candidate within ``tolerance`` of the others (trials that
        short could not separate them either, and the cheapest is what the scorer's cut picks),
        or what the last profile spent per run outside training, times the runs planned,
        already exceeds ``max_profile_share`` of the cheapest allowed candidate's training."""
        if len(candidates) <= 1:
            return "one candidate allowed"
        if spread <= self.config.forgetting.tolerance:
            return f"every allowed candidate is predicted within {spread:.3f} of the others"
        cap = self.config.max_profile_share
        cheapest = min(c.em_size + c.sb_size for c in candidates) * self.train_config.epochs
        if cap is not None and fixed >= cap * cheapest:
            return (f"the profile's fixed cost ({fixed:.0f} sample-pass equivalents, measured on the last profile) exceeds "
                    "max_profile_share of the cheapest allowed training")
        return ""

    def _without_trials(self, task_id: int, candidates: Sequence[Candidate], trials: List[Trial], why: str,
                        rule_reason: str, swap: SwapConfig, t0: float) -> ProfileResult:
        """Trials cannot pay for themselves (``_why_no_trials``): apply the cheapest candidate
        the forgetting rule allows, untried."""
        candidate = min(candidates, key=lambda c: (c.em_size + c.sb_size, c.memory_bytes))
        reason = f"{candidate.label()} chosen without trials, the cheapest allowed candidate: {why}.{rule_reason}"
        trials = trials + [Trial(c, None, None, "none", None, TrialStatus.SKIPPED, "profiling skipped: " + reason)
                           for c in candidates]
        for trial in trials:
            self.recorder.write(trial_event(task_id, trial))
        self.recorder.write(ChoiceEvent(task_id, candidate.em_size, candidate.sb_size, "forgetting_rule", reason, None))
        seconds = time.perf_counter() - t0
        self.recorder.write(ProfileEvent(task_id=task_id, energy_j=0.0, energy_label=None, seconds=seconds,
                                         candidates=len(candidates), blacklisted=0, data_ratio=0.0))
        self._profile_work = (0, 0)
        self.trials = trials
        self.current = candidate
        self.profiled_swap_ratio = swap.swap_ratio
        return ProfileResult(task_id, candidate, reason, None, trials, 0.0, "estimated", seconds)

    def _em_rule(self, task_id: int, grid: Grid, inputs: GridInputs, new_classes: Sequence[int],
                 held_em: int) -> Tuple[List[Candidate], List[Trial], str, float]:
        """The candidates the forgetting rule lets this task try, the ones it excludes (recorded
        as skipped trials, never trained: that saves their profiling too), the reason and the
        spread of the allowed candidates' predicted accuracies. With
        ``keep_em`` the EM size held now joins the grid (each SB size that fits), so keeping it
        never forces the EM up to the next grid point."""
        candidates = list(grid.candidates)
        if not self.config.forgetting.enabled or not candidates:
            return candidates, [], "", float("inf")
        if self.config.forgetting.keep_em and held_em > 0 and held_em not in grid.em_sizes:
            for sb in grid.sb_sizes:
                extra = inputs.candidate(held_em, sb)
                if fits(extra, inputs.memory_budget_bytes):
                    candidates.append(extra)
        rule = self.forgetting.rule(task_id, [c.key for c in candidates], PerClass(dict(inputs.class_counts)),
                                    len(new_classes), held_em)
        self.recorder.write(em_rule_event(rule))
        allowed = set(rule.allowed)
        kept = [c for c in candidates if c.key in allowed]
        skipped = [Trial(c, None, None, "none", None, TrialStatus.SKIPPED, f"not allowed by the forgetting rule ({rule.reason})") for c in candidates if c.key not in allowed]
        spread = max(rule.predicted[c.key] for c in kept) - min(rule.predicted[c.key] for c in kept)
        return kept, skipped, " Forgetting rule: " + rule.reason + ".", spread

    def observe_task(self, task_id: int, model: nn.Module, em_size: int, sb_size: int) -> None:
        """After a task trained with ``em_size`` EM and ``sb_size`` SB samples: the old vs new classes' accuracy on
        the profile's validation slice, as evidence for the forgetting model (``kind:
        forgetting_evidence``). Called by the training callback when a fit ends normally."""
        if self._val is None or not self._val[2] or em_size <= 0:
            return
        val_x, val_y, old = self._val
        pred = predict(model, val_x)
        is_old = np.isin(val_y, old)
        if not is_old.any() or is_old.all():
            return
        old_acc = float((pred[is_old] == val_y[is_old]).mean())
        new_acc = float((pred[~is_old] == val_y[~is_old]).mean())
        new = len(set(val_y[~is_old].tolist()))
        obs = self.forgetting.observe(task_id, em_size / len(old), sb_size / new, old_acc, new_acc)
        self.recorder.write(ForgettingEvidenceEvent(
            task_id=task_id, em_size=em_size, sb_size=sb_size, per_class=em_size / len(old), sb_per_class=sb_size / new,
            old_accuracy=old_acc, new_accuracy=new_acc, tau=None if obs is None else obs.tau,
            model_tau=self.forgetting.tau))

    def validation_slice(self, store: SampleSource, classes: Sequence[int],
                         task_id: int) -> Tuple[np.ndarray, np.ndarray]:
        """The class-balanced held-out samples trials are scored on (``val_per_class`` each)."""
        return validation_slice(store, classes, self.config.val_per_class, task_id)

    # -- during training -----------------------------------------------------------------------
    def wait_for_idle(self) -> bool:
        """Block until the idle policy allows work (no-op without a policy). Returns False only
        when ``stop`` was set while waiting (the app is shutting down)."""
        if self.gate is None:
            return True
        while not self.stop.is_set():
            result = self.gate.wait_until_allowed(self.stop, poll_s=self.config.idle_poll_s, timeout_s=3600.0)
            if result.waited_s > 0:
                self.recorder.write(IdlePauseEvent(waited_s=result.waited_s, allowed=result.allowed,
                                                   reason=result.reason))
            if result.allowed:
                return True
        return False

    def training_callback(self, task_id: int, worker: Optional[SwapWorker]) -> AdaptCallback:
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
            logger.warning("memory budget %.2f MB fits no configuration: %s", budget / MB, exc)
            return None
