"""Shared-memory segments that carry frames between the runtime and an application process.

Each segment is a ``memfd`` holding one frame, mapped once on each side; its descriptor is sent to the
application the first time it is used (SCM_RIGHTS). A segment is reused for a later frame only when both sides
are done with it: the application reported it released (its last array on it was garbage) and no array the
runtime made on it (frames the app put, now with sinks) is alive. The pool grows to what is in flight and
reuses segments of a fitting size, so steady state maps and faults no new memory.
"""

from __future__ import annotations

import collections
import mmap
import os
import threading
import weakref
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import structlog

__all__ = ["FramePool", "PoolExhausted", "Segment"]

log = structlog.get_logger(__name__)


class PoolExhausted(RuntimeError):
    """The application holds more frames than the pool allows (it keeps references to old frames)."""


@dataclass(eq=False)
class Segment:
    id: int
    size: int
    fd: int
    mm: mmap.mmap
    app_holds: bool = False  # delivered to the app and not released by it yet
    sent: bool = False  # the app has this segment's descriptor
    views: int = 0  # live runtime arrays on it
    # the image last copied in (kept alive while the app holds it)
    source: Any = field(default=None, repr=False)

    def array(self, shape: tuple[int, ...], dtype: np.dtype[Any]) -> np.ndarray:
        return np.ndarray(shape, dtype=dtype, buffer=self.mm)


class FramePool:
    """The segments of one application process. ``max_segments`` bounds what an app that never lets frames go
    can pin (each segment is one frame)."""

    def __init__(self, name: str, max_segments: int = 256):
        self.name = name
        self.max_segments = max_segments
        self._segments: dict[int, Segment] = {}
        self._free: list[Segment] = []
        self._dead_views: collections.deque[int] = collections.deque()  # appended by finalizers, any thread
        self._lock = threading.Lock()
        self._next = 1
        self.copies = 0  # frames copied into a segment (a number tests and benchmarks read)

    def __len__(self) -> int:
        return len(self._segments)

    def get(self, segment_id: int) -> Segment | None:
        return self._segments.get(segment_id)

    def acquire(self, nbytes: int) -> Segment:
        """A segment of at least ``nbytes`` that neither side uses (a free one that fits, or a new one)."""
        with self._lock:
            self._collect()
            best = None
            for seg in self._free:
                if nbytes <= seg.size <= 2 * nbytes + 4096 and (best is None or seg.size < best.size):
                    best = seg
            if best is not None:
                self._free.remove(best)
                return best
            if len(self._segments) >= self.max_segments:
                if self._free:  # sizes changed: drop the largest free one to make room
                    self._destroy(max(self._free, key=lambda s: s.size))
                else:
                    raise PoolExhausted(
                        f"the application holds {len(self._segments)} frames without letting them go (at "
                        f"most {self.max_segments}); keep copies (image.copy()) of frames you keep, not the "
                        "frames"
                    )
            seg_id, self._next = self._next, self._next + 1
            size = max(nbytes, 1)
            fd = os.memfd_create(f"panoflow-{self.name}-{seg_id}", os.MFD_CLOEXEC)
            os.ftruncate(fd, size)
            seg = Segment(seg_id, size, fd, mmap.mmap(fd, size))
            self._segments[seg_id] = seg
            return seg

    def fill(self, image: np.ndarray) -> Segment:
        """A segment holding a copy of ``image`` (the one copy a frame takes on its way to the app)."""
        seg = self.acquire(image.nbytes)
        np.copyto(seg.array(image.shape, image.dtype), image, casting="no")
        seg.source = image
        seg.app_holds = True
        self.copies += 1
        return seg

    def view(self, seg: Segment, shape: tuple[int, ...], dtype: np.dtype[Any]) -> np.ndarray:
        """A runtime array on ``seg`` (a frame the app put); the segment stays busy while it lives."""
        arr = seg.array(shape, dtype)
        with self._lock:
            seg.views += 1
        weakref.finalize(arr, self._dead_views.append, seg.id)
        return arr

    def released_by_app(self, segment_id: int) -> bool:
        """The app let go of a segment; False for an id it does not hold (ignored, logged by the caller)."""
        with self._lock:
            seg = self._segments.get(segment_id)
            if seg is None or not seg.app_holds:
                return False
            seg.app_holds = False
            seg.source = None
            self._maybe_free(seg)
            return True

    def close(self) -> None:
        with self._lock:
            for seg in list(self._segments.values()):
                self._destroy(seg)
            self._free.clear()

    # ------------------------------------------------------------------ under the lock
    def _collect(self) -> None:
        while self._dead_views:
            seg = self._segments.get(self._dead_views.popleft())
            if seg is not None:
                seg.views -= 1
                self._maybe_free(seg)

    def _maybe_free(self, seg: Segment) -> None:
        if not seg.app_holds and seg.views <= 0 and seg not in self._free:
            self._free.append(seg)

    def _destroy(self, seg: Segment) -> None:
        self._segments.pop(seg.id, None)
        if seg in self._free:
            self._free.remove(seg)
        # Never mm.close(): numpy arrays on the mapping hold the mmap object, not a buffer export, so closing
        # it under a frame still in a sink would leave that frame pointing at unmapped memory. The mapping
        # goes when its last array does; the descriptor can go now.
        os.close(seg.fd)
