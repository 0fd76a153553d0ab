"""The unit that flows along every edge: one decoded image of one stream, plus what code drew on it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Union

__all__ = ["Frame", "Label", "Overlay", "Rect"]


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


Overlay = Union[Label, Rect]


@dataclass(frozen=True, slots=True)
class Frame:
    """One image of one stream.

    ``image`` is a numpy ``HxWx3 uint8`` BGR array on the CPU (or a CuPy array on a GPU). It is shared, never copied,
    between the source, code nodes and sinks of one process: sinks draw overlays on a copy of their own.
    ``capture_time`` is ``(seconds, microseconds)`` since the epoch, as Panorama's ``media.time_stamp``.
    """

    image: Any
    stream_id: str
    seq: int
    capture_time: tuple[int, int]
    stream_uri: str = ""
    is_cached: bool = False
    overlays: tuple[Overlay, ...] = field(default=())
    # monotonic time (time.perf_counter) the source produced this frame; used for per-hop latency metrics
    t_produced: float = 0.0

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    def replace(self, **changes: Any) -> Frame:
        """A new Frame sharing the same image (no pixel copy) with ``changes`` applied."""
        return dataclasses.replace(self, **changes)
