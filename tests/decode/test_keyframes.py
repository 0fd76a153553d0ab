"""``?decode=keyframes``: only IDR/IRAP pictures are decoded (the rest never reach a decoder), bit-exact with
a full software decode of the same pictures, with the effective rate reported."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import av
import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from panoflow.plugins.decoders import DECODERS
from panoflow.plugins.sources import FileSource, read_index
from panoflow.plugins.uri import format_source_uri, parse_source_uri
from tests.decode.decoders import FRAMES, GOP, FlakyDecoder
from tests.decode.helpers import decode_units, digest
from tests.media import decode_bgr, make_clip
from tests.support.sources_and_sinks import run_source

pytestmark = pytest.mark.anyio

KEYFRAMES = list(range(0, FRAMES, GOP))


class CountingDecoder(FlakyDecoder):
    """Counts the packets it is given (the stream's own instance, after the probe's)."""

    name: ClassVar[str] = "counting"
    packets: ClassVar[list[int]] = []

    def decode(self, packet: av.Packet | None) -> list[av.VideoFrame]:
        if packet is not None:
            self.packets.append(id(self))
        return super().decode(packet)


async def test_file_source_delivers_only_keyframes_bit_exact(gop_clips: dict[str, Path]) -> None:
    reference = decode_bgr(gop_clips["mp4"])  # every picture, fully decoded in software
    source = FileSource(f"file://{gop_clips['mp4']}?decode=keyframes", stream_id="cam", options={})
    got = await run_source(source)
    assert [read_index(f.image) for f in got.frames] == KEYFRAMES
    assert [digest(f.image) for f in got.frames] == [digest(reference[i]) for i in KEYFRAMES]
    assert [f.seq for f in got.frames] == list(range(len(KEYFRAMES)))
    stats = source.stats()
    assert stats["decode"] == "keyframes" and stats["frames_decoded"] == len(KEYFRAMES)
    assert stats["skipped_nonkey"] == FRAMES - len(KEYFRAMES)


async def test_non_keyframes_never_reach_the_decoder(gop_clips: dict[str, Path]) -> None:
    CountingDecoder.packets, CountingDecoder.instances = [], []
    CountingDecoder.fail_at_probe, CountingDecoder.fail_after = False, None
    with DECODERS.registered(CountingDecoder):
        source = FileSource(f"file://{gop_clips['mp4']}?decode=keyframes&decoder=counting", stream_id="cam",
                            options={})
        got = await run_source(source)
    assert source.stats()["decoder"] == "counting" and len(got.frames) == len(KEYFRAMES)
    probe, stream = CountingDecoder.instances
    assert CountingDecoder.packets.count(id(probe)) == 1
    assert CountingDecoder.packets.count(id(stream)) == len(KEYFRAMES)


def test_rtsp_intake_queues_and_decodes_only_keyframes(gop_clips: dict[str, Path]) -> None:
    reference = decode_bgr(gop_clips["h264"])
    frames, dec, intake = decode_units(gop_clips["h264"], expect=len(KEYFRAMES), keyframes_only=True)
    assert [read_index(f.image) for f in frames] == KEYFRAMES
    assert [digest(f.image) for f in frames] == [digest(reference[i]) for i in KEYFRAMES]
    assert intake.skipped_nonkey == FRAMES - len(KEYFRAMES) and intake.dropped_waiting == 0
    assert intake.queue.high_water <= len(KEYFRAMES) + 1  # the session marker and the keyframes
    assert dec.video.stats()["decode"] == "keyframes" and dec.decode_errors == 0


async def test_effective_rate_is_reported_for_a_realtime_camera(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "rt.mp4", frames=31, fps=10)  # keyframes at 0, 1, 2 and 3 s
    source = FileSource(f"file://{clip}?decode=keyframes&realtime=1", stream_id="cam", options={})
    with structlog.testing.capture_logs() as logs:
        got = await run_source(source)
    assert [read_index(f.image) for f in got.frames] == [0, 10, 20, 30]
    fps = source.stats()["effective_fps"]
    assert 0.5 < fps <= 1.1  # paced: never faster than one keyframe a second, a loaded machine only slower
    done = [e for e in logs if e["event"] == "decode_summary"]
    assert len(done) == 1 and done[0]["frames_decoded"] == 4 and done[0]["skipped"] == 27
    assert done[0]["effective_fps"] == fps and done[0]["decode"] == "keyframes" == done[0]["decoding"]


@given(decoder=st.from_regex(r"[a-z][a-z0-9_]{0,31}", fullmatch=True),
       decode=st.sampled_from(["all", "keyframes", "auto"]), realtime=st.booleans(),
       below=st.floats(0.0, 1.0, exclude_min=True), window=st.floats(0.01, 1e6),
       convert=st.sampled_from(["demand", "eager"]))
def test_decoder_options_round_trip_through_a_uri(decoder: str, decode: str, realtime: bool, below: float,
                                                  window: float, convert: str) -> None:
    options = {"decoder": decoder, "decode": decode, "realtime": realtime, "auto_below": below,
               "auto_window": window, "convert": convert}
    uri = format_source_uri("file", "/clips/a.mp4", options)
    assert {k: parse_source_uri(uri).options[k] for k in options} == options


@pytest.mark.parametrize("bad", ["none", "key", "1", ""])
def test_a_bad_decode_mode_names_the_choices(bad: str) -> None:
    with pytest.raises(ValueError, match=r"option 'decode' for source .*expected all, keyframes or auto"):
        parse_source_uri("file:///c.mp4", {"decode": bad})


async def test_a_looping_realtime_file_keeps_its_pace_when_only_keyframes_are_decoded(tmp_path: Path) -> None:
    # keyframes at 0 and 1 s of a 2 s clip: a looped pass lasts 2 s, not 1 s (the skipped pictures count)
    clip = make_clip(tmp_path / "loop.mp4", frames=20, fps=10)
    source = FileSource(f"file://{clip}?decode=keyframes&realtime=1&loop=1&frames=5", stream_id="cam",
                        options={})
    got = await run_source(source)
    stamps = [sec + usec / 1e6 for sec, usec in (f.capture_time for f in got.frames)]
    assert [read_index(f.image) for f in got.frames] == [0, 10, 0, 10, 0]
    assert stamps[-1] - stamps[0] >= 3.9  # 4 s of media (0, 1, 2, 3, 4); 3 s before the fix
