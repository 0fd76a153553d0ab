"""Camera URIs: schemes, transports, options, camera query parameters kept, credentials never shown."""

from __future__ import annotations

import pytest

from panoflow.plugins.rtsp import RtspSource
from panoflow.plugins.rtsp.options import parse_rtsp_uri

SECRET = "hunter2"


def test_defaults_tcp_and_credentials() -> None:
    s = parse_rtsp_uri(f"rtsp://admin:{SECRET}@cam.local/Streaming/Channels/101")
    assert (s.host, s.port, s.username, s.password) == ("cam.local", 554, "admin", SECRET)
    assert s.url == "rtsp://cam.local/Streaming/Channels/101"
    assert (s.transport, s.backend) == ("tcp", "aiortsp")
    assert s.options["downscale"] == (1920, 1080) and s.options["retry_max"] <= 2.0
    assert SECRET not in s.redacted() and SECRET not in repr(s)
    assert s.url_with_credentials() == f"rtsp://admin:{SECRET}@cam.local/Streaming/Channels/101"


@pytest.mark.parametrize(
    ("uri", "transport", "backend"),
    [
        ("rtsp://h/x?transport=udp", "udp", "aiortsp"),
        ("rtspt://h/x", "tcp", "aiortsp"),
        ("rtsp+ffmpeg://h/x?transport=udp", "udp", "ffmpeg"),
        ("rtsp://h/x?backend=ffmpeg", "tcp", "ffmpeg"),
    ],
)
def test_schemes(uri: str, transport: str, backend: str) -> None:
    s = parse_rtsp_uri(uri)
    assert (s.transport, s.backend, s.url) == (transport, backend, "rtsp://h/x")


def test_camera_query_stays_options_go() -> None:
    s = parse_rtsp_uri("rtsp://h:8554/cam/realmonitor?channel=1&subtype=0&stall_timeout=2&downscale=off")
    assert s.url == "rtsp://h:8554/cam/realmonitor?channel=1&subtype=0"
    assert s.options["stall_timeout"] == 2.0 and s.options["downscale"] is None


def test_command_line_options_win() -> None:
    assert parse_rtsp_uri("rtsp://h/x?transport=udp", {"transport": "tcp"}).transport == "tcp"


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        (f"rtsp://u:{SECRET}@h/x?frames=0", "positive integer"),
        (f"rtsp://u:{SECRET}@h/x?transport=sctp", "expected one of tcp, udp"),
        (f"rtspt://u:{SECRET}@h/x?transport=udp", "always uses tcp"),
        (f"rtsp+ffmpeg://u:{SECRET}@h/x?backend=aiortsp", "always uses the ffmpeg backend"),
        (f"rtsp://u:{SECRET}@h/x?stall_timeout=0", "positive number of seconds"),
        (f"rtsp://u:{SECRET}@h/x?retry_min=3&retry_max=1", "retry_min must not exceed retry_max"),
        (f"rtsp://u:{SECRET}@/x", "no camera host"),
        (f"http://u:{SECRET}@h/x", "not an RTSP URL"),
        (f"rtsp://u:{SECRET}@h/x?transport=tcp&transport=udp", "given twice"),
    ],
)
def test_bad_uris_fail_early_without_the_password(uri: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as err:
        parse_rtsp_uri(uri)
    assert SECRET not in str(err.value)


def test_source_accepts_only_its_run_wide_options() -> None:
    assert RtspSource.accepts_option("frames") and not RtspSource.accepts_option("realtime")
    assert not RtspSource.accepts_option("loop")
    src = RtspSource(f"rtsp://u:{SECRET}@h/x", stream_id="c", options={"frames": "5"})
    assert src.settings.options["frames"] == 5 and src.policy == "latest"
    assert src.describe() == "rtsp://u:***@h/x" and src.stream_uri == "rtsp://u:***@h/x"
