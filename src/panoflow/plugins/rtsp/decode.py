"""Decoding off the event loop: a bounded queue of access units and the thread that turns them into frames.

The network side (the event loop) only ever *offers* units to :class:`UnitQueue`: when it is full the unit is
dropped and counted, and the stream waits for the next keyframe, so a slow decoder or a slow application never
stalls the RTP reader and never grows memory. :class:`FrameDecoder` runs in one worker thread per camera for
the source's whole life (reconnections reuse it): it decodes with PyAV, scales large pictures down like the
appliance, and hands :class:`~panoflow.core.frame.Frame` objects to ``emit``.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import av
import numpy as np

from panoflow.core.bases import Emit
from panoflow.core.frame import Frame
from panoflow.plugins.sources import BgrConverter

__all__ = ["CodedPicture", "FrameDecoder", "Intake", "NewStream", "UnitQueue", "scaled_size"]


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


Item = CodedPicture | NewStream


class UnitQueue:
    """A bounded FIFO between one producer that must never block and one consumer thread."""

    def __init__(self, size: int):
        self.size = size
        self._items: deque[Item] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self.high_water = 0

    def __len__(self) -> int:
        return len(self._items)

    def offer(self, item: Item) -> bool:
        """Append ``item`` unless the queue is full (False). A :class:`NewStream` always goes in (it replaces
        what is queued: those units belong to a session that is gone)."""
        with self._cond:
            if isinstance(item, NewStream):
                self._items.clear()
            elif len(self._items) >= self.size:
                return False
            self._items.append(item)
            self.high_water = max(self.high_water, len(self._items))
            self._cond.notify()
            return True

    def take(self, timeout: float) -> Item | None:
        """The oldest item, or None after ``timeout`` seconds or once closed."""
        with self._cond:
            if not self._items and not self._closed:
                self._cond.wait(timeout)
            return self._items.popleft() if self._items else None

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._items.clear()
            self._cond.notify_all()


class Intake:
    """The network side's only way to the decoder: never blocks, drops and counts instead.

    Units are dropped while the decoder needs a keyframe (at the start, after a loss, a decode error or an
    overflow); a full queue drops the unit and makes the stream wait for the next keyframe, since the units after
    it would reference a picture the decoder never saw. ``last_overflow`` (``time.monotonic()``) tells stall
    detection that pictures do arrive even though none is decoded.
    """

    def __init__(self, queue: UnitQueue, need_keyframe: threading.Event):
        self.queue = queue
        self.need_keyframe = need_keyframe
        self.packets = 0  # RTP packets of finished sessions (the session adds them up at its end)
        self.packets_lost = 0
        self.units = 0
        self.damaged = 0
        self.dropped_full = 0
        self.dropped_waiting = 0
        self.last_overflow = 0.0

    def offer(self, data: bytes, *, keyframe: bool, intact: bool, wall: float) -> None:
        self.units += 1
        if not intact:
            self.damaged += 1
            self.need_keyframe.set()
            return
        if self.need_keyframe.is_set():
            if not keyframe:
                self.dropped_waiting += 1
                return
            self.need_keyframe.clear()
        if not self.queue.offer(CodedPicture(data, keyframe, wall)):
            self.dropped_full += 1
            self.last_overflow = time.monotonic()
            self.need_keyframe.set()

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

    ``need_keyframe`` is set when a unit could not be decoded: the network side then drops units until the next
    keyframe. ``last_progress`` (``time.monotonic()``) moves whenever a picture was decoded, for stall detection.
    """

    def __init__(
        self, *, stream_id: str, stream_uri: str, emit: Emit, downscale: tuple[int, int] | None,
        limit: int | None = None, threads: int = 1,
    ):
        self.stream_id = stream_id
        self.stream_uri = stream_uri
        self.emit = emit
        self.downscale = downscale
        self.limit = limit
        self.threads = threads
        self.to_bgr = BgrConverter()
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
        codec: Any = None
        while not self.stop.is_set():
            item = queue.take(0.1)
            if item is None:
                continue
            if isinstance(item, NewStream):
                codec = self._open(item)
                continue
            if codec is None:
                continue
            try:
                pictures = codec.decode(av.Packet(item.data))
            except av.FFmpegError:
                self.decode_errors += 1
                self.need_keyframe.set()
                continue
            for picture in pictures:
                if not self._deliver(picture, item.wall):
                    return

    def _open(self, stream: NewStream) -> Any:
        codec = av.CodecContext.create(stream.codec, "r")
        if stream.extradata:
            codec.extradata = stream.extradata
        codec.thread_type = "SLICE"  # frame threading would hold pictures back: latency on a live camera
        # 1 by default: cameras already decode in parallel (a thread each), and per-camera slice threads cost
        # ~12 % more CPU per frame in wake-ups (benchmarks/source_path.py); 0 = FFmpeg's choice
        codec.thread_count = self.threads
        return codec

    def _deliver(self, picture: Any, wall: float) -> bool:
        size = (picture.width, picture.height)
        target = scaled_size(*size, self.downscale)
        if target is None:
            image: np.ndarray = self.to_bgr(picture)
        else:
            image = self.to_bgr(picture, width=target[0], height=target[1], interpolation="AREA")
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
