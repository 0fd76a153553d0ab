"""Capture time of a picture: its RTP timestamp mapped to wall-clock time.

An RTCP sender report pairs an NTP wall-clock time with an RTP timestamp of the same instant; with one, any
RTP timestamp of that stream maps to the camera's wall clock (``ntp + (rtp - rtp_sr) / clock_rate``, with
32-bit wrap-around). Until the first report arrives (some cameras never send one) the arrival time is used
instead.
"""

from __future__ import annotations

__all__ = ["RtpClock"]

_WRAP = 1 << 32
_HALF = 1 << 31


class RtpClock:
    """Maps RTP timestamps of one stream (one RTSP session) to seconds since the epoch."""

    def __init__(self, clock_rate: int = 90000, *, use_reports: bool = True):
        if clock_rate <= 0:
            raise ValueError(f"RTP clock rate must be positive, got {clock_rate}")
        self.clock_rate = clock_rate
        self.use_reports = use_reports
        self._anchor: tuple[float, int] | None = None
        self.reports = 0

    @property
    def synchronised(self) -> bool:
        """True once a sender report has been seen (and reports are used)."""
        return self._anchor is not None

    def on_sender_report(self, ntp_time: float, rtp_ts: int) -> None:
        """Record an RTCP SR: ``ntp_time`` in seconds since the Unix epoch, ``rtp_ts`` the matching
        timestamp."""
        self.reports += 1
        if self.use_reports and ntp_time > 0:
            self._anchor = (ntp_time, rtp_ts & (_WRAP - 1))

    def wall_time(self, rtp_ts: int, arrival: float) -> float:
        """Capture time of the picture with timestamp ``rtp_ts`` that started arriving at ``arrival``."""
        if self._anchor is None:
            return arrival
        ntp, base = self._anchor
        delta = ((rtp_ts - base + _HALF) % _WRAP) - _HALF  # signed distance, wrap-around safe
        return ntp + delta / self.clock_rate
