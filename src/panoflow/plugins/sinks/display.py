"""The ``display`` sink, panoflow's HDMI output: overlays drawn, streams tiled, served as an MJPEG preview.

Options: ``size`` (``WIDTHxHEIGHT``; default the stream's own size for one stream, 1280x720 for several),
``preview`` (``HOST:PORT`` to serve ``http://HOST:PORT/``; port 0 picks a free one, see
:attr:`DisplaySink.port`), ``quality`` (JPEG quality, default 80).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from panoflow.core.frame import Frame
from panoflow.plugins.sinks.base import TilingSink
from panoflow.plugins.sinks.draw import compose
from panoflow.plugins.sinks.mjpeg import MjpegFeed, PreviewServer
from panoflow.plugins.uri import Option, parse_host_port, parse_positive_int, parse_size

__all__ = ["DisplaySink"]


def _parse_quality(value: Any) -> int:
    quality = parse_positive_int(value)
    if quality > 100:
        raise ValueError(f"expected a JPEG quality from 1 to 100, got {value!r}")
    return quality


def _parse_key(value: Any) -> str:
    text = str(value)
    if not re.fullmatch(r"[A-Za-z0-9_-]{16,128}", text):
        raise ValueError("preview_key must be 16 to 128 URL-safe characters")
    return text


DISPLAY_OPTIONS: Mapping[str, Option] = {
    o.name: o
    for o in (
        Option("size", parse_size, None, "output size WIDTHxHEIGHT"),
        Option("preview", parse_host_port, None, "serve an MJPEG preview on HOST:PORT"),
        Option("quality", _parse_quality, 80, "JPEG quality of the preview (1-100)"),
        Option("preview_key", _parse_key, None, "serve the preview only under /KEY/ (set by panoflow serve)"),
    )
}


class DisplaySink(TilingSink):
    """Draws every stream's overlays, tiles the streams into one picture and (with ``preview``) serves it.

    :attr:`last_output` is the latest composed picture; :attr:`port` and :attr:`url` the preview's address
    once it is listening.
    """

    name = "display"
    option_table = DISPLAY_OPTIONS

    def __init__(self, *, node_id: str, options: Mapping[str, Any]):
        super().__init__(node_id=node_id, options=options)
        self.last_output: np.ndarray | None = None
        self.feed = MjpegFeed(quality=self.config["quality"], title=node_id)
        self.server: PreviewServer | None = None
        if self.config["preview"] is not None:
            host, port = self.config["preview"]
            self.server = PreviewServer(self.feed, host, port, self.config["preview_key"])

    @property
    def port(self) -> int | None:
        """The preview's bound port (None without a preview or before it listens)."""
        return self.server.port if self.server is not None and self.server.listening else None

    @property
    def url(self) -> str | None:
        return self.server.url if self.port is not None and self.server is not None else None

    async def _started(self) -> None:
        if self.server is not None:
            await self.server.start(node_id=self.node_id)

    def _process(self, frames: list[Frame]) -> np.ndarray:
        return compose(frames, self.config["size"])

    def _processed(self, result: np.ndarray) -> None:
        self.last_output = result
        self.feed.publish(result)

    async def _finish(self) -> None:
        if self.server is not None:
            await self.server.stop()
