"""Decoder plugins: availability on this machine, ``?decoder=`` selection, the probe at start and the software
fallback mid-stream, on real clips through the file source and the RTSP decoding thread."""

from __future__ import annotations

import glob
from pathlib import Path

import av
import pytest
import structlog

from panoflow.plugins.decoders import (
    DECODERS,
    DecoderSetup,
    NvdecDecoder,
    StreamDecoder,
    V4l2Decoder,
    VaapiDecoder,
)
from panoflow.plugins.rtsp.source import RtspSource
from panoflow.plugins.sources import FileSource, read_index
from tests.decode.decoders import FRAMES, GOP, NO_DRI, NO_GPU, FlakyDecoder, UnavailableDecoder
from tests.decode.helpers import access_units, decode_units, digest
from tests.media import decode_bgr
from tests.support.sources_and_sinks import run_source

pytestmark = pytest.mark.anyio



def test_every_builtin_decoder_reports_its_availability_without_failing() -> None:
    availability = DECODERS.availability("h264")
    assert list(availability) == ["nvdec", "vaapi", "v4l2", "software"]
    assert availability["software"] == "available"
    for text in availability.values():
        assert (
            text == "available" or text.startswith("unavailable: ") and len(text) > len("unavailable: ") + 5
        )
    if NO_GPU:
        assert NvdecDecoder.unavailable("h264") is not None
    if NO_DRI:
        assert "VA-API" in availability["vaapi"] or "/dev/dri" in availability["vaapi"]
    if not glob.glob("/dev/video*"):
        assert V4l2Decoder.unavailable("h264") is not None
    if NO_DRI:
        assert VaapiDecoder.unavailable("hevc") is not None


async def test_auto_decodes_bit_exact_and_says_what_it_passed_over(gop_clips: dict[str, Path]) -> None:
    reference = decode_bgr(gop_clips["mp4"])
    source = FileSource(f"file://{gop_clips['mp4']}?decoder=auto", stream_id="cam", options={})
    with structlog.testing.capture_logs() as logs:
        got = await run_source(source)
    assert [digest(f.image) for f in got.frames] == [digest(r) for r in reference]
    stats = source.stats()
    selected = [e for e in logs if e["event"] == "decoder_selected"]
    assert len(selected) == 1 and selected[0]["decoder"] == stats["decoder"]
    if NO_GPU and NO_DRI:
        assert stats["decoder"] == "software"
        assert "nvdec" in stats["decoder_reason"] and "vaapi" in stats["decoder_reason"]
        assert selected[0]["passed_over"] == stats["decoder_reason"]
    assert stats["frames_decoded"] == FRAMES and stats["decode"] == "all"


async def test_a_decoder_failing_its_probe_is_passed_over(gop_clips: dict[str, Path],
                                                          flaky: type[FlakyDecoder]) -> None:
    flaky.fail_at_probe = True
    reference = decode_bgr(gop_clips["mp4"])
    for choice in ("auto", "flaky"):
        source = FileSource(f"file://{gop_clips['mp4']}?decoder={choice}", stream_id="cam", options={})
        got = await run_source(source)
        assert [digest(f.image) for f in got.frames] == [digest(r) for r in reference]
        stats = source.stats()
        assert stats["decoder"] == "software"
        assert (
            "flaky failed its probe decode: RuntimeError: no such device (on purpose)"
            in stats["decoder_reason"]
        )
    assert len(flaky.instances) == 2  # one probe per source, never used for the stream


async def test_a_working_plugin_decoder_is_chosen_after_its_probe(gop_clips: dict[str, Path],
                                                                  flaky: type[FlakyDecoder]) -> None:
    source = FileSource(f"file://{gop_clips['mp4']}", stream_id="cam", options={})
    got = await run_source(source)
    assert source.stats()["decoder"] == "flaky" and len(got.frames) == FRAMES
    assert len(flaky.instances) == 2  # the probe, then the stream's own
    assert flaky.instances[1].pictures == FRAMES


