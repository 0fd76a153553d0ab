"""The cameras page's "Test connection": one RTSP DESCRIBE from the control plane, with the credentials typed
in the form (the saved ones are never read back). aiortsp answers the camera's Basic or Digest challenge; the
result is one line with no credentials in it. It tells whether *this* host reaches the camera; the device may
see another network, which the page says."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

import anyio
from aiortsp.rtsp.connection import RTSPConnection
from aiortsp.rtsp.errors import RTSPConnectionError, RTSPError

from panoflow.core.redact import redact_text, redact_url

__all__ = ["ProbeResult", "describe_camera"]

_QUIET = logging.getLogger("panoflow.console.aiortsp")
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False


@dataclass(frozen=True)
class ProbeResult:
    """Whether the DESCRIBE succeeded, and a one-line explanation."""

    ok: bool
    message: str


def check_stream_url(url: str) -> str:
    """``""`` when ``url`` is an ``rtsp://`` or ``rtsps://`` URL with a host, else what is wrong with it."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises on a bad port)
    except ValueError:
        return "Stream URL: not a valid URL"
    if parts.scheme not in ("rtsp", "rtsps") or not parts.hostname:
        return "Stream URL: expected rtsp://HOST[:PORT]/PATH"
    if parts.username or parts.password:
        return "Stream URL: put the user name and password in their own fields, not in the URL"
    return ""


async def describe_camera(url: str, username: str | None, password: str | None, *,
                          timeout: float = 5.0) -> ProbeResult:
    """Send DESCRIBE to ``url`` and report what the camera answered."""
    problem = check_stream_url(url)
    if problem:
        return ProbeResult(False, problem)
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (322 if parts.scheme == "rtsps" else 554)
    shown = redact_url(url)
    try:
        with anyio.fail_after(timeout):
            async with RTSPConnection(host, port, username or None, password or None, logger=_QUIET,
                                      timeout=timeout) as conn:
                resp = await conn.send_request("DESCRIBE", url, headers={"Accept": "application/sdp"},
                                               timeout=timeout)
    except (TimeoutError, asyncio.TimeoutError):
        return ProbeResult(False, f"No answer from {shown} within {timeout:g} s")
    except RTSPConnectionError:
        return ProbeResult(False, f"Cannot connect to {shown}: nothing answers (or a firewall drops it)")
    except RTSPError as exc:
        text = redact_text(str(exc))[:200] or type(exc).__name__
        if "401" in text or "nauthorized" in text:
            return ProbeResult(False, f"{shown} refused the user name or password (401 Unauthorized)")
        return ProbeResult(False, f"{shown} answered with an error: {text}")
    except OSError as exc:
        return ProbeResult(False, f"Cannot connect to {shown}: {redact_text(exc.strerror or str(exc))[:200]}")
    status = getattr(resp, "status", 0)
    if status == 200:
        content = getattr(resp, "content", "") or ""
        sdp = content.decode("utf-8", "replace") if isinstance(content, bytes) else str(content)
        media = sdp.count("m=video")
        return ProbeResult(True, f"Connected: {shown} answered DESCRIBE with {media} video stream(s)")
    if status == 401:
        return ProbeResult(False, f"{shown} refused the user name or password (401 Unauthorized)")
    return ProbeResult(False, f"{shown} answered DESCRIBE with {status} {getattr(resp, 'msg', '')}".strip())

