"""Per-device rate limits and quotas of the device API (docs/security.md): one device cannot flood the control
plane with calls or fill its database with log lines.

In memory, per server process (a restart forgives; several servers over one database each count on their own).
A refusal is ``429 ThrottlingException`` with ``Retry-After`` (seconds); the device backs off and keeps its
lines.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from panoflow.controlplane.errors import ApiError

__all__ = ["DEFAULT_DEVICE_LOG_BYTES_PER_DAY", "DEFAULT_DEVICE_RATE", "DailyQuota", "DeviceLimits",
           "RateLimiter", "throttled"]

#: device API calls per second a device may make on average (a sync every few seconds, log and metric batches)
DEFAULT_DEVICE_RATE = 10.0
#: log bytes a device may upload per UTC day (the database keeps its newest 10,000 lines anyway)
DEFAULT_DEVICE_LOG_BYTES_PER_DAY = 256 * 1024 * 1024
_DAY = 86_400.0


def throttled(message: str, retry_after: float) -> ApiError:
    """A ``ThrottlingException`` (429) that says when to come back."""
    return ApiError("ThrottlingException", message, RetryAfter=max(1, math.ceil(retry_after)))


class RateLimiter:
    """A token bucket per key: ``rate`` calls per second on average, bursts of ``burst``."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic):
        self.rate, self.burst, self.clock = rate, burst, clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> float | None:
        """Spend one call of ``key``: None when allowed, else the seconds until one is."""
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens < 1:
                self._buckets[key] = (tokens, now)
                return (1 - tokens) / self.rate
            self._buckets[key] = (tokens - 1, now)
            return None


class DailyQuota:
    """At most ``limit`` units per key per UTC day."""

    def __init__(self, limit: int, clock: Callable[[], float] = time.time):
        self.limit, self.clock = limit, clock
        self._used: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()

    def take(self, key: str, amount: int) -> float | None:
        """Spend ``amount`` of ``key``'s day: None when it fits, else the seconds until the next day
        starts."""
        now = self.clock()
        day = int(now // _DAY)
        with self._lock:
            used_day, used = self._used.get(key, (day, 0))
            if used_day != day:
                used = 0
            if used + amount > self.limit:
                return (day + 1) * _DAY - now
            self._used[key] = (day, used + amount)
            return None


@dataclass
class DeviceLimits:
    """The limits one control plane applies to each device."""

    rate: float = DEFAULT_DEVICE_RATE
    log_bytes_per_day: int = DEFAULT_DEVICE_LOG_BYTES_PER_DAY
    calls: RateLimiter = field(init=False)
    logs: DailyQuota = field(init=False)

    def __post_init__(self) -> None:
        self.calls = RateLimiter(self.rate, max(self.rate * 10, 20.0))
        self.logs = DailyQuota(self.log_bytes_per_day)

    def call(self, device_id: str) -> None:
        """Count one call of ``device_id`` (429 beyond the rate)."""
        wait = self.calls.take(device_id)
        if wait is not None:
            raise throttled(f"too many calls from this device (at most {self.rate:g} per second on average): "
                            "retry later", wait)

    def log_bytes(self, device_id: str, size: int) -> None:
        """Count ``size`` log bytes of ``device_id`` (429 beyond the daily quota)."""
        wait = self.logs.take(device_id, size)
        if wait is not None:
            raise throttled(f"this device sent its {self.log_bytes_per_day} bytes of log lines for today: "
                            "the rest waits until the next UTC day", wait)
