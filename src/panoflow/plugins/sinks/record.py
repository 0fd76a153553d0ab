"""The ``record`` sink: what the display would show, written to an H.264 MP4 with PyAV (libx264, yuv420p).

Options: ``path`` (required; parent directories are created), ``fps`` (default 30; frames are written at a
constant rate, one per batch), ``size`` (as the display: the stream's own size for one stream, 1280x720 for
several; rounded down to even numbers for yuv420p).
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path
from typing import Any

import anyio.to_thread
import av
import numpy as np

from panoflow.core.frame import Frame
from panoflow.plugins.sinks.base import TilingSink
from panoflow.plugins.sinks.draw import compose, output_size
from panoflow.plugins.uri import Option, parse_positive_int, parse_size

__all__ = ["RecordSink"]


def _parse_path(value: Any) -> Path:
    text = str(value)
    if not text:
        raise ValueError("expected a file path")
    return Path(text).expanduser()


RECORD_OPTIONS: Mapping[str, Option] = {
    o.name: o
    for o in (
        Option("path", _parse_path, None, "MP4 file to write (required)"),
        Option("fps", parse_positive_int, 30, "frame rate of the recording"),
        Option("size", parse_size, None, "output size WIDTHxHEIGHT"),
    )
}


class RecordSink(TilingSink):
    """Tiles and draws like :class:`~panoflow.plugins.sinks.display.DisplaySink`, then encodes each
    picture."""

    name = "record"
    option_table = RECORD_OPTIONS

    def __init__(self, *, node_id: str, options: Mapping[str, Any]):
        super().__init__(node_id=node_id, options=options)
        if self.config["path"] is None:
            raise ValueError(f"record sink {node_id}: option 'path' is required")
        self.path: Path = self.config["path"]
        self.size: tuple[int, int] | None = None  # fixed by the first picture
        self.frames_written = 0
        self._container: Any = None
        self._stream: Any = None

    def _open(self, size: tuple[int, int]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        container = av.open(str(self.path), "w", format="mp4")
        stream = container.add_stream("libx264", rate=self.config["fps"])
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "23"}
        self._container, self._stream = container, stream
        self._log.info("record_started", path=str(self.path), size=f"{size[0]}x{size[1]}")

    def _process(self, frames: list[Frame]) -> np.ndarray:
        if self.size is None:
            w, h = output_size(frames, self.config["size"])
            self.size = (max(2, w - w % 2), max(2, h - h % 2))
            self._open(self.size)
        picture = compose(frames, self.size)
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(picture), format="bgr24")
        vf.pts, vf.time_base = self.frames_written, Fraction(1, self.config["fps"])
        self._container.mux(self._stream.encode(vf))
        self.frames_written += 1
        return picture

    def _close(self) -> None:
        if self._container is None:
            return
        container, self._container = self._container, None
        try:
            container.mux(self._stream.encode(None))
        finally:
            container.close()
        self._log.info("record_finished", path=str(self.path), frames=self.frames_written)

    async def _finish(self) -> None:
        await anyio.to_thread.run_sync(self._close)
