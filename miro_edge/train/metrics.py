"""Continual-learning metrics over an accuracy matrix ``acc[i][j]``: accuracy on task j's test
samples after training task i (j <= i)."""
from typing import Dict, List

import numpy as np


class AccuracyMatrix:
    """Accumulates per-task accuracies; computes final/average-incremental accuracy and forgetting."""

    def __init__(self) -> None:
        self.rows: List[List[float]] = []

    def add_row(self, accuracies: List[float]) -> None:
        if len(accuracies) != len(self.rows) + 1:
            raise ValueError(f"row {len(self.rows)} needs {len(self.rows) + 1} accuracies, got {len(accuracies)}")
        self.rows.append([float(a) for a in accuracies])

    def average_accuracy(self, i: int) -> float:
        """Mean accuracy over tasks 0..i after training task i."""
        return float(np.mean(self.rows[i]))

    @property
    def final_average_accuracy(self) -> float:
        return self.average_accuracy(len(self.rows) - 1) if self.rows else float("nan")

    @property
    def average_incremental_accuracy(self) -> float:
        return float(np.mean([self.average_accuracy(i) for i in range(len(self.rows))])) if self.rows else float("nan")

    @property
    def forgetting(self) -> float:
        """Mean over old tasks of (best earlier accuracy - final accuracy); 0 with one task."""
        if len(self.rows) < 2:
            return 0.0
        last = self.rows[-1]
        drops = [max(self.rows[i][j] for i in range(j, len(self.rows) - 1)) - last[j]
                 for j in range(len(self.rows) - 1)]
        return float(np.mean(drops))

    def summary(self) -> Dict[str, float]:
        return {"final_average_accuracy": self.final_average_accuracy,
                "average_incremental_accuracy": self.average_incremental_accuracy,
                "forgetting": self.forgetting}
