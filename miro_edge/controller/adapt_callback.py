"""The controller's hook into a live fit: pause outside idle windows, feed swap statistics to
the congestion rule, stop at a batch boundary when the memory budget no longer fits, and hand
the trained model to the forgetting evidence when the fit ends."""
from typing import TYPE_CHECKING, Optional

from miro_edge.controller.adapt import BudgetDecision, SwapRatioAdapter
from miro_edge.controller.report import swap_ratio_event
from miro_edge.events import BudgetInfeasibleEvent
from miro_edge.memory.swap import SwapWorker
from miro_edge.train.callbacks import BatchInfo, TaskContext, TrainCallback

if TYPE_CHECKING:  # pragma: no cover
    from miro_edge.controller.miro import MiroController


class AdaptCallback(TrainCallback):
    """Every window: feed swap stats to the congestion rule and check the memory budget; an
    over-budget candidate stops the fit at the batch boundary so the session can switch."""

    def __init__(self, controller: "MiroController", task_id: int, worker: Optional[SwapWorker]) -> None:
        self.controller = controller
        self.task_id = task_id
        self.worker = worker
        # The congestion rule reacts to read latency, i.e. to timing; a deterministic run keeps
        # its ratio (late reads make the trainer wait instead, counted in SwapStats.wait_s).
        self.adapter = (SwapRatioAdapter(controller.config.swap_adapt, worker.swap_ratio)
                        if worker is not None and worker.MODE == "async" else None)
        self.switch: Optional[BudgetDecision] = None
        self._checked_budget: Optional[int] = None

    def after_task(self, ctx: TaskContext) -> None:
        if not ctx.stopped:  # a fit cut for a budget switch continues; evidence comes at its end
            self.controller.observe_task(self.task_id, ctx.model, len(ctx.em), len(ctx.sb))

    def before_batch(self, ctx: TaskContext, epoch: int, step: int) -> None:
        if not self.controller.wait_for_idle():  # pause at the batch boundary, resume where we stopped
            ctx.stopped = True

    def after_batch(self, ctx: TaskContext, batch: BatchInfo) -> None:
        if ctx.steps_done % self.controller.config.adapt_window_steps:
            return
        if self.worker is not None and self.adapter is not None:
            change = self.adapter.observe(self.worker.take_window())
            if change is not None:
                self.worker.set_swap_ratio(change.new)
                self.controller.recorder.write(swap_ratio_event(self.task_id, change))
        budget = self.controller.budget.bytes()
        if budget == self._checked_budget:  # decide once per budget value, not every window
            return
        self._checked_budget = budget
        decision = self.controller.budget_decision()
        if decision is not None and decision.candidate is None:
            self.controller.recorder.write(BudgetInfeasibleEvent(task_id=self.task_id, budget_bytes=budget,
                                                                 reason=decision.reason))
        if decision is not None and decision.candidate is not None:
            self.switch = decision
            ctx.stopped = True