async def test_an_unavailable_decoder_is_never_opened(gop_clips: dict[str, Path]) -> None:
    with DECODERS.registered(UnavailableDecoder, first=True):
        source = FileSource(f"file://{gop_clips['mp4']}?decoder=nohw", stream_id="cam", options={"frames": 3})
        got = await run_source(source)
    assert len(got.frames) == 3
    assert source.stats()["decoder_reason"] == "nohw no such accelerator here (on purpose)"


async def test_mid_stream_failure_falls_back_to_software_once(gop_clips: dict[str, Path],
                                                              flaky: type[FlakyDecoder]) -> None:
    flaky.fail_after = 13
    reference = decode_bgr(gop_clips["mp4"])
    source = FileSource(f"file://{gop_clips['mp4']}?decoder=flaky", stream_id="cam", options={})
    with structlog.testing.capture_logs() as logs:
        got = await run_source(source)
    indices = [read_index(f.image) for f in got.frames]
    # 13 pictures from the failing decoder, then software from the next keyframe on: the camera goes on
    assert indices == [*range(13), *range(2 * GOP, FRAMES)]
    assert [digest(f.image) for f in got.frames] == [digest(reference[i]) for i in indices]
    fallbacks = [e for e in logs if e["event"] == "decoder_fallback"]
    assert len(fallbacks) == 1 and fallbacks[0]["failed"] == "flaky" and fallbacks[0]["after_frames"] == 13
    stats = source.stats()
    assert stats["decoder"] == "software" and stats["decoder_reason"].startswith(
        "flaky failed after 13 pictures"
    )


def test_rtsp_decoding_thread_falls_back_without_losing_the_camera(gop_clips: dict[str, Path],
                                                                   flaky: type[FlakyDecoder]) -> None:
    flaky.fail_after = 5
    reference = decode_bgr(gop_clips["h264"])
    expect = 5 + FRAMES - GOP
    frames, dec, _intake = decode_units(gop_clips["h264"], expect=expect, decoder="flaky")
    indices = [read_index(f.image) for f in frames]
    assert indices == [*range(5), *range(GOP, FRAMES)]
    assert [digest(f.image) for f in frames] == [digest(reference[i]) for i in indices]
    assert dec.video.name == "software" and dec.video.fell_back and dec.decode_errors == 0


def test_stream_decoder_stays_on_software_after_a_fallback_across_sessions(gop_clips: dict[str, Path],
                                                                           flaky: type[FlakyDecoder]) -> None:
    flaky.fail_after = 2
    frames, dec, _ = decode_units(gop_clips["h264"], expect=2 + FRAMES - GOP, decoder="auto")
    assert dec.video.fell_back and len(frames) == 2 + FRAMES - GOP
    video: StreamDecoder = dec.video
    video.start(DecoderSetup("h264"))  # a reconnection: no second try of the decoder that failed
    before = len(flaky.instances)
    data, key = access_units(gop_clips["h264"])[0]
    assert key and len(video.decode(av.Packet(data), key)) == 1
    assert video.name == "software" and len(flaky.instances) == before


@pytest.mark.parametrize("uri", ["file:///c.mp4?decoder=quantum", "rtsp://cam/s?decoder=quantum"])
def test_an_unknown_decoder_names_the_valid_ones(uri: str) -> None:
    cls = RtspSource if uri.startswith("rtsp") else FileSource
    with pytest.raises(ValueError, match=r"unknown decoder 'quantum' for .*valid decoders: auto, nvdec, "
                                         r"vaapi, v4l2, software"):
        cls(uri, stream_id="cam", options={})


@pytest.mark.parametrize("bad", ["", "9x", "nv dec", "x" * 40])
def test_a_malformed_decoder_name_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="option 'decoder'"):
        FileSource("file:///c.mp4", stream_id="cam", options={"decoder": bad})


def test_rtsp_stats_name_the_decoder_before_and_after_start() -> None:
    source = RtspSource("rtsp://user:pw@cam/s?decoder=software&decode=keyframes", stream_id="cam", options={})
    assert source.stats()["decoder"] is None
    assert (
        source.settings.options["decoder"] == "software" and source.settings.options["decode"] == "keyframes"
    )
