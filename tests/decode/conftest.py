"""Fixtures for the video decoder tests: real H.264 clips with a known GOP, and decoder plugins that fail on
purpose (registered by the test that uses them, then removed)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import av
import pytest
import structlog

from panoflow.plugins.decoders import DECODERS, DecoderSetup, VideoDecoder
from tests.media import make_clip

GOP = 10  # make_clip writes a keyframe every `fps` frames: fps=10 -> frames 0, 10, 20...
FRAMES = 45


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _default_structlog() -> None:
    structlog.reset_defaults()


@pytest.fixture(scope="session")
def gop_clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """45 frames of 320x240 H.264 at 10 fps, one keyframe every 10 frames, in mp4 and as a raw Annex B stream."""
    where = tmp_path_factory.mktemp("decode-clips")
    return {fmt: make_clip(where / f"gop.{fmt}", frames=FRAMES, fps=GOP, container=fmt, seed=5)  # type: ignore[arg-type]
            for fmt in ("mp4", "h264")}


class FlakyDecoder(VideoDecoder):
    """A "hardware" decoder plugin that decodes with libavcodec but fails on purpose: at its probe
    (``fail_at_probe``) or after ``fail_after`` pictures (a device lost mid-stream)."""

    name: ClassVar[str] = "flaky"
    hardware: ClassVar[bool] = True
    fail_at_probe: ClassVar[bool] = False
    fail_after: ClassVar[int | None] = None
    instances: ClassVar[list[FlakyDecoder]] = []

    def __init__(self, setup: DecoderSetup):
        super().__init__(setup)
        self.ctx: Any = av.CodecContext.create(setup.codec, "r")
        if setup.extradata:
            self.ctx.extradata = setup.extradata
        self.pictures = 0
        self.instances.append(self)

    def decode(self, packet: av.Packet | None) -> list[av.VideoFrame]:
        if self.fail_at_probe:
            raise RuntimeError("no such device (on purpose)")
        if self.fail_after is not None and self.pictures >= self.fail_after:
            raise RuntimeError("device lost (on purpose)")
        pictures = list(self.ctx.decode(packet))
        self.pictures += len(pictures)
        return pictures


class UnavailableDecoder(VideoDecoder):
    """A decoder plugin for hardware this machine never has."""

    name: ClassVar[str] = "nohw"

    @classmethod
    def unavailable(cls, codec: str) -> str | None:
        return "no such accelerator here (on purpose)"

    def decode(self, packet: av.Packet | None) -> list[av.VideoFrame]:  # pragma: no cover - never chosen
        raise AssertionError("an unavailable decoder was used")


@pytest.fixture
def flaky() -> Iterator[type[FlakyDecoder]]:
    """:class:`FlakyDecoder` registered first (``auto`` tries it before the built-ins), its settings reset."""
    FlakyDecoder.fail_at_probe, FlakyDecoder.fail_after = False, None
    FlakyDecoder.instances = []
    with DECODERS.registered(FlakyDecoder, first=True):
        yield FlakyDecoder
