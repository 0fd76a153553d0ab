"""One RTSP session with aiortsp's low-level API: connect, DESCRIBE/SETUP/PLAY, receive until it ends.

``RTSPConnection`` + a transport (TCP interleaved or UDP) + ``RTSPMediaSession``, with a
:class:`~aiortsp.transport.RTPTransportClient` of our own (:class:`Receiver`) subscribed to the transport. The
receiver runs on the event loop: it depacketizes and offers finished access units to the decoder's bounded
queue, dropping (and counting) when it is full, so nothing on this side ever waits for the decoder.

aiortsp logs through the standard library and prints tracebacks for undecodable data; its loggers are silenced
here and every failure comes back as a :class:`SessionEnded` with a one-line, credential-free reason.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable
from typing import Any

import anyio
from aiortsp.rtcp.parser import BYE, SR
from aiortsp.rtsp.connection import RTSPConnection
from aiortsp.rtsp.errors import RTSPConnectionError, RTSPError, RTSPResponseError, RTSPTimeoutError
from aiortsp.rtsp.session import RTSPMediaSession
from aiortsp.transport import RTPTransport, RTPTransportClient, TCPTransport, UDPTransport

from panoflow.core.redact import redact_text
from panoflow.plugins.rtsp.clock import RtpClock
from panoflow.plugins.rtsp.decode import FrameDecoder, Intake
from panoflow.plugins.rtsp.depacketize import Depacketizer, depacketizer_for, rtp_payload
from panoflow.plugins.rtsp.options import RtspSettings

__all__ = ["Receiver", "SessionEnded", "UnsupportedStream", "run_session"]

#: aiortsp's own logging goes nowhere: panoflow reports every state change itself, once.
QUIET = logging.getLogger("panoflow.plugins.rtsp.aiortsp")
QUIET.addHandler(logging.NullHandler())
QUIET.propagate = False
TEARDOWN_GRACE_S = 0.5


class SessionEnded(Exception):
    """The session ended or never started, for a reason worth retrying (``str(exc)``: one clean line)."""


class UnsupportedStream(Exception):
    """The camera offers something panoflow can never decode (another codec, no video): retrying is
    pointless."""


class _Connection(RTSPConnection):
    """aiortsp's connection, except that undecodable data closes it quietly instead of printing a
    traceback."""

    def data_received(self, data: bytes) -> None:
        try:
            for msg in self.parser.parse(data):
                if msg.type == "response":
                    self.on_response(msg)
                    waiter = self.active_requests.get(msg.cseq)
                    if waiter is not None and not waiter.done():
                        waiter.set_result(msg)
                elif msg.type == "binary":
                    self.on_binary(msg)
                elif msg.type == "request":
                    self.on_request(msg)
        except Exception:  # noqa: BLE001 - a camera sending garbage must not kill the process
            if not self.result.done():
                self.result.set_exception(
                    RTSPConnectionError(f"the server at {self.host}:{self.port} does not speak RTSP")
                )
            if self._transport:
                self._transport.close()


class _UDPTransport(UDPTransport):
    """aiortsp's UDP transport with a socket-pair allocation that never leaks a socket."""

    @classmethod
    def get_socket_pair(cls, bind_address: str | None = None,
                        retry: int = 10) -> tuple[socket.socket, socket.socket]:
        for _ in range(retry):
            first = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                first.bind((bind_address or "0.0.0.0", 0))
                port = first.getsockname()[1]
                second = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            except OSError:
                first.close()
                continue
            try:
                second.bind((bind_address or "0.0.0.0", port + 1 if port % 2 == 0 else port - 1))
            except OSError:
                first.close()
                second.close()
                continue
            return (first, second) if port % 2 == 0 else (second, first)
        raise OSError("unable to allocate two consecutive UDP ports for RTP and RTCP")


