"""Rate and latency meters for the heads-up line (no Qt)."""

from __future__ import annotations

import time
from collections import deque


class RateMeter:
    """Events per second over a sliding window, robust to irregular arrival."""

    def __init__(self, window_s: float = 2.0) -> None:
        self.window_s = window_s
        self._times: deque[float] = deque()

    def tick(self, now: float | None = None) -> None:
        now = time.perf_counter() if now is None else now
        self._times.append(now)
        while self._times and now - self._times[0] > self.window_s:
            self._times.popleft()

    def reset(self) -> None:
        self._times.clear()

    @property
    def count(self) -> int:
        return len(self._times)

    def rate(self, now: float | None = None) -> float:
        now = time.perf_counter() if now is None else now
        while self._times and now - self._times[0] > self.window_s:
            self._times.popleft()
        if len(self._times) < 2:
            return 0.0
        span = self._times[-1] - self._times[0]
        return (len(self._times) - 1) / span if span > 0 else 0.0


class MeanMeter:
    """Running mean of the last N samples (latency in ms)."""

    def __init__(self, n: int = 30) -> None:
        self._values: deque[float] = deque(maxlen=n)

    def add(self, value: float) -> None:
        self._values.append(value)

    def reset(self) -> None:
        self._values.clear()

    @property
    def mean(self) -> float:
        return sum(self._values) / len(self._values) if self._values else 0.0

