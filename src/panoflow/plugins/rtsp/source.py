"""The ``rtsp`` media source: a camera read with aiortsp (or FFmpeg's demuxer), reconnecting forever.

Three parts per camera: the network side on the event loop (:mod:`.session`: RTSP, RTP, depacketizing), a
bounded queue of access units, and one decoder thread (:mod:`.decode`) that emits frames. The source never
ends on its own while the camera is merely unreachable: every failure (first connection included) is retried
with capped exponential back-off, and the app's ``get()`` keeps working on its other cameras meanwhile (the
missing one is re-delivered with ``is_cached=True`` by the port). Only a stream that can never work (an
unsupported codec, no video) raises :class:`~panoflow.SourceError`.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any, ClassVar

import anyio
import anyio.to_thread
import structlog

from panoflow.core.bases import Emit, MediaSource
from panoflow.exceptions import SourceError
from panoflow.plugins.decode_budget import KeyframeGate
from panoflow.plugins.decoders import DECODERS
from panoflow.plugins.rtsp.backoff import Backoff, CameraState
from panoflow.plugins.rtsp.decode import FrameDecoder, Intake, UnitQueue
from panoflow.plugins.rtsp.options import RTSP_OPTIONS, RtspSettings, parse_rtsp_uri
from panoflow.plugins.rtsp.session import Receiver, SessionEnded, UnsupportedStream, run_session

__all__ = ["FfmpegRtspSource", "RtspSource", "RtspTcpSource"]

log = structlog.get_logger(__name__)


class RtspSource(MediaSource):
    """An RTSP camera. ``rtsp://`` is RTP over TCP unless ``transport=udp``; see :mod:`.options` for the rest.

    Live: bus policy ``latest`` (the app always gets the newest picture; older ones are dropped and counted).
    """

    scheme: ClassVar[str] = "rtsp"
    default_policy: ClassVar[str] = "latest"

    def __init__(self, uri: str, *, stream_id: str, options: Mapping[str, Any]):
        super().__init__(uri, stream_id=stream_id, options=options)
        self.settings: RtspSettings = parse_rtsp_uri(uri, options)  # ValueError on bad options: fail at start
        self.stream_uri = self.settings.redacted()
        DECODERS.check(self.settings.options["decoder"], what=f"camera {self.stream_uri}")
        self.policy = "latest"
        self.log = log.bind(stream_id=stream_id, uri=self.stream_uri)
        self.state = CameraState(self.log)
        opts = self.settings.options
        self.queue = self._new_queue()
        self.decoder: FrameDecoder | None = None
        self.intake: Intake | None = None
        self.receiver: Receiver | None = None  # of the current (last) aiortsp session
        self.backoff = Backoff(opts["retry_min"], opts["retry_max"])
        #: set when the decoder thread has returned (tests wait on it after cancelling)
        self.finished = threading.Event()
        #: set on each first frame of a session (tests and benchmarks wait on it)
        self.streaming = threading.Event()

    def _new_queue(self) -> UnitQueue:
        opts = self.settings.options
        max_delay = opts["max_delay_ms"]
        return UnitQueue(opts["buffer"], None if max_delay is None else max_delay / 1e3)

    @classmethod
    def accepts_option(cls, name: str) -> bool:
        return name in RTSP_OPTIONS

    def describe(self) -> str:
        return self.stream_uri

    def stats(self) -> dict[str, Any]:
        """Counters for status output and tests (no credentials)."""
        d, i = self.decoder, self.intake
        return {
            "state": self.state.state, "reason": self.state.reason, "sessions": self.state.sessions,
            "failures": self.state.failures, "frames": d.frames if d else 0,
            "decode_errors": d.decode_errors if d else 0, "size": list(d.size) if d and d.size else None,
            "source_size": list(d.source_size) if d and d.source_size else None,
            "units": i.units if i else 0, "damaged": i.damaged if i else 0,
            "dropped_queue_full": i.dropped_full if i else 0,
            "dropped_waiting_keyframe": i.dropped_waiting if i else 0,
            "dropped_late": self.queue.dropped_late, "late_episodes": self.queue.episodes,
            "packets": i.packets if i else 0, "packets_lost": i.packets_lost if i else 0,
            "queue_high_water": self.queue.high_water, "queue_size": self.queue.size,
            "clock": "rtcp" if self.receiver is not None and self.receiver.clock.synchronised else "arrival",
            **(d.video.stats() if d else {"decoder": None}),
            "skipped_nonkey": i.skipped_nonkey if i else 0,  # keyframes only: left out before the queue
            "conversions": d.converter.conversions if d else 0,
        }

    async def run(self, emit: Emit) -> None:
        opts = self.settings.options
        self.queue = self._new_queue()
        self.decoder = FrameDecoder(stream_id=self.stream_id, stream_uri=self.stream_uri, emit=emit,
                                    downscale=opts["downscale"], limit=opts["frames"],
                                    threads=opts["decode_threads"], logger=self.log, decoder=opts["decoder"],
                                    gate=KeyframeGate(opts["decode"], below=opts["auto_below"],
                                                      window=opts["auto_window"], logger=self.log),
                                    eager=opts["convert"] == "eager")
        self.intake = Intake(self.queue, self.decoder.need_keyframe, gate=self.decoder.video.gate)
        self.finished.clear()
        failure: SourceError | None = None
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._decode, tg.cancel_scope)
                try:
                    await self._connect_forever()
                except SourceError as exc:
                    failure = exc
                tg.cancel_scope.cancel()
        finally:
            self.decoder.stop.set()
            self.queue.close()
            video = self.decoder.video
            self.state.stopped(frames=self.decoder.frames, frames_decoded=video.decoded,
                               conversions=self.decoder.converter.conversions, decoding=video.gate.decoding,
                               mode_changes=video.gate.changes, **self._drops())
        if failure is not None:
            raise failure

    def _drops(self) -> dict[str, int]:
        i = self.intake
        return (
            {"dropped": i.dropped_full + i.dropped_waiting + i.damaged + self.queue.dropped_late} if i else {}
        )

    async def _decode(self, scope: anyio.CancelScope) -> None:
        assert self.decoder is not None
        try:
            await anyio.to_thread.run_sync(self._decode_thread, abandon_on_cancel=True,
                                           limiter=anyio.CapacityLimiter(1))
        finally:
            scope.cancel()  # the decoder stopped (frame limit, emit said stop): so does the network side

    def _decode_thread(self) -> None:
        assert self.decoder is not None
        try:
            self.decoder.run(self.queue)
        finally:
            self.finished.set()

    async def _connect_forever(self) -> None:
        self.state.connecting()
        while True:
            try:
                await self._session()
                reason = "the session ended"
            except SessionEnded as exc:
                reason = str(exc)
            except UnsupportedStream as exc:
                raise SourceError(f"camera {self.stream_uri}: {exc}", node_id=self.stream_id) from None
            delay = self.backoff.next_delay()
            self.state.down(reason, retry_in=delay)
            await anyio.sleep(delay)

    async def _session(self) -> None:
        assert self.intake is not None and self.decoder is not None
        if self.settings.backend == "ffmpeg":
            from panoflow.plugins.rtsp.ffmpeg import run_ffmpeg_session

            await run_ffmpeg_session(self.settings, self.intake, self.decoder, self._on_streaming)
        else:
            await run_session(self.settings, self.intake, self.decoder, self._on_streaming)

    def _on_streaming(self, receiver: Receiver | None) -> None:
        self.backoff.reset()
        self.receiver = receiver
        d = self.decoder
        info: dict[str, Any] = {"transport": self.settings.transport, "backend": self.settings.backend}
        if receiver is not None:
            info["codec"] = receiver.depacketizer.label
        if d is not None and d.video.name:
            info["decoder"] = d.video.name
            if d.video.reason:
                info["decoder_reason"] = d.video.reason
        if d is not None and d.size:
            info["size"] = f"{d.size[0]}x{d.size[1]}"
            if d.source_size != d.size and d.source_size:
                info["scaled_from"] = f"{d.source_size[0]}x{d.source_size[1]}"
        self.state.streaming(**info)
        self.streaming.set()


class RtspTcpSource(RtspSource):
    """``rtspt://``: RTP always interleaved on the RTSP TCP connection."""

    scheme: ClassVar[str] = "rtspt"


class FfmpegRtspSource(RtspSource):
    """``rtsp+ffmpeg://`` (same as ``rtsp://...?backend=ffmpeg``): FFmpeg's RTSP demuxer, for cameras aiortsp
    cannot handle. Same reconnection, bounds, scaling and logging as the aiortsp path."""

    scheme: ClassVar[str] = "rtsp+ffmpeg"

