"""Test media: real H.264 clips written with PyAV, and PyAV's own decode as the bit-exact reference.

Every frame carries its index in 16 black/white 8x8 blocks at the top-left (``read_index`` reads it back after
compression), over the same moving pattern as the ``testsrc`` source.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
import numpy as np

from panoflow.plugins.sources import TestPattern, read_index

__all__ = ["CONTAINER_FORMATS", "decode_bgr", "make_clip", "read_index"]

Container = Literal["mp4", "mkv", "h264", "ts"]
#: our container name -> (FFmpeg muxer, file suffix)
CONTAINER_FORMATS: dict[str, tuple[str, str]] = {
    "mp4": ("mp4", ".mp4"),
    "mkv": ("matroska", ".mkv"),
    "h264": ("h264", ".264"),
    "ts": ("mpegts", ".ts"),
}


def make_clip(
    path: str | Path,
    *,
    frames: int,
    size: tuple[int, int] = (320, 240),
    fps: int = 30,
    container: Container = "mp4",
    seed: int = 0,
) -> Path:
    """Write ``frames`` frames of H.264 (libx264, yuv420p, one slice per frame, no B-frames, GOP = ``fps``) to
    ``path`` and return it. ``size`` must be even and at least 128x16."""
    fmt, _suffix = CONTAINER_FORMATS[container]
    path = Path(path)
    pattern = TestPattern(size, seed=seed)
    keyint = max(1, fps)
    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {
            "preset": "veryfast",
            "tune": "zerolatency",
            "bf": "0",
            "g": str(keyint),
            "x264-params": (f"sliced-threads=0:repeat-headers=1:keyint={keyint}:min-keyint={keyint}"
                            ":scenecut=0"),
        }
        time_base = Fraction(1, fps)
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(pattern.render(i), format="bgr24")
            frame.pts, frame.time_base = i, time_base
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def decode_bgr(path: str | Path) -> list[np.ndarray]:
    """Every frame of ``path`` as PyAV's own ``bgr24`` ndarray: the reference for bit-exact comparisons."""
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
