"""Built-in media sources: video files and URLs decoded with PyAV (``file``), and a synthetic pattern
(``testsrc``).

Each source produces frames in one worker thread (decoding and ``emit`` may block; the event loop never does).
Decoded pictures become BGR only when a consumer reads ``frame.image``
(:mod:`panoflow.plugins.decode_budget`). Cancelling :meth:`run` sets a stop event the thread checks between
frames, so it ends within one frame time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any, ClassVar

import anyio
import anyio.to_thread
import av
import numpy as np
import structlog

from panoflow.core.bases import Emit, MediaSource
from panoflow.core.frame import Frame
from panoflow.core.hookspecs import hookimpl
from panoflow.core.redact import redact_text
from panoflow.exceptions import SourceError
from panoflow.plugins.decode_budget import BgrConverter, KeyframeGate, PictureConverter
from panoflow.plugins.decoders import DECODERS, DecoderSetup, StreamDecoder
from panoflow.plugins.uri import OPTION_TABLES, SourceURI, parse_source_uri

__all__ = [
    "DECODE_THREAD_TYPE",
    "BgrConverter",  # (from panoflow.plugins.decode_budget, where it lives)
    "FileSource",
    "TestPattern",
    "TestSource",
    "paint_index",
    "read_index",
]

log = structlog.get_logger(__name__)

#: FFmpeg decoder threading for files. Measured on 1080p single-slice H.264 (see
#: benchmarks/decode_baseline.py): FRAME/AUTO beat SLICE when encoders write one slice per frame, as cameras
#: and our test media do.
DECODE_THREAD_TYPE = "AUTO"
INDEX_BITS = 16
INDEX_BLOCK = 8


def paint_index(image: np.ndarray, index: int) -> None:
    """Write ``index`` (mod 2**16) into the top-left 128x8 pixels as 16 black/white 8x8 blocks, MSB first."""
    row = image[:INDEX_BLOCK, : INDEX_BITS * INDEX_BLOCK]
    bits = (index % (1 << INDEX_BITS) >> np.arange(INDEX_BITS - 1, -1, -1)) & 1
    row[:] = np.repeat(bits.astype(np.uint8) * 255, INDEX_BLOCK)[None, :, None]


def read_index(image: np.ndarray) -> int:
    """Read back what :func:`paint_index` wrote; the centre 4x4 pixels of each block survive H.264
    compression."""
    lo, hi = INDEX_BLOCK // 4, INDEX_BLOCK - INDEX_BLOCK // 4
    blocks = image[lo:hi, : INDEX_BITS * INDEX_BLOCK].reshape(hi - lo, INDEX_BITS, INDEX_BLOCK, -1)
    bits = blocks[:, :, lo:hi].mean(axis=(0, 2, 3)) > 127
    return int(sum(int(b) << (INDEX_BITS - 1 - i) for i, b in enumerate(bits)))


class TestPattern:
    """A moving synthetic picture: scrolling gradient + bouncing box + the frame index in pixel blocks.

    The base pattern is built once, twice as wide as the picture, so frame ``i`` is one slice copy of it (a
    new array per frame: downstream may keep frames) plus two small slice assignments.
    """

    __test__ = False  # not a pytest class

    def __init__(self, size: tuple[int, int], seed: int = 0):
        width, height = size
        if width < INDEX_BITS * INDEX_BLOCK or height < 2 * INDEX_BLOCK:
            raise ValueError(
                f"test pattern needs at least {INDEX_BITS * INDEX_BLOCK}x{2 * INDEX_BLOCK}, got {size}"
            )
        self.size = (width, height)
        rng = np.random.default_rng(seed)
        x = np.arange(2 * width, dtype=np.float32) / width  # period = width: the right half repeats the left
        y = np.arange(height, dtype=np.float32)[:, None] / height
        phase = rng.uniform(0, 2 * np.pi, 3).astype(np.float32)
        base = np.empty((height, 2 * width, 3), dtype=np.uint8)
        for c in range(3):
            wave = 0.5 + 0.5 * np.sin(2 * np.pi * (x[None, :] * (c + 1)) + phase[c] + 3 * y * (c - 1))
            base[:, :, c] = (40 + 175 * wave).astype(np.uint8)
        self._base = base
        self._box = (max(8, width // 8), max(8, height // 8))
        self._box_color = rng.integers(0, 256, 3, dtype=np.uint8)
        self._step = max(1, width // 160)

    def render(self, index: int) -> np.ndarray:
        """A new ``HxWx3`` uint8 BGR picture for frame ``index``."""
        width, height = self.size
        shift = (index * self._step) % width
        image = self._base[:, shift : shift + width].copy()
        bw, bh = self._box
        span_x, span_y = width - bw, height - bh - 2 * INDEX_BLOCK
        bx = abs((index * 3 * self._step) % (2 * span_x) - span_x)
        by = (
            2 * INDEX_BLOCK + abs((index * 2 * self._step) % (2 * span_y) - span_y)
            if span_y > 0
            else 2 * INDEX_BLOCK
        )
        image[by : by + bh, bx : bx + bw] = self._box_color
        paint_index(image, index)
        return image


def _capture_time(wall: float) -> tuple[int, int]:
    sec = int(wall)
    return sec, int((wall - sec) * 1_000_000)


class _ThreadedSource(MediaSource):
    """Runs :meth:`_produce` in a worker thread of its own (a one-slot limiter: a long-lived producer never
    holds a token of anyio's shared pool) and stops it cooperatively on cancellation."""

    option_scheme: ClassVar[str]

    def __init__(self, uri: str, *, stream_id: str, options: Mapping[str, Any]):
        super().__init__(uri, stream_id=stream_id, options=options)
        self.spec: SourceURI = parse_source_uri(uri, options)  # ValueError on bad options: fail at start-up
        self.stream_uri = self.spec.redacted()
        self._stop = threading.Event()
        #: set when the worker thread has returned (tests wait on it after cancelling)
        self.finished = threading.Event()
        self.frames_emitted = 0
        #: the bus policy this source asks for (read by the runtime): ``latest`` when paced in real time
        self.policy = "latest" if self.spec.options["realtime"] else "block"
        self._log = log.bind(stream_id=stream_id, uri=self.stream_uri)

    @classmethod
    def accepts_option(cls, name: str) -> bool:
        return name in OPTION_TABLES[cls.option_scheme]

    async def run(self, emit: Emit) -> None:
        self._stop.clear()
        self.finished.clear()
        try:
            await anyio.to_thread.run_sync(
                self._guarded, emit, abandon_on_cancel=True, limiter=anyio.CapacityLimiter(1)
            )
        finally:
            self._stop.set()

    def _guarded(self, emit: Emit) -> None:
        try:
            self._produce(emit)
        finally:
            try:
                self._on_finished()
            finally:
                self.finished.set()

    def _produce(self, emit: Emit) -> None:
        raise NotImplementedError

    def _on_finished(self) -> None:
        """Called in the worker thread when :meth:`_produce` has returned or raised."""

    def _frame(self, image: Any, seq: int, wall: float) -> Frame:
        return Frame(
            image=image,
            stream_id=self.stream_id,
            seq=seq,
            capture_time=_capture_time(wall),
            stream_uri=self.stream_uri,
            t_produced=time.perf_counter(),
        )

    def _pace(self, clock: list[float], media_t: float) -> bool:
        """Sleep until ``media_t`` seconds after ``clock[0]`` (rebased when more than 1 s behind); False if
        stopped meanwhile."""
        delay = clock[0] + media_t - time.perf_counter()
        if delay < -1.0:
            clock[0] -= delay
        elif delay > 0:
            return not self._stop.wait(delay)
        return not self._stop.is_set()


class FileSource(_ThreadedSource):
    """A video file (or an ``http(s)`` URL) decoded with PyAV. Lossless by default: every frame, in order.

    Options: ``realtime`` (pace by pts; bus policy ``latest``), ``loop`` (restart at the end; ``seq`` keeps
    increasing), ``frames=N`` (stop after N frames), ``decoder`` (see :mod:`panoflow.plugins.decoders`),
    ``decode=all|keyframes|auto`` with ``auto_below`` and ``auto_window``, and ``convert=demand|eager`` (see
    :mod:`panoflow.plugins.decode_budget`). Corrupt packets are skipped and counted.
    """

    scheme = "file"
    option_scheme = "file"
    default_policy = "block"

    def __init__(self, uri: str, *, stream_id: str, options: Mapping[str, Any]):
        super().__init__(uri, stream_id=stream_id, options=options)
        self.corrupt_packets = 0
        opts = self.spec.options
        DECODERS.check(opts["decoder"], what=f"source {self.stream_uri}")
        # a file read as fast as possible converts with swscale's thread pool, a paced one in the caller
        self.converter = PictureConverter(eager=opts["convert"] == "eager",
                                          threads=1 if opts["realtime"] else 0)
        gate = KeyframeGate(opts["decode"], below=opts["auto_below"], window=opts["auto_window"],
                            logger=self._log)
        self.decoder = StreamDecoder(opts["decoder"], gate=gate, logger=self._log)
        gate.bind(decoded=lambda: self.decoder.decoded, taken=lambda: self.converter.conversions)

    def stats(self) -> dict[str, Any]:
        """The decoder in use (and why not the preferred one), the decode mode, the effective rate and the BGR
        conversions; for status and /metrics."""
        return {"frames": self.frames_emitted, "corrupt_packets": self.corrupt_packets,
                **self.decoder.stats(), "conversions": self.converter.conversions}

    def _open(self) -> Any:
        where = self.spec.redacted()
        try:
            container = av.open(self.spec.location, timeout=10.0 if self.spec.is_network else None)
        except (av.FFmpegError, OSError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise SourceError(
                f"cannot open {where}: {redact_text(str(reason))}", node_id=self.stream_id
            ) from None
        if not container.streams.video:
            container.close()
            raise SourceError(f"{where} has no video stream", node_id=self.stream_id)
        stream = container.streams.video[0]
        if self.spec.options["realtime"]:
            # paced like a camera: 30 fps needs no decoder threads, and with many cameras they only cost
            # wake-ups
            stream.thread_type = "SLICE"
            stream.codec_context.thread_count = 1
        else:
            stream.thread_type = DECODE_THREAD_TYPE
        return container

    def _produce(self, emit: Emit) -> None:
        opts = self.spec.options
        realtime, loop, limit = opts["realtime"], opts["loop"], opts["frames"]
        start_wall, clock = time.time(), [time.perf_counter()]
        seq, media_base = 0, 0.0
        while True:
            container = self._open()
            live = self.spec.is_network and container.duration is None
            try:
                stream = container.streams.video[0]
                ctx = stream.codec_context
                self.decoder.start(DecoderSetup(ctx.name, ctx.extradata, context=ctx))
                rate = float(stream.average_rate or stream.guessed_rate or 25)
                tb = float(stream.time_base) if stream.time_base else 1.0 / rate
                first_pts: int | None = None
                media_t, n_this_pass = media_base, 0
                end_t = media_base  # the pass's last media time, skipped pictures included (decode=keyframes)
                for packet in container.demux(stream):
                    if packet.pts is not None and first_pts is not None:
                        end_t = max(end_t, media_base + (packet.pts - first_pts) * tb)
                    try:
                        decoded = (self.decoder.decode(packet, packet.is_keyframe) if packet.size
                                   else self.decoder.drain())
                    except av.FFmpegError as exc:
                        self._corrupt(exc)
                        continue
                    for vf in decoded:
                        if self._stop.is_set():
                            return
                        if vf.pts is not None:
                            first_pts = vf.pts if first_pts is None else first_pts
                            media_t = media_base + (vf.pts - first_pts) * tb
                        else:
                            media_t = media_base + n_this_pass / rate
                        end_t = max(end_t, media_t)
                        if realtime and not self._pace(clock, media_t):
                            return
                        image = self.converter.image(vf)
                        wall = time.time() if (realtime or live) else start_wall + media_t
                        if not emit(self._frame(image, seq, wall)):
                            return
                        seq += 1
                        n_this_pass += 1
                        self.frames_emitted = seq
                        if limit is not None and seq >= limit:
                            return
            except av.FFmpegError as exc:
                raise SourceError(
                    f"error reading {self.spec.redacted()}: {redact_text(str(exc))}", node_id=self.stream_id
                ) from None
            finally:
                self.decoder.close()
                container.close()
            if not loop or n_this_pass == 0:
                return
            media_base = end_t + 1.0 / rate

    def _on_finished(self) -> None:
        if self.corrupt_packets:
            self._log.info("corrupt_packets_total", count=self.corrupt_packets)
        stats = self.stats()
        self._log.info("decode_summary", frames=stats["frames"], frames_decoded=stats["frames_decoded"],
                       conversions=stats["conversions"], skipped=stats["skipped_nonkey"],
                       decode=stats["decode"], decoding=stats["decoding"],
                       mode_changes=stats["decode_mode_changes"],
                       effective_fps=stats["effective_fps"])

    def _corrupt(self, exc: Exception) -> None:
        self.corrupt_packets += 1
        if self.corrupt_packets == 1:
            self._log.warning("corrupt_packet_skipped", error=redact_text(str(exc)))


class TestSource(_ThreadedSource):
    """A synthetic moving pattern whose frame index can be read back (:func:`read_index`). Options: ``size``,
    ``fps``, ``frames`` (default: endless), ``realtime`` (default on; ``0`` = as fast as possible)."""

    __test__ = False
    scheme = "testsrc"
    option_scheme = "testsrc"
    default_policy = "latest"

    def __init__(self, uri: str, *, stream_id: str, options: Mapping[str, Any]):
        super().__init__(uri, stream_id=stream_id, options=options)
        self.pattern = TestPattern(self.spec.options["size"])

    def _produce(self, emit: Emit) -> None:
        fps, limit, realtime = (self.spec.options[k] for k in ("fps", "frames", "realtime"))
        clock, seq = [time.perf_counter()], 0
        while (limit is None or seq < limit) and not self._stop.is_set():
            if realtime and not self._pace(clock, seq / fps):
                return
            if not emit(self._frame(self.pattern.render(seq), seq, time.time())):
                return
            seq += 1
            self.frames_emitted = seq


@hookimpl
def panoflow_media_sources() -> list[type[MediaSource]]:
    return [FileSource, TestSource]
