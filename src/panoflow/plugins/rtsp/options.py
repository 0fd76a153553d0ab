"""RTSP camera URIs and their options.

``rtsp://user:pw@cam/stream?transport=udp&stall_timeout=3``. In panoflow ``rtsp://`` means RTP over TCP
(interleaved on the RTSP connection: works through NAT and firewalls), ``transport=udp`` asks for RTP over
UDP, ``rtspt://`` forces TCP, and ``rtsp+ffmpeg://`` (or ``backend=ffmpeg``) reads the camera with FFmpeg's
own RTSP demuxer instead of aiortsp. Query parameters that are not panoflow options stay in the camera URL
(many cameras select channels with them, ``?channel=1&subtype=0``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from panoflow.core.redact import redact_url, with_credentials
from panoflow.plugins.uri import (
    DECODE_BUDGET_OPTIONS,
    Option,
    parse_decoder_name,
    parse_options,
    parse_positive_int,
    parse_size,
)

__all__ = ["RTSP_OPTIONS", "SCHEMES", "RtspSettings", "parse_rtsp_uri"]

#: scheme -> (forced transport or None, backend)
SCHEMES: Mapping[str, tuple[str | None, str]] = {
    "rtsp": (None, "aiortsp"),
    "rtspt": ("tcp", "aiortsp"),
    "rtsp+ffmpeg": (None, "ffmpeg"),
}
#: The appliance scales streams above 2 megapixels down to this area.
DEFAULT_MAX_AREA = (1920, 1080)


def _choice(*values: str) -> Any:
    def parse(value: Any) -> str:
        text = str(value).strip().lower()
        if text not in values:
            raise ValueError(f"expected one of {', '.join(values)}, got {value!r}")
        return text

    return parse


def _seconds(value: Any) -> float:
    number = math.nan if isinstance(value, bool) else float(value)
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"expected a positive number of seconds, got {value!r}")
    return number


def _non_negative_int(value: Any) -> int:
    """An integer >= 0 (``0`` = let FFmpeg choose)."""
    if str(value).strip() == "0" and not isinstance(value, bool):
        return 0
    try:
        return parse_positive_int(value)
    except ValueError:
        raise ValueError(f"expected an integer >= 0, got {value!r}") from None


def _downscale(value: Any) -> tuple[int, int] | None:
    """``1920x1080`` (scale larger pictures down to that area) or ``0``/``off`` (never scale)."""
    if value is None or str(value).strip().lower() in ("0", "off", "no", "false", "none"):
        return None
    return parse_size(value)


def _format_downscale(value: Any) -> str:
    return "off" if value is None else f"{value[0]}x{value[1]}"


def _max_delay_ms(value: Any) -> float | None:
    """Milliseconds (> 0), or ``0``/``off`` (bound the decoder queue by ``buffer`` only)."""
    text = str(value).strip().lower()
    if value is None or text in ("0", "off", "no", "false", "none"):
        return None
    try:
        number = math.nan if isinstance(value, bool) else float(text)
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"expected milliseconds (> 0) or off, got {value!r}")
    return number


def _format_off(value: Any) -> str:
    return "off" if value is None else f"{value:g}"


#: Default age bound of the decoder queue. A drop costs the rest of a GOP (the decoder restarts at the next
#: keyframe: 1-2 s of pictures on typical cameras), so the bound sits well above the queueing delay of cameras
#: that keep up (p95 frame latency 80 ms at 10 RTSP cameras on 2 cores, 162 ms at 12 already behind;
#: benchmarks/ analysis.md, Streams), with room for keyframe-decode and scheduling spikes, and at half the ~1
#: s a full 32-unit queue reached under overload.
DEFAULT_MAX_DELAY_MS = 500.0


RTSP_OPTIONS: Mapping[str, Option] = {
    o.name: o
    for o in (
        Option("transport", _choice("tcp", "udp"), "tcp", "RTP over TCP (interleaved, default) or UDP"),
        Option("backend", _choice("aiortsp", "ffmpeg"), "aiortsp",
               "RTSP client: aiortsp, or FFmpeg's demuxer"),
        Option("auth", _choice("any", "basic", "digest"), "any", "authentication schemes the client may use"),
        Option("timeout", _seconds, 5.0, "seconds to wait for the camera to connect and answer a request"),
        Option("stall_timeout", _seconds, 5.0, "reconnect when no frame arrived for this many seconds"),
        Option("retry_min", _seconds, 0.05, "first reconnection delay in seconds (doubles, with jitter)"),
        Option("retry_max", _seconds, 1.0, "longest reconnection delay in seconds"),
        Option(
            "downscale", _downscale, DEFAULT_MAX_AREA,
            "scale pictures larger than this area down to it, keeping the aspect ratio (off: never)",
            _format_downscale,
        ),
        Option("timestamps", _choice("rtcp", "arrival"), "rtcp", "capture time from RTCP sender reports or "
                                                                 "arrival"),
        Option("buffer", parse_positive_int, 32, "access units queued for the decoder before drops"),
        Option("max_delay_ms", _max_delay_ms, DEFAULT_MAX_DELAY_MS,
               "when the decoder falls this far behind (oldest queued unit, ms), drop to the next keyframe "
               "(off: bound by buffer only)", _format_off),
        Option("decode_threads", _non_negative_int, 1,
               "decoder threads per camera (0: FFmpeg's choice; 1 costs least CPU with several cameras)"),
        Option("frames", parse_positive_int, None, "stop after this many frames (default: never)"),
        Option("decoder", parse_decoder_name, "auto",
               "video decoder: auto (first that works here), software, nvdec, vaapi, v4l2"),
        *DECODE_BUDGET_OPTIONS,
    )
}


@dataclass(frozen=True)
class RtspSettings:
    """A parsed camera: where to connect (``url`` has no credentials), who to be, and the typed options."""

    uri: str  # as given (may hold credentials: never log it)
    url: str  # rtsp://host:port/path?camera-query, no credentials: what the RTSP requests name
    host: str
    port: int
    username: str | None
    password: str | None
    transport: str
    backend: str
    options: Mapping[str, Any]

    def redacted(self) -> str:
        """The URI as given, password replaced: for logs, status and ``Frame.stream_uri``."""
        return redact_url(self.uri)

    def url_with_credentials(self) -> str:
        """``rtsp://user:pw@host...``: what FFmpeg's demuxer needs. Never log it."""
        return with_credentials(self.url, self.username, self.password)  # self.url never has a fragment

    def __repr__(self) -> str:
        return f"RtspSettings({self.redacted()!r}, transport={self.transport!r}, backend={self.backend!r})"