class Receiver(RTPTransportClient):
    """Subscribed to the transport: RTP -> access units -> :class:`Intake`; RTCP -> clock and end of
    stream."""

    def __init__(self, depacketizer: Depacketizer, clock: RtpClock, payload_type: int | None, intake: Intake,
                 on_end: Callable[[str], None]):
        self.depacketizer = depacketizer
        self.clock = clock
        self.payload_type = payload_type
        self.intake = intake
        self.on_end = on_end
        self.error: BaseException | None = None

    def handle_rtp(self, rtp: Any) -> None:
        try:
            if self.payload_type is not None and rtp.pt != self.payload_type:
                return
            payload = rtp_payload(rtp.data, extension=bool(rtp.x), padding=bool(rtp.p))
            for unit in self.depacketizer.push(payload, rtp.seq, rtp.ts, bool(rtp.m), time.time()):
                wall = self.clock.wall_time(unit.rtp_ts, unit.arrival)
                self.intake.offer(unit.data, keyframe=unit.keyframe, intact=unit.intact, wall=wall)
        except Exception as exc:  # noqa: BLE001 - reported as the session's end reason, never swallowed
            self.error = exc
            self.on_end(f"internal error handling RTP: {type(exc).__name__}: {exc}")

    def handle_rtcp(self, rtcp: Any) -> None:
        for packet in rtcp.packets:
            if isinstance(packet, SR):
                self.clock.on_sender_report(packet.ntp, packet.ts)
            elif isinstance(packet, BYE):
                self.on_end("the camera ended the stream (RTCP BYE)")

    def handle_closed(self, error: Exception | None) -> None:
        self.on_end("connection closed by the camera")


def explain(exc: BaseException, settings: RtspSettings) -> str:
    """A one-line, credential-free reason for a failed connection attempt."""
    where = f"{settings.host}:{settings.port}"
    if isinstance(exc, RTSPResponseError):
        resp = exc.response
        status = getattr(resp, "status", 0)
        text = f"{status} {getattr(resp, 'status_msg', '')}".strip()
        if status == 401:
            if settings.username is None:
                return f"the camera requires a username and password ({text})"
            return f"authentication failed: wrong username or password ({text})"
        if status == 404:
            return f"no stream at path {settings.url.split(where, 1)[-1] or '/'} ({text})"
        return f"the camera refused the request ({text})"
    if isinstance(exc, RTSPTimeoutError):
        return f"the camera at {where} did not answer within {settings.options['timeout']:g} s"
    if isinstance(exc, RTSPConnectionError):
        cause = exc.__cause__
        if isinstance(cause, (asyncio.TimeoutError, TimeoutError)):
            return f"cannot connect to {where}: no answer within {settings.options['timeout']:g} s"
        if isinstance(cause, OSError):
            text = os.strerror(cause.errno) if cause.errno else (cause.strerror or str(cause))
            return f"cannot connect to {where}: {text}"
        return redact_text(str(exc.args[0]) if exc.args else "connection lost")
    if isinstance(exc, OSError) and exc.errno:
        return f"network error talking to {where}: {os.strerror(exc.errno)}"
    return redact_text(f"{type(exc).__name__}: {exc}".splitlines()[0])


def _media(session: RTSPMediaSession, settings: RtspSettings) -> tuple[Depacketizer, int, int | None]:
    sdp = session.sdp or {}
    media = sdp.get_media("video") if hasattr(sdp, "get_media") else None
    if not media:
        raise UnsupportedStream("the camera offers no video stream")
    attrs = media.get("attributes", {})
    rtpmap = attrs.get("rtpmap") or {}
    encoding = str(rtpmap.get("encoding") or f"static payload type {media.get('format', '?')}")
    depacketizer = depacketizer_for(encoding, attrs.get("fmtp") or {})
    if depacketizer is None:
        raise UnsupportedStream(
            f"the camera offers {encoding} video; panoflow decodes H.264 and H.265 from RTSP "
            "(backend=ffmpeg may read it)"
        )
    return depacketizer, int(rtpmap.get("clockRate") or 90000), rtpmap.get("pt")


