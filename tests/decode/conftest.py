"""Fixtures for the video decoder tests: real H.264 clips with a known GOP, and a decoder plugin that fails on
purpose registered for the test that asks for it (the plugins: :mod:`tests.decode.decoders`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from panoflow.plugins.decoders import DECODERS
from tests.decode.decoders import FRAMES, GOP, FlakyDecoder
from tests.media import make_clip


@pytest.fixture(scope="session")
def gop_clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """45 frames of 320x240 H.264 at 10 fps, one keyframe every 10 frames, in mp4 and as a raw Annex B
    stream."""
    where = tmp_path_factory.mktemp("decode-clips")
    return {fmt: make_clip(where / f"gop.{fmt}", frames=FRAMES, fps=GOP, container=fmt, seed=5)  # type: ignore[arg-type]
            for fmt in ("mp4", "h264")}


@pytest.fixture
def flaky() -> Iterator[type[FlakyDecoder]]:
    """:class:`FlakyDecoder` registered first (``auto`` tries it before the built-ins), its settings reset."""
    FlakyDecoder.fail_at_probe, FlakyDecoder.fail_after = False, None
    FlakyDecoder.instances = []
    with DECODERS.registered(FlakyDecoder, first=True):
        yield FlakyDecoder
