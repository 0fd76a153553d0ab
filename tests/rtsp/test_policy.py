"""Back-off, state logging and the RTP clock: the small policies behind reconnection and capture time."""

from __future__ import annotations

import random

import structlog
from hypothesis import given
from hypothesis import strategies as st

from panoflow.plugins.rtsp.backoff import Backoff, CameraState
from panoflow.plugins.rtsp.clock import RtpClock


@given(initial=st.floats(0.001, 1.0), cap=st.floats(0.01, 2.0), seed=st.integers(0, 2**32))
def test_backoff_grows_with_jitter_and_never_exceeds_the_cap(initial: float, cap: float, seed: int) -> None:
    backoff = Backoff(initial=min(initial, cap), cap=cap, rng=random.Random(seed))
    delays = [backoff.next_delay() for _ in range(40)]
    assert all(0 < d <= cap for d in delays)
    assert delays[-1] >= cap / 2  # it reached the cap (jitter takes at most half)
    backoff.reset()
    assert backoff.next_delay() <= min(initial, cap)


def test_default_backoff_reaches_the_camera_fast() -> None:
    backoff = Backoff(rng=random.Random(1))
    delays = [backoff.next_delay() for _ in range(10)]
    assert sum(delays[:4]) < 0.75 and max(delays) <= 1.0


def test_state_changes_logged_once() -> None:
    with structlog.testing.capture_logs() as logs:
        state = CameraState(structlog.get_logger("t").bind(stream_id="cam"))
        state.connecting()
        for _ in range(5):
            state.down("authentication failed", retry_in=0.5)
        state.down("cannot connect", retry_in=1.0)
        state.streaming(size="320x240")
        # a new session after a restart: logged again (state went down between)
        state.streaming(size="320x240")
        state.down("closed", retry_in=0.1)
        state.streaming(size="320x240")
        state.stopped(frames=3)
    assert [(e["event"], e.get("reason")) for e in logs] == [
        ("camera_connecting", None), ("camera_down", "authentication failed"), ("camera_down",
                                                                                "cannot connect"),
        ("camera_streaming", None), ("camera_down", "closed"), ("camera_streaming", None),
        ("camera_stopped", None),
    ]
    assert logs[1]["log_level"] == "warning" and logs[1]["stream_id"] == "cam"
    assert state.failures == 7 and state.sessions == 3


def test_clock_without_reports_uses_arrival() -> None:
    clock = RtpClock(90000)
    assert clock.wall_time(12345, 1700000000.25) == 1700000000.25 and not clock.synchronised


def test_clock_maps_rtp_time_with_sender_reports_and_wraps() -> None:
    clock = RtpClock(90000)
    clock.on_sender_report(1700000000.0, 2**32 - 9000)  # 0.1 s before the 32-bit wrap
    assert clock.synchronised
    assert abs(clock.wall_time(2**32 - 9000 + 3000, 0.0) - 1700000000.0 - 1 / 30) < 1e-6
    assert abs(clock.wall_time(9000, 0.0) - 1700000000.2) < 1e-6  # after the wrap
    assert abs(clock.wall_time(2**32 - 18000, 0.0) - 1699999999.9) < 1e-6  # before the report


def test_clock_can_ignore_reports() -> None:
    clock = RtpClock(90000, use_reports=False)
    clock.on_sender_report(1700000000.0, 0)
    assert clock.wall_time(9000, 5.0) == 5.0 and clock.reports == 1