async def run_session(settings: RtspSettings, intake: Intake, decoder: FrameDecoder,
                      on_streaming: Callable[[Receiver], None]) -> None:
    """Run one session until it ends. Always raises: :class:`SessionEnded` (retry) or
    :class:`UnsupportedStream` (give up); cancellation tears the session down politely (bounded by
    ``TEARDOWN_GRACE_S``)."""
    opts = settings.options
    ended = anyio.Event()
    reasons: list[str] = []

    def on_end(reason: str) -> None:
        reasons.append(reason)
        ended.set()

    accept = ["basic", "digest"] if opts["auth"] == "any" else [opts["auth"]]
    conn = _Connection(settings.host, settings.port, settings.username, settings.password, accept_auth=accept,
                       logger=QUIET, timeout=opts["timeout"])
    transport: RTPTransport | None = None
    session: RTSPMediaSession | None = None
    depacketizer: Depacketizer | None = None
    try:
        try:
            await conn.prepare()
            conn.result.add_done_callback(lambda fut: _closed(fut, on_end))
            kind = TCPTransport if settings.transport == "tcp" else _UDPTransport
            transport = kind(conn, logger=QUIET, timeout=0)
            await transport.prepare()
            session = RTSPMediaSession(conn, settings.url, transport=transport, logger=QUIET)
            await session.setup()
            depacketizer, rate, payload_type = _media(session, settings)
            clock = RtpClock(rate, use_reports=opts["timestamps"] == "rtcp")
            receiver = Receiver(depacketizer, clock, payload_type, intake, on_end)
            intake.restart(depacketizer.codec)
            transport.subscribe(receiver)
            await session.play()
        except (RTSPError, OSError, AssertionError, ValueError, KeyError, asyncio.TimeoutError) as exc:
            raise SessionEnded(explain(exc, settings)) from None
        await _watch(settings, session, receiver, decoder, ended, on_streaming)
        raise SessionEnded(reasons[0] if reasons else "the session ended")
    finally:
        if depacketizer is not None:
            intake.packets += depacketizer.packets
            intake.packets_lost += depacketizer.packets_lost
        with anyio.move_on_after(TEARDOWN_GRACE_S, shield=True):
            if session is not None and session.session_id and conn.running:
                try:
                    await session.teardown()
                except (RTSPError, OSError, asyncio.TimeoutError):
                    pass
        if transport is not None:
            _close_transport(transport)
        conn.close()
        if conn.result.done() and not conn.result.cancelled():
            conn.result.exception()  # retrieved: no "exception was never retrieved" noise


def _closed(fut: asyncio.Future[Any], on_end: Callable[[str], None]) -> None:
    if not fut.cancelled():
        fut.exception()  # retrieved here: asyncio must not report it as never retrieved
    on_end("connection closed by the camera")


def _close_transport(transport: RTPTransport) -> None:
    """Close a transport even when its ``prepare()`` failed half-way (aiortsp's own close would raise)."""
    if isinstance(transport, UDPTransport):
        RTPTransport.close(transport)
        for sink in (transport.rtp_sink, transport.rtcp_sink):
            if sink is not None:
                sink.close()
    else:
        transport.close()


async def _watch(settings: RtspSettings, session: RTSPMediaSession, receiver: Receiver, decoder: FrameDecoder,
                 ended: anyio.Event, on_streaming: Callable[[Receiver], None]) -> None:
    """Wait until the session ends or stalls, sending keep-alives; report the first frame."""
    stall_timeout = settings.options["stall_timeout"]
    started = time.monotonic()
    frames_at_start = decoder.frames
    keepalive = max(1.0, float(session.session_keepalive))
    next_keepalive = started + keepalive
    streaming = False
    while not ended.is_set():
        with anyio.move_on_after(0.05 if not streaming else 0.25):
            await ended.wait()
        now = time.monotonic()
        if not streaming and decoder.frames > frames_at_start:
            streaming = True
            on_streaming(receiver)
        progress = max(started, decoder.last_progress, receiver.intake.last_overflow)
        if now - progress > stall_timeout:
            if receiver.depacketizer.packets == 0 and settings.transport == "udp":
                raise SessionEnded(f"no RTP packet arrived over UDP for {stall_timeout:g} s (a firewall or "
                                   "NAT in the way? transport=tcp avoids it)")
            what = "no frame" if streaming else "no picture decoded"
            raise SessionEnded(f"{what} for {stall_timeout:g} s (stalled)")
        if now >= next_keepalive:
            next_keepalive = now + keepalive
            try:
                await session.keep_alive()
            except (RTSPError, OSError, asyncio.TimeoutError) as exc:
                raise SessionEnded(f"keep-alive failed: {explain(exc, settings)}") from None
