"""Per-stream and per-node counters the runtime keeps for the status line, the run summary and /metrics."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

__all__ = ["LatencyWindow", "StreamCounter"]


class LatencyWindow:
    """The last ``size`` latencies (seconds); percentiles on demand. Bounded memory."""

    def __init__(self, size: int = 2048):
        self._values: deque[float] = deque(maxlen=size)
        self.count = 0

    def add(self, seconds: float) -> None:
        self._values.append(seconds)
        self.count += 1

    def percentile(self, q: float) -> float:
        if not self._values:
            return 0.0
        ordered = sorted(self._values)
        index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
        return ordered[index]


@dataclass
class StreamCounter:
    """Frames a source produced, and a rate over the last few seconds."""

    stream_id: str
    produced: int = 0
    started: float = field(default_factory=time.perf_counter)
    _marks: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=8))
    error: str = ""
    first: float = 0.0  # perf_counter of the first and the latest frame
    last: float = 0.0

    def tick(self) -> None:
        now = time.perf_counter()
        if not self.produced:
            self.first = now
        self.last = now
        self.produced += 1

    def active_fps(self) -> float:
        """Frames per second between the first and the latest frame (steady state: no start-up, no
        shutdown)."""
        span = self.last - self.first
        return (self.produced - 1) / span if self.produced > 1 and span > 0 else 0.0

    def fps(self) -> float:
        """Recent frame rate (call about once a second)."""
        now = time.perf_counter()
        self._marks.append((now, self.produced))
        t0, n0 = self._marks[0]
        if now - t0 < 1e-6:
            elapsed = now - self.started
            return self.produced / elapsed if elapsed > 0 else 0.0
        return (self.produced - n0) / (now - t0)
