"""Decoding off the event loop: a bounded queue of access units and the thread that turns them into frames.

The network side (the event loop) only ever *offers* units to :class:`UnitQueue`: when it is full the unit is
dropped and counted, and the stream waits for the next keyframe, so a slow decoder or a slow application never
stalls the RTP reader and never grows memory. The queue is bounded by age as well (``max_delay``): when the
decoder falls so far behind that the oldest queued unit waited longer than that, the queue drops up to the
next keyframe and hands the decoder a :class:`Skipped` marker instead, so latency stays bounded and the
decoder always restarts on a clean reference chain. :class:`FrameDecoder` runs in one worker thread per camera
for the source's whole life (reconnections reuse it): it decodes with the camera's video decoder plugin
(:mod:`panoflow.plugins.decoders`: software, NVDEC, VA-API, V4L2), scales large pictures down like the
appliance, and hands :class:`~panoflow.core.frame.Frame` objects to ``emit`` with their pictures still to be
converted to BGR (on first use: :mod:`panoflow.plugins.decode_budget`). The intake asks the camera's
:class:`~panoflow.plugins.decode_budget.KeyframeGate` which units to keep (``decode=keyframes``, or ``auto``
while the consumers take few frames), so the rest are neither queued nor decoded.
"""

from __future__ import annotations

import enum
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import av
import structlog

from panoflow.core.bases import Emit
from panoflow.core.frame import Frame
from panoflow.plugins.decode_budget import KeyframeGate, PictureConverter
from panoflow.plugins.decoders import DecoderSetup, StreamDecoder

