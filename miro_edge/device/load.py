"""The live path's load as a number in [0, 1]: the inference loop sets it, the idle policy reads it."""
import math
import threading
import time
from typing import Optional

from miro_edge.errors import InputError


class LoadGauge:
    """A thread-safe number in [0, 1] the live inference loop publishes (0 = idle, 1 = saturated).

    E.g. the fraction of each frame period spent in inference, or queue depth / capacity.
    """

    def __init__(self, value: float = 0.0) -> None:
        self._lock = threading.Lock()
        self._value = 0.0
        self._updated_s = None  # type: Optional[float]
        if value:
            self.set(value)

    def set(self, value: float) -> None:
        value = float(value)
        if math.isnan(value) or value < 0.0:
            raise InputError("live load must be a number in [0, 1], got {!r}".format(value))
        with self._lock:
            self._value = min(1.0, value)
            self._updated_s = time.monotonic()

    def get(self) -> float:
        with self._lock:
            return self._value

    @property
    def updated_s(self) -> Optional[float]:
        """Monotonic time of the last ``set`` (None if never set)."""
        with self._lock:
            return self._updated_s
