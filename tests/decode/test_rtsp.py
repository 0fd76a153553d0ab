"""Decoder selection and ``decode=keyframes`` over real RTSP sessions (a GStreamer server on loopback): H.264
and H.265 keyframes bit-exact with a full software decode, and a decoder plugin failing mid-stream."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import structlog

from panoflow.plugins.rtsp import RtspSource
from tests.decode.decoders import FlakyDecoder
from tests.media import decode_bgr, make_clip, read_index
from tests.rtsp.helpers import Frames, mismatches, run_source
from tests.support.rtsp import GstServer, h264_launch, h265_launch

pytestmark = [pytest.mark.anyio, pytest.mark.rtsp]

Servers = Callable[..., GstServer]


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """90 frames of H.264 at 30 fps, a keyframe every 30 (1 s GOP)."""
    return make_clip(tmp_path_factory.mktemp("decode-rtsp") / "cam.mp4", frames=90, seed=21)


async def _receive(uri: str, n: int) -> tuple[Frames, RtspSource]:
    frames = Frames(stop_after=n)
    source = RtspSource(uri, stream_id="cam", options={})
    await run_source(source, frames, timeout=20)
    return frames, source


@pytest.mark.parametrize("codec", ["h264", "h265"])
async def test_keyframes_only_over_rtsp_bit_exact(servers: Servers, clip: Path, hevc_clip: Path,
                                                  codec: str) -> None:
    path, launch = (clip, h264_launch) if codec == "h264" else (hevc_clip, h265_launch)
    reference = decode_bgr(path)
    server = servers({"/cam": launch(path)})
    keyframes = list(range(0, len(reference), 30))
    frames, source = await _receive(server.url("/cam", query="decode=keyframes"), len(keyframes))
    assert [read_index(f.image) for f in frames.frames] == keyframes  # IDR (H.264) / IRAP (H.265) only
    assert mismatches(frames.frames, reference) == []
    stats = source.stats()
    assert stats["decode"] == "keyframes" and stats["frames_decoded"] == len(keyframes)
    assert stats["skipped_nonkey"] >= keyframes[-1] - len(keyframes) + 1 and stats["decode_errors"] == 0


async def test_a_decoder_failing_mid_stream_keeps_the_camera(servers: Servers, clip: Path,
                                                             flaky: type[FlakyDecoder]) -> None:
    flaky.fail_after = 7
    reference = decode_bgr(clip)
    server = servers({"/cam": h264_launch(clip)})
    with structlog.testing.capture_logs() as logs:
        frames, source = await _receive(server.url("/cam", query="decoder=flaky"), 7 + 60)
    assert [read_index(f.image) for f in frames.frames] == [*range(7), *range(30, 90)]
    assert mismatches(frames.frames, reference) == []
    assert [e["event"] for e in logs].count("decoder_fallback") == 1
    streaming = [e for e in logs if e["event"] == "camera_streaming"]
    assert streaming and streaming[0]["decoder"] == "flaky"
    stats = source.stats()
    assert stats["decoder"] == "software" and stats["decoder_reason"].startswith(
        "flaky failed after 7 pictures"
    )
    assert stats["sessions"] == 1  # the same session went on: no reconnection
