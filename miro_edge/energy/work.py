"""Work reported by the trainer and the swap worker while a meter runs.

Measured meters only record it (windows report it, for calibration); the calibrated model turns it
into estimated energy.
"""
import threading
from typing import Tuple

from miro_edge.errors import InputError


class WorkCounter:
    """Cumulative ``(sample_passes, bytes_read, flops)``; thread-safe and cheap."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sample_passes = 0
        self._bytes_read = 0
        self._flops = 0.0

    def add(self, sample_passes: int = 0, bytes_read: int = 0, flops: float = 0.0) -> None:
        """The trainer reports the samples that went through forward+backward and their
        floating-point operations (counted from the model, :mod:`miro_edge.train.flops`); the swap
        worker and loaders the bytes read from the store."""
        if sample_passes < 0 or bytes_read < 0 or not flops >= 0:
            raise InputError(f"add_work: counts must be >= 0, got sample_passes={sample_passes}, bytes_read={bytes_read}, flops={flops}")
        with self._lock:
            self._sample_passes += int(sample_passes)
            self._bytes_read += int(bytes_read)
            self._flops += float(flops)

    def done(self) -> Tuple[int, int, float]:
        """Cumulative ``(sample_passes, bytes_read, flops)`` since the counter was created."""
        with self._lock:
            return self._sample_passes, self._bytes_read, self._flops
