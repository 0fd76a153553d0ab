"""The FFmpeg fallback: FFmpeg's own RTSP demuxer (through PyAV) for cameras aiortsp cannot handle.

Selected per camera with ``backend=ffmpeg`` or the ``rtsp+ffmpeg://`` scheme. A reader thread demuxes packets
and offers them to the same bounded :class:`~panoflow.plugins.rtsp.decode.Intake` as the aiortsp path, so
decoding, scaling, drops, stall detection and reconnection behave the same. Capture times are arrival times
(PyAV does not expose FFmpeg's RTCP clock mapping). FFmpeg's errors carry the URL (with its password): only
``strerror`` is used.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import anyio
import anyio.to_thread
import av

from panoflow.core.redact import redact_text
from panoflow.plugins.rtsp.decode import FrameDecoder, Intake
from panoflow.plugins.rtsp.options import RtspSettings
from panoflow.plugins.rtsp.session import SessionEnded, UnsupportedStream

__all__ = ["run_ffmpeg_session"]


def _explain(exc: BaseException, settings: RtspSettings) -> str:
    text = getattr(exc, "strerror", None) or type(exc).__name__
    errno = getattr(exc, "errno", None)
    lowered = str(text).lower()
    if "401" in lowered or "unauthorized" in lowered:
        if settings.username is None:
            return "the camera requires a username and password (401 Unauthorized)"
        return "authentication failed: wrong username or password (401 Unauthorized)"
    if "404" in lowered or "not found" in lowered:
        return "no stream at this path (404 Not Found)"
    where = f"{settings.host}:{settings.port}"
    if isinstance(exc, (ConnectionError, TimeoutError)) or errno in (110, 111, 113):
        return f"cannot connect to {where}: {text}"
    return redact_text(f"FFmpeg: {text}")


def _read(settings: RtspSettings, intake: Intake, stop: threading.Event) -> str:
    """Demux until the stream ends or ``stop`` is set; returns why. Raises SessionEnded /
    UnsupportedStream."""
    timeout = settings.options["timeout"]
    options = {"rtsp_transport": settings.transport, "timeout": str(int(timeout * 1_000_000))}
    try:
        container: Any = av.open(settings.url_with_credentials(), options=options, timeout=(timeout, timeout))
    except (av.FFmpegError, OSError) as exc:
        raise SessionEnded(_explain(exc, settings)) from None
    try:
        if not container.streams.video:
            raise UnsupportedStream("the camera offers no video stream")
        stream = container.streams.video[0]
        ctx = stream.codec_context
        try:
            av.Codec(ctx.name, "r")
        except (av.FFmpegError, ValueError):
            raise UnsupportedStream(f"FFmpeg has no decoder for the camera's {ctx.name} video") from None
        intake.restart(ctx.name, bytes(ctx.extradata) if ctx.extradata else None)
        for packet in container.demux(stream):
            if stop.is_set():
                return "stopped"
            if packet.size == 0:
                continue
            intake.offer(bytes(packet), keyframe=packet.is_keyframe, intact=not packet.is_corrupt,
                         wall=time.time())
        return "the camera ended the stream"
    except (av.FFmpegError, OSError) as exc:
        raise SessionEnded(_explain(exc, settings)) from None
    finally:
        container.close()


async def run_ffmpeg_session(settings: RtspSettings, intake: Intake, decoder: FrameDecoder,
                             on_streaming: Callable[[Any], None]) -> None:
    """One FFmpeg session; like :func:`~panoflow.plugins.rtsp.session.run_session` it always raises."""
    stop = threading.Event()
    outcome: list[BaseException | str] = []
    done = anyio.Event()
    stall_timeout = settings.options["stall_timeout"]

    async def reader() -> None:
        try:
            outcome.append(await anyio.to_thread.run_sync(
                _read, settings, intake, stop, abandon_on_cancel=True, limiter=anyio.CapacityLimiter(1)))
        except (SessionEnded, UnsupportedStream) as exc:
            outcome.append(exc)
        finally:
            done.set()

    stalled = ""
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(reader)
            started, frames_at_start, streaming = time.monotonic(), decoder.frames, False
            while not done.is_set():
                with anyio.move_on_after(0.05 if not streaming else 0.25):
                    await done.wait()
                if not streaming and decoder.frames > frames_at_start:
                    streaming = True
                    on_streaming(None)
                progress = max(started, decoder.last_progress, intake.last_overflow)
                if time.monotonic() - progress > stall_timeout:
                    stalled = f"no frame for {stall_timeout:g} s (stalled)"
                    tg.cancel_scope.cancel()
                    break
    finally:
        stop.set()
    if stalled:
        raise SessionEnded(stalled)
    result = outcome[0] if outcome else "the session ended"
    if isinstance(result, BaseException):
        raise result
    raise SessionEnded(result)