def parse_rtsp_uri(uri: str, options: Mapping[str, Any] | None = None) -> RtspSettings:
    """Parse a camera URI; ``options`` (command-line) win over the query. Raises ValueError
    (credential-free)."""
    where = redact_url(uri)
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"bad camera URL {where}: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise ValueError(f"{where}: not an RTSP URL (schemes: {', '.join(SCHEMES)})")
    if not parts.hostname:
        raise ValueError(f"{where}: no camera host in the URL")
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    ours: dict[str, Any] = {}
    for name, value in pairs:
        if name in RTSP_OPTIONS:
            if name in ours:
                raise ValueError(f"option {name!r} given twice in {where}")
            ours[name] = value
    rest = urlencode([(k, v) for k, v in pairs if k not in RTSP_OPTIONS])
    merged = {**ours, **(options or {})}
    forced_transport, backend = SCHEMES[scheme]
    if forced_transport and merged.get("transport") not in (None, forced_transport):
        raise ValueError(f"{where}: {scheme}:// always uses {forced_transport}; drop transport=")
    if scheme == "rtsp+ffmpeg" and merged.get("backend") not in (None, "ffmpeg"):
        raise ValueError(f"{where}: rtsp+ffmpeg:// always uses the ffmpeg backend; drop backend=")
    typed = parse_options(merged, RTSP_OPTIONS, what=f"camera {where}")
    if forced_transport:
        typed["transport"] = forced_transport
    if backend == "ffmpeg":
        typed["backend"] = "ffmpeg"
    if typed["retry_min"] > typed["retry_max"]:
        raise ValueError(f"camera {where}: retry_min must not exceed retry_max")
    host = parts.hostname
    netloc = f"[{host}]" if ":" in host else host
    netloc += f":{port}" if port else ""
    url = urlunsplit(("rtsp", netloc, parts.path or "/", rest, ""))
    return RtspSettings(
        uri=uri, url=url, host=host, port=port or 554,
        username=unquote(parts.username) if parts.username is not None else None,
        password=unquote(parts.password) if parts.password is not None else None,
        transport=typed["transport"], backend=typed["backend"], options=typed,
    )
