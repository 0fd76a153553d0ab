"""The unit that flows along every edge: one decoded image of one stream, plus what code drew on it.

A source may hand a frame its picture still undecoded into BGR (a :class:`DeferredImage`): the conversion then
runs on the first access of :attr:`Frame.image`, in whichever thread asks first, and only once. Frames a slow
consumer never takes (replaced under the ``latest`` policy) are never converted. Core knows nothing of codecs:
the deferred image holds a callable the source made.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DeferredImage", "Frame", "Label", "Overlay", "Rect"]


@dataclass(frozen=True, slots=True)
class Label:
    """Text at (x, y), both relative to the image size in [0, 1]."""

    text: str
    x: float
    y: float


@dataclass(frozen=True, slots=True)
class Rect:
    """Rectangle with corners relative to the image size in [0, 1]."""

    left: float
    top: float
    right: float
    bottom: float


Overlay = Label | Rect


class DeferredImage:
    """An image made on first use: ``convert()`` runs once, under a lock, in the first thread that calls
    :meth:`get`; every later call (any thread) gets the same array. ``shape`` and ``dtype`` are known before
    (a frame's size never needs the conversion). After the conversion the callable, and the decoded picture it
    holds, are let go. A conversion that raises is tried again by the next caller."""

    __slots__ = ("_convert", "_image", "_lock", "dtype", "shape")

    def __init__(self, convert: Callable[[], Any], shape: tuple[int, ...], dtype: str = "uint8"):
        self._convert: Callable[[], Any] | None = convert
        self._image: Any = None
        self._lock = threading.Lock()
        self.shape = tuple(shape)
        self.dtype = dtype

    @property
    def converted(self) -> bool:
        return self._convert is None

    def get(self) -> Any:
        image = self._image
        if image is not None:
            return image
        with self._lock:
            if self._convert is not None:
                self._image = self._convert()
                self._convert = None
            return self._image

    def __repr__(self) -> str:
        return f"<DeferredImage {self.shape} {'converted' if self.converted else 'pending'}>"


@dataclass(frozen=True, slots=True, init=False)
class Frame:
    """One image of one stream.

    ``image`` is a numpy ``HxWx3 uint8`` BGR array on the CPU (or a CuPy array on a GPU). It is shared, never
    copied, between the source, code nodes and sinks of one process: sinks draw overlays on a copy of their
    own. A source may build the frame with a :class:`DeferredImage` instead (``pixels`` holds what it was
    given): ``image`` then converts it on first access, once. ``width`` and ``height`` never convert.
    ``capture_time`` is ``(seconds, microseconds)`` since the epoch, as Panorama's ``media.time_stamp``.
    """

    pixels: Any
    stream_id: str
    seq: int
    capture_time: tuple[int, int]
    stream_uri: str = ""
    is_cached: bool = False
    overlays: tuple[Overlay, ...] = field(default=())
    # monotonic time (time.perf_counter) the source produced this frame; used for per-hop latency metrics
    t_produced: float = 0.0

    def __init__(self, image: Any, stream_id: str, seq: int, capture_time: tuple[int, int],
                 stream_uri: str = "", is_cached: bool = False, overlays: tuple[Overlay, ...] = (),
                 t_produced: float = 0.0):
        put = object.__setattr__
        put(self, "pixels", image)
        put(self, "stream_id", stream_id)
        put(self, "seq", seq)
        put(self, "capture_time", capture_time)
        put(self, "stream_uri", stream_uri)
        put(self, "is_cached", is_cached)
        put(self, "overlays", overlays)
        put(self, "t_produced", t_produced)

    @property
    def image(self) -> Any:
        """The image array (a deferred one is converted now, if no one did before)."""
        pixels = self.pixels
        return pixels.get() if type(pixels) is DeferredImage else pixels

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    def replace(self, **changes: Any) -> Frame:
        """A new Frame sharing the same image (no pixel copy, no conversion) with ``changes`` applied;
        ``image`` replaces the picture."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        values["image"] = values.pop("pixels")
        if "pixels" in changes:
            changes = {**changes, "image": changes["pixels"]}
            del changes["pixels"]
        unknown = set(changes) - set(values)
        if unknown:
            raise TypeError(f"Frame has no field {min(unknown)!r}")
        values.update(changes)
        return Frame(**values)
