"""``miro-edge sweep``: a grid of fixed (EM, SB, swap ratio) runs under memory budgets, and the
report that checks Miro's four observations against them (energy vs EM+SB, best split per
budget, accuracy vs budget, swap ratio's cost and knee)."""
from miro_edge.sweep.grid import Point, SweepConfig, plan, point_key, split_budget
from miro_edge.sweep.run import SweepPlan, SweepProgress, load_sweep, make_plan, run_point, run_sweep

__all__ = ["Point", "SweepConfig", "SweepPlan", "SweepProgress", "load_sweep", "make_plan", "plan", "point_key",
           "run_point", "run_sweep", "split_budget"]