__all__ = ["CodedPicture", "FrameDecoder", "Intake", "NewStream", "Offer", "Skipped", "UnitQueue",
           "scaled_size"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class CodedPicture:
    """One access unit for the decoder, with its capture time (seconds since the epoch)."""

    data: bytes
    keyframe: bool
    wall: float


@dataclass(frozen=True, slots=True)
class NewStream:
    """Marks the start of a new RTSP session: the decoder starts afresh for ``codec`` (FFmpeg name), with
    ``extradata`` (codec configuration, e.g. Annex B parameter sets) when the stream has some."""

    codec: str
    extradata: bytes | None = None


@dataclass(frozen=True, slots=True)
class Skipped:
    """One drop episode, handed to the decoder just before the keyframe it restarts at: the decoder fell more
    than ``max_delay`` behind, so the queue dropped ``dropped`` access units instead of decoding them late."""

    dropped: int
    behind: float  # seconds the oldest unit had waited when the queue started dropping
    waited: bool  # no keyframe was queued: the queue also dropped what arrived until the camera's next one
    seconds: float  # from the first drop to the restart keyframe's arrival (0 when it was already queued)


Item = CodedPicture | NewStream | Skipped


class Offer(enum.Enum):
    """What :meth:`UnitQueue.offer` did with a unit; true only for ``QUEUED``."""

    QUEUED = "queued"
    FULL = "full"  # refused: the queue holds ``size`` items (the caller counts it)
    # dropped: the queue skips to the next keyframe after falling behind (counted in dropped_late)
    LATE = "late"

    def __bool__(self) -> bool:
        return self is Offer.QUEUED


class UnitQueue:
    """A bounded FIFO between one producer that must never block and one consumer thread.

    Bounded by count (``size``) and, when ``max_delay`` (seconds) is set, by age: when the consumer takes a
    unit that has waited longer than ``max_delay`` (it fell behind), every unit up to the first queued
    keyframe that has not waited that long is dropped; with none queued, everything is dropped and so is each
    non-keyframe offered until the camera's next keyframe. The consumer then gets a :class:`Skipped` marker
    right before that keyframe. Age is time spent in this queue (``clock``, monotonic), not capture time:
    camera clocks and RTCP mappings may be off by seconds, and the network side's own lag is not something
    dropping here could fix. All of it happens under the queue's lock, so no unit that references a dropped
    picture ever reaches the decoder.
    """

    def __init__(self, size: int, max_delay: float | None = None, *,
                 clock: Callable[[], float] = time.monotonic):
        self.size = size
        self.max_delay = max_delay
        self._clock = clock
        self._items: deque[tuple[float, Item]] = deque()  # (clock() when queued, item)
        self._cond = threading.Condition()
        self._closed = False
        # waiting for a keyframe: (dropped, behind, since)
        self._episode: tuple[int, float, float] | None = None
        self.high_water = 0
        self.dropped_late = 0  # access units dropped because the decoder fell behind
        self.episodes = 0  # drop episodes (one Skipped marker each)

    def __len__(self) -> int:
        return len(self._items)

    def offer(self, item: Item) -> Offer:
        """Append ``item`` unless the queue is full or skips to the next keyframe. A :class:`NewStream` always
        goes in (it replaces what is queued: those units belong to a session that is gone)."""
        with self._cond:
            now = self._clock()
            if isinstance(item, NewStream):
                self._items.clear()
                if self._episode is not None:  # the session ended while skipping: still report the episode
                    self._items.append((now, self._end_episode(now)))
            elif isinstance(item, CodedPicture) and self._episode is not None:
                if not item.keyframe:
                    self._episode = (self._episode[0] + 1, *self._episode[1:])
                    self.dropped_late += 1
                    return Offer.LATE
                self._items.append((now, self._end_episode(now)))  # the queue is empty: room for both
            elif len(self._items) >= self.size:
                return Offer.FULL
            self._items.append((now, item))
            self.high_water = max(self.high_water, len(self._items))
            self._cond.notify()
            return Offer.QUEUED

    def take(self, timeout: float) -> Item | None:
        """The oldest item, or None after ``timeout`` seconds, once closed, or when it dropped every queued
        unit for being late (see the class)."""
        with self._cond:
            if not self._items and not self._closed:
                self._cond.wait(timeout)
            if not self._items:
                return None
            queued, item = self._items[0]
            if isinstance(item, CodedPicture) and self.max_delay is not None:
                now = self._clock()
                if now - queued > self.max_delay:
                    return self._skip(now, now - queued)
            self._items.popleft()
            return item

    def _skip(self, now: float, behind: float) -> Skipped | None:
        """Drop up to the first queued keyframe still within ``max_delay`` (or everything, and wait for
        one)."""
        assert self.max_delay is not None
        restart = next((i for i, (queued, item) in enumerate(self._items)
                        if i and isinstance(item, CodedPicture) and item.keyframe
                        and now - queued <= self.max_delay), None)
        dropped = restart if restart is not None else len(self._items)
        for _ in range(dropped):
            self._items.popleft()
        self.dropped_late += dropped
        if restart is None:
            self._episode = (dropped, behind, now)
            return None
        self.episodes += 1
        return Skipped(dropped, behind, waited=False, seconds=0.0)

    def _end_episode(self, now: float) -> Skipped:
        assert self._episode is not None
        dropped, behind, since = self._episode
        self._episode = None
        self.episodes += 1
        return Skipped(dropped, behind, waited=True, seconds=now - since)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._items.clear()
            self._cond.notify_all()


class Intake:
    """The network side's only way to the decoder: never blocks, drops and counts instead.

    Units are dropped while the decoder needs a keyframe (at the start, after a loss, a decode error or an
    overflow); a full queue drops the unit and makes the stream wait for the next keyframe, since the units
    after it would reference a picture the decoder never saw (units the queue drops for age it counts itself).
    ``last_overflow`` (``time.monotonic()``) tells stall detection that pictures do arrive even though none is
    decoded. ``gate`` (the decoder's, usually) says which units to keep at all (``keyframes_only=True`` is a
    gate fixed on keyframes).
    """

    def __init__(self, queue: UnitQueue, need_keyframe: threading.Event, *, keyframes_only: bool = False,
                 gate: KeyframeGate | None = None):
        self.queue = queue
        self.need_keyframe = need_keyframe
        self.gate = gate if gate is not None else KeyframeGate("keyframes" if keyframes_only else "all")
        self.packets = 0  # RTP packets of finished sessions (the session adds them up at its end)
        self.packets_lost = 0
        self.units = 0
        self.damaged = 0
        self.dropped_full = 0
        self.dropped_waiting = 0
        self.last_overflow = 0.0

    @property
    def skipped_nonkey(self) -> int:
        """Units not queued because only keyframes are decoded."""
        return self.gate.skipped

    def offer(self, data: bytes, *, keyframe: bool, intact: bool, wall: float) -> None:
        self.units += 1
        if not intact:
            self.damaged += 1
            self.need_keyframe.set()
            return
        if not self.gate.admit(keyframe):
            return
        if self.need_keyframe.is_set():
            if not keyframe:
                self.dropped_waiting += 1
                return
            self.need_keyframe.clear()
        offered = self.queue.offer(CodedPicture(data, keyframe, wall))
        if offered is Offer.FULL:
            self.dropped_full += 1
            self.need_keyframe.set()
        if not offered:
            self.last_overflow = time.monotonic()

    def restart(self, codec: str, extradata: bytes | None = None) -> None:
        """A new session begins: the decoder starts afresh and waits for a keyframe."""
        self.need_keyframe.set()
        self.queue.offer(NewStream(codec, extradata))


def scaled_size(width: int, height: int, max_area: tuple[int, int] | None) -> tuple[int, int] | None:
    """The size to scale a ``width x height`` picture to so its area fits ``max_area`` (aspect ratio kept,
    even numbers), or None when it already fits or scaling is off."""
    if max_area is None:
        return None
    limit = max_area[0] * max_area[1]
    if width * height <= limit:
        return None
    factor = math.sqrt(limit / (width * height))
    return max(2, int(width * factor) // 2 * 2), max(2, int(height * factor) // 2 * 2)


class FrameDecoder:
    """Decodes :class:`UnitQueue` items into frames in the calling (worker) thread; see :meth:`run`.

    ``need_keyframe`` is set when a unit could not be decoded: the network side then drops units until the
    next keyframe. ``last_progress`` (``time.monotonic()``) moves whenever a picture was decoded, for stall
    detection. A :class:`Skipped` marker (the queue dropped units because this thread fell behind) flushes the
    decoder, so the keyframe that follows starts it afresh (for H.265 a CRA then drops its leading pictures,
    as at the start), and logs one ``late_frames_dropped`` line per episode.
    """

    def __init__(
        self, *, stream_id: str, stream_uri: str, emit: Emit, downscale: tuple[int, int] | None,
        limit: int | None = None, threads: int = 1, logger: Any = None, decoder: str = "auto",
        keyframes_only: bool = False, gate: KeyframeGate | None = None, eager: bool = False,
    ):
        self.stream_id = stream_id
        self.stream_uri = stream_uri
        self.emit = emit
        self.downscale = downscale
        self.limit = limit
        self.threads = threads
        self.log = logger if logger is not None else log.bind(stream_id=stream_id, uri=stream_uri)
        self.converter = PictureConverter(eager=eager)
        # the source names the decoder (and what it passed over) in its camera_streaming line; the intake
        # filters through the gate (before the queue), this decoder only reports it
        if gate is None:
            gate = KeyframeGate("keyframes" if keyframes_only else "all", logger=self.log)
        self.video = StreamDecoder(decoder, gate=gate, filters=False, logger=self.log, announce=False)
        gate.bind(decoded=lambda: self.video.decoded, taken=lambda: self.converter.conversions)
        self.queue: UnitQueue | None = None
        self.stop = threading.Event()
        self.need_keyframe = threading.Event()
        self.need_keyframe.set()
        self.last_progress = time.monotonic()
        self.frames = 0
        self.decode_errors = 0
        self.size: tuple[int, int] | None = None  # picture size as delivered (after scaling)
        self.source_size: tuple[int, int] | None = None
        self.ended = ""  # why run() returned on its own: "limit" or "stopped"

    def run(self, queue: UnitQueue) -> None:
        """Decode until :attr:`stop` is set, ``emit`` returns False or ``limit`` frames were emitted."""
        started = False
        while not self.stop.is_set():
            item = queue.take(0.1)
            if item is None:
                continue
            if isinstance(item, NewStream):
                # slice threads only: frame threading would hold pictures back (latency on a live camera); 1
                # by default: cameras already decode in parallel (a thread each), and per-camera slice threads
                # cost ~12 % more CPU per frame in wake-ups (benchmarks/source_path.py); 0 = FFmpeg's choice
                self.video.start(DecoderSetup(item.codec, item.extradata, threads=self.threads))
                started = True
                continue
            if isinstance(item, Skipped):
                self.video.flush()  # pictures held for reordering are stale; references are gone
                self._report(item, queue)
                continue
            if not started:
                continue
            try:
                pictures = self.video.decode(av.Packet(item.data), item.keyframe)
            except av.FFmpegError:
                self.decode_errors += 1
                self.need_keyframe.set()
                continue
            if self.video.waiting_keyframe:  # it fell back to software: restart at the next keyframe
                self.need_keyframe.set()
            for picture in pictures:
                if not self._deliver(picture, item.wall):
                    return

    def _report(self, skipped: Skipped, queue: UnitQueue) -> None:
        self.log.warning(
            "late_frames_dropped", dropped=skipped.dropped, behind_ms=round(skipped.behind * 1e3),
            max_delay_ms=round((queue.max_delay or 0.0) * 1e3), waited_for_keyframe=skipped.waited,
            skipped_ms=round(skipped.seconds * 1e3), dropped_late_total=queue.dropped_late,
            episode=queue.episodes,
        )

    def _deliver(self, picture: Any, wall: float) -> bool:
        size = (picture.width, picture.height)
        target = scaled_size(*size, self.downscale)
        image = self.converter.image(picture, target, "AREA" if target is not None else None)
        self.source_size, self.size = size, target or size
        self.last_progress = time.monotonic()
        sec = int(wall)
        frame = Frame(
            image=image, stream_id=self.stream_id, seq=self.frames,
            capture_time=(sec, int((wall - sec) * 1_000_000)), stream_uri=self.stream_uri,
            t_produced=time.perf_counter(),
        )
        if self.stop.is_set() or not self.emit(frame):
            self.ended = "stopped"
            return False
        self.frames += 1
        if self.limit is not None and self.frames >= self.limit:
            self.ended = "limit"
            return False
        return True
