"""Fixtures for the built-in plugin tests: real H.264 clips (made once per session) and helpers to drive sources
and sinks without a runtime."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pytest
import structlog

from panoflow.core.bases import MediaSink, MediaSource
from panoflow.core.bus import Inbox
from panoflow.core.frame import Frame, Overlay
from tests.media import make_clip


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _default_structlog() -> None:
    """In-process CLI tests configure structlog onto a captured stream that pytest closes afterwards: start each
    plugin test from structlog's defaults so our log calls never write to a closed file."""
    structlog.reset_defaults()


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("plugin-clips")


@pytest.fixture(scope="session")
def clips(clip_dir: Path) -> dict[str, Path]:
    """One 30-frame 320x240 clip per container (mp4, mkv, raw .264, mpegts)."""
    return {
        fmt: make_clip(clip_dir / f"c.{fmt}", frames=30, size=(320, 240), container=fmt, seed=3)
        for fmt in ("mp4", "mkv", "h264", "ts")
    }


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
    collector = Collector(stop_after)
    await source.run(collector)
    return collector


def frame(image: np.ndarray, stream_id: str = "cam", seq: int = 0, overlays: Iterable[Overlay] = ()) -> Frame:
    return Frame(image=image, stream_id=stream_id, seq=seq, capture_time=(0, 0), overlays=tuple(overlays))


async def feed_sink(sink: MediaSink, batches: Iterable[dict[str, Frame]]) -> None:
    """Run ``sink`` over ``batches`` (each delivered as one batch) through a real inbox, then close it."""
    import anyio

    batches = list(batches)
    streams = sorted({sid for batch in batches for sid in batch})
    inbox: Inbox[Frame] = Inbox("test", "block(64)", streams)
    for batch in batches:
        for sid, f in batch.items():
            assert inbox.put(sid, f)
    inbox.close()
    with anyio.fail_after(30):
        await sink.run(inbox)
