"""Drive source and sink plugins without a runtime: an ``emit`` that keeps frames (:class:`Collector`),
:func:`run_source`, :func:`frame` and :func:`feed_sink` (batches through a real inbox)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

import anyio
import numpy as np

from panoflow.core.bases import MediaSink, MediaSource
from panoflow.core.bus import Inbox
from panoflow.core.frame import Frame, Overlay


class Collector:
    """An ``emit`` that keeps every frame; returns False (stop) after ``stop_after`` frames if given."""

    def __init__(self, stop_after: int | None = None, on_frame: Callable[[Frame], None] | None = None):
        self.frames: list[Frame] = []
        self.stop_after = stop_after
        self.on_frame = on_frame
        self.threads: set[threading.Thread] = set()

    def __call__(self, frame: Frame) -> bool:
        self.threads.add(threading.current_thread())
        self.frames.append(frame)
        if self.on_frame is not None:
            self.on_frame(frame)
        return self.stop_after is None or len(self.frames) < self.stop_after


async def run_source(source: MediaSource, stop_after: int | None = None) -> Collector:
    """Run ``source`` until it ends (or ``stop_after`` frames); returns what it emitted."""
    collector = Collector(stop_after)
    await source.run(collector)
    return collector


def frame(image: np.ndarray, stream_id: str = "cam", seq: int = 0, overlays: Iterable[Overlay] = ()) -> Frame:
    """A frame of ``image`` captured at time 0."""
    return Frame(image=image, stream_id=stream_id, seq=seq, capture_time=(0, 0), overlays=tuple(overlays))


async def feed_sink(sink: MediaSink, batches: Iterable[dict[str, Frame]]) -> None:
    """Run ``sink`` over ``batches`` (each delivered as one batch) through a real inbox, then close it."""
    batches = list(batches)
    streams = sorted({sid for batch in batches for sid in batch})
    inbox: Inbox[Frame] = Inbox("test", "block(64)", streams)
    for batch in batches:
        for sid, f in batch.items():
            assert inbox.put(sid, f)
    inbox.close()
    with anyio.fail_after(30):
        await sink.run(inbox)
