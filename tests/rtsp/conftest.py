"""Fixtures for the RTSP tests: clips made with PyAV, GStreamer RTSP servers, and a way to run sources."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import pytest

from panoflow.plugins.sources import TestPattern
from tests.media import make_clip
from tests.rtsp.server import GstServer, gst_unavailable


@pytest.fixture(scope="session")
def gst() -> None:
    """Skips the test (with the reason) where the GStreamer RTSP server cannot run."""
    reason = gst_unavailable()
    if reason:
        pytest.skip(reason)


@pytest.fixture
def servers(gst: None) -> Iterator[Callable[..., GstServer]]:
    """``servers(mounts, auth=None)`` starts a server; every one is stopped at the end of the test."""
    started: list[GstServer] = []

    def start(mounts: dict[str, str], **kw: object) -> GstServer:
        server = GstServer(mounts, **kw)  # type: ignore[arg-type]
        started.append(server)
        server.start()
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def rtsp_clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("rtsp-clips")
    return {
        "small": make_clip(d / "small.mp4", frames=90, size=(320, 240), seed=11),
        "long": make_clip(d / "long.mp4", frames=600, size=(320, 240), seed=12),
        "other": make_clip(d / "other.mp4", frames=90, size=(352, 288), seed=13),
    }


def make_hevc_clip(path: Path, *, frames: int, size: tuple[int, int], fps: int = 30, seed: int = 0) -> Path:
    """H.265 (libx265, no B-frames, closed GOP of ``fps``) in MP4, from the same pattern as ``make_clip``."""
    pattern = TestPattern(size, seed=seed)
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx265", rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {
            "preset": "veryfast", "tune": "zerolatency",
            "x265-params": f"log-level=error:bframes=0:keyint={fps}:min-keyint={fps}:scenecut=0:repeat-headers=1",
        }
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(pattern.render(i), format="bgr24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


@pytest.fixture(scope="session")
def hevc_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_hevc_clip(tmp_path_factory.mktemp("rtsp-hevc") / "hevc.mp4", frames=60, size=(320, 240), seed=14)


@pytest.fixture(scope="session")
def big_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2560x1440 (3.7 megapixels): the appliance would scale it to 1920x1080."""
    return make_clip(tmp_path_factory.mktemp("rtsp-big") / "big.mp4", frames=20, size=(2560, 1440), seed=15)
