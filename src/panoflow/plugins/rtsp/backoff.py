"""Reconnection policy and state reporting for cameras.

:class:`Backoff` gives exponential delays with jitter, capped: ``retry_min * 2**n`` scaled by a random factor
in ``[0.5, 1]``, never above ``retry_max``. A camera that streamed resets it, so a restart of the camera is
followed by a quick retry. :class:`CameraState` logs each state change exactly once (a camera refusing a
password every second logs one line, not one per attempt); the URL it logs is always redacted.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Backoff", "CameraState"]


@dataclass
class Backoff:
    """Exponential back-off with jitter, capped at ``cap`` seconds."""

    initial: float = 0.05
    cap: float = 1.0
    jitter: float = 0.5
    rng: random.Random = field(default_factory=random.Random)
    attempts: int = 0

    def next_delay(self) -> float:
        """The delay before the next attempt; each call counts one failed attempt."""
        base = min(self.cap, self.initial * 2.0 ** min(self.attempts, 32))
        self.attempts += 1
        return base * (1.0 - self.jitter * self.rng.random())

    def reset(self) -> None:
        self.attempts = 0


class CameraState:
    """Logs ``camera_*`` events once per change of (state, reason), bound to the stream id and redacted URL.

    States: ``connecting`` (first attempt), ``streaming`` (first frame of a session), ``down`` (retrying, with
    a reason), ``stopped``. Repeating the same failure is silent; ``failures`` counts every attempt anyway.
    """

    def __init__(self, log: Any):
        self._log = log
        self.state = ""
        self.reason = ""
        self.failures = 0
        self.sessions = 0

    def connecting(self) -> None:
        if not self.state:
            self._change("connecting", "", "info")

    def streaming(self, **info: Any) -> None:
        self.sessions += 1
        self._change("streaming", "", "info", **info)

    def down(self, reason: str, *, retry_in: float) -> None:
        self.failures += 1
        self._change("down", reason, "warning", retry_in_s=round(retry_in, 3))

    def stopped(self, **info: Any) -> None:
        self._change("stopped", "", "info", **info)

    def _change(self, state: str, reason: str, level: str, **info: Any) -> None:
        if (state, reason) == (self.state, self.reason):
            return
        self.state, self.reason = state, reason
        fields = {"reason": reason, **info} if reason else info
        getattr(self._log, level)(f"camera_{state}", **fields)
