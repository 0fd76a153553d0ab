"""Latency bound of the decoder queue (``max_delay_ms``): a decoder that falls behind drops to the next
keyframe.

The queue's rules with a fake clock (examples and a property), then a real GStreamer camera read by a source
whose decoder thread is held back by a slow ``emit``: ages stay bounded, every frame is bit-exact with a fresh
PyAV decode from the keyframe it restarted at, and one log line per drop episode. With the defaults and a
consumer that keeps up, nothing is dropped.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import pytest
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st

from panoflow.core.frame import Frame
from panoflow.plugins.rtsp import RtspSource
from panoflow.plugins.rtsp.decode import CodedPicture, Intake, NewStream, Offer, Skipped, UnitQueue
from panoflow.plugins.rtsp.options import DEFAULT_MAX_DELAY_MS, parse_rtsp_uri
from tests.media import decode_bgr, read_index
from tests.rtsp.helpers import Frames, mismatches, run_source
from tests.support.rtsp import GstServer, h264_launch

Servers = Callable[..., GstServer]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def unit(n: int, keyframe: bool) -> CodedPicture:
    return CodedPicture(n.to_bytes(4, "big"), keyframe, float(n))


def number(item: object) -> int:
    assert isinstance(item, CodedPicture)
    return int.from_bytes(item.data, "big")


# ---------------------------------------------------------------- the option
def test_max_delay_option() -> None:
    assert parse_rtsp_uri("rtsp://h/x").options["max_delay_ms"] == DEFAULT_MAX_DELAY_MS == 500.0
    assert parse_rtsp_uri("rtsp://h/x?max_delay_ms=250").options["max_delay_ms"] == 250.0
    assert parse_rtsp_uri("rtsp://h/x?max_delay_ms=off").options["max_delay_ms"] is None
    assert parse_rtsp_uri("rtsp://h/x", {"max_delay_ms": "0"}).options["max_delay_ms"] is None
    for bad in ("-5", "soon", "nan", "inf"):
        with pytest.raises(ValueError, match="max_delay_ms"):
            parse_rtsp_uri(f"rtsp://h/x?max_delay_ms={bad}")
    assert parse_rtsp_uri("rtsp://h/x?max_delay_ms=250").url == "rtsp://h/x"  # ours: not sent to the camera
    assert RtspSource("rtsp://h/x?max_delay_ms=off", stream_id="c", options={}).queue.max_delay is None
    assert RtspSource("rtsp://h/x", stream_id="c", options={"max_delay_ms": "40"}).queue.max_delay == 0.04


# ---------------------------------------------------------------- the queue's rules (fake clock)
def test_consumer_that_keeps_up_never_drops() -> None:
    clock = Clock()
    queue = UnitQueue(4, 0.5, clock=clock)
    for n in range(1000):
        assert queue.offer(unit(n, n % 30 == 0)) is Offer.QUEUED
        clock.now += 0.2  # each unit waits 0.2 s (< 0.5) before the decoder takes it
        assert number(queue.take(0)) == n
    assert queue.dropped_late == 0 and queue.episodes == 0


def test_late_head_drops_to_the_first_keyframe_within_the_bound() -> None:
    clock = Clock()
    queue = UnitQueue(64, 0.5, clock=clock)
    for n in range(12):  # keyframes at 0, 4, 8; one unit queued every 0.1 s
        queue.offer(unit(n, n % 4 == 0))
        clock.now += 0.1
    # now: unit n waited 1.2 - 0.1 n s; keyframe 4 waited 0.8 (too long), keyframe 8 waited 0.4 (fine)
    skipped = queue.take(0)
    assert skipped == Skipped(dropped=8, behind=pytest.approx(1.2), waited=False, seconds=0.0)
    assert [number(queue.take(0)) for _ in range(4)] == [8, 9, 10, 11]
    assert queue.dropped_late == 8 and queue.episodes == 1 and len(queue) == 0


def test_without_a_queued_keyframe_it_waits_for_the_next_one() -> None:
    clock = Clock()
    queue = UnitQueue(64, 0.5, clock=clock)
    need = threading.Event()
    intake = Intake(queue, need)
    for n in range(5):  # keyframe 0 and its P-frames
        intake.offer(unit(n, n == 0).data, keyframe=n == 0, intact=True, wall=0.0)
    clock.now += 0.6
    assert queue.take(0) is None and len(queue) == 0 and queue.dropped_late == 5
    # refused until a keyframe
    assert queue.offer(unit(5, False)) is Offer.LATE and not queue.offer(unit(6, False))
    intake.offer(b"p", keyframe=False, intact=True, wall=0.0)
    # arriving, not stalled
    assert intake.last_overflow > 0 and intake.dropped_full == 0 and not need.is_set()
    clock.now += 0.3
    assert queue.offer(unit(8, True)) is Offer.QUEUED
    assert queue.offer(unit(9, False)) is Offer.QUEUED
    assert queue.take(0) == Skipped(dropped=8, behind=pytest.approx(0.6), waited=True,
                                    seconds=pytest.approx(0.3))
    assert [number(queue.take(0)), number(queue.take(0))] == [8, 9]
    assert queue.dropped_late == 8 and queue.episodes == 1


def test_new_session_while_waiting_reports_the_episode_first() -> None:
    clock = Clock()
    queue = UnitQueue(8, 0.1, clock=clock)
    queue.offer(unit(0, True))
    clock.now += 1.0
    assert queue.take(0) is None
    queue.offer(NewStream("h264"))
    first, second = queue.take(0), queue.take(0)
    assert isinstance(first, Skipped) and first.dropped == 1 and second == NewStream("h264")
    assert queue.offer(unit(1, False)) is Offer.QUEUED  # a new session is not skipping (the intake gates it)


def test_no_age_bound_when_off() -> None:
    clock = Clock()
    queue = UnitQueue(4, None, clock=clock)
    queue.offer(unit(0, True))
    clock.now += 3600
    assert number(queue.take(0)) == 0 and queue.dropped_late == 0


@settings(max_examples=300, deadline=None)
@given(
    gop=st.integers(1, 12),
    steps=st.lists(st.tuples(st.booleans(), st.floats(0.0, 0.2)), min_size=1, max_size=300),
    size=st.integers(1, 40),
)
def test_decoder_sees_unbroken_chains_and_bounded_ages(gop: int, steps: list[tuple[bool, float]],
                                                       size: int) -> None:
    """Any interleaving of a camera (a keyframe every ``gop`` units) and a decoder: every unit the decoder
    gets either follows the one before it or is a keyframe right after a :class:`Skipped` marker (or a
    full-queue refusal), none waited longer than the bound, and every unit is accounted for."""
    clock = Clock()
    queue = UnitQueue(size, 0.3, clock=clock)
    need = threading.Event()
    need.set()
    intake = Intake(queue, need)
    queued_at: dict[int, float] = {}
    sent = 0
    got: list[object] = []

    def take() -> None:
        item = queue.take(0)
        if isinstance(item, CodedPicture):
            assert clock.now - queued_at[number(item)] <= 0.3
        if item is not None:
            got.append(item)

    for is_offer, dt in steps:
        clock.now += dt
        if is_offer:
            queued_at[sent] = clock.now
            intake.offer(sent.to_bytes(4, "big"), keyframe=sent % gop == 0, intact=True, wall=0.0)
            sent += 1
        else:
            take()
    while len(queue):
        take()
    previous: int | None = None
    after_gap = False
    for item in got:
        if isinstance(item, Skipped):
            after_gap = True
            continue
        n = number(item)
        if previous is None or after_gap or n != previous + 1:
            assert n % gop == 0, (n, previous, after_gap)  # a restart is always at a keyframe
        # a marker always stands for dropped units
        assert not after_gap or previous is None or n != previous + 1
        previous, after_gap = n, False
    taken = sum(isinstance(i, CodedPicture) for i in got)
    assert taken + queue.dropped_late + intake.dropped_full + intake.dropped_waiting == sent
    assert sum(i.dropped for i in got if isinstance(i, Skipped)) <= queue.dropped_late


# ---------------------------------------------------------------- a real camera, a decoder held back
def _clip_packets(clip: Path) -> tuple[bytes | None, list[tuple[bytes, bool]]]:
    with av.open(str(clip)) as c:
        extradata = c.streams.video[0].codec_context.extradata
        return extradata, [(bytes(p), p.is_keyframe) for p in c.demux(video=0) if p.size]


def _decode_from(extradata: bytes | None, packets: list[tuple[bytes, bool]], start: int,
                 n: int) -> list[np.ndarray]:
    """A fresh PyAV decoder fed the clip from packet ``start`` on: the first ``n`` pictures, as BGR."""
    codec = av.CodecContext.create("h264", "r")
    if extradata:
        codec.extradata = extradata
    out: list[np.ndarray] = []
    for data, _ in packets[start:]:
        out += [f.to_ndarray(format="bgr24") for f in codec.decode(av.Packet(data))]
        if len(out) >= n:
            break
    return out[:n]


@pytest.mark.anyio
@pytest.mark.rtsp
async def test_slow_decoder_drops_to_keyframes_and_stays_current(servers: Servers,
                                                                 rtsp_clips: dict[str, Path]) -> None:
    """A decoder thread held 0.1 s per frame (10 fps) on a 30 fps camera, ``max_delay_ms=300`` and a queue
    with room for the whole clip (the count bound never acts): without the age bound every frame would arrive,
    ever later (about 2 s late after 30 frames). With it, drops happen in episodes, each restarting on a
    keyframe."""
    clip = rtsp_clips["long"]  # 600 frames, a keyframe every 30
    extradata, packets = _clip_packets(clip)
    server = servers({"/cam": h264_launch(clip)})
    frames = Frames(stop_after=30)
    ages: list[float] = []

    def emit(frame: Frame) -> bool:
        ages.append(time.time() - (frame.capture_time[0] + frame.capture_time[1] / 1e6))
        time.sleep(0.1)  # the slow consumer of the decoder thread
        return frames(frame)

    with structlog.testing.capture_logs() as logs:
        source = RtspSource(server.url("/cam", query="max_delay_ms=300&buffer=1000&timestamps=arrival"),
                            stream_id="cam", options={})
        await run_source(source, emit, timeout=30)
    stats = source.stats()
    assert stats["dropped_late"] > 0 and stats["late_episodes"] >= 1
    assert stats["dropped_queue_full"] == 0 and stats["decode_errors"] == 0 and stats["packets_lost"] == 0
    # bounded: 0.3 s in the queue plus one decode; the margin is for a loaded machine, far below an unbounded
    # 2 s
    assert max(ages) < 1.0, ages

    # runs of consecutive clip frames; each after a drop starts at a keyframe and matches a fresh decode from
    # it
    indexes = [read_index(f.image) for f in frames.frames]
    starts = [0] + [i for i in range(1, len(indexes)) if indexes[i] != indexes[i - 1] + 1]
    assert len(starts) >= 2 and indexes[0] == 0 and indexes == sorted(indexes)
    for begin, end in zip(starts, [*starts[1:], len(indexes)], strict=True):
        first = indexes[begin]
        assert packets[first][1], f"restarted at frame {first}, not a keyframe"
        fresh = _decode_from(extradata, packets, first, end - begin)
        assert all(np.array_equal(f.image, ref) for f,
                   ref in zip(frames.frames[begin:end], fresh, strict=True))
    assert mismatches(frames.frames, decode_bgr(clip)) == []

    lines = [e for e in logs if e["event"] == "late_frames_dropped"]
    assert 1 <= len(lines) <= stats["late_episodes"] and len(lines) >= len(starts) - 1
    # one line per episode, not per frame
    assert sum(int(e["dropped"]) for e in lines) <= stats["dropped_late"]
    assert all(
        e["stream_id"] == "cam" and e["log_level"] == "warning" and e["max_delay_ms"] == 300 for e in lines
    )
    assert all(int(e["behind_ms"]) >= 300 for e in lines)  # more than 300 ms behind, logged rounded to the ms
    assert source.state.sessions == 1  # dropping is not a stall: no reconnect


@pytest.mark.anyio
@pytest.mark.rtsp
async def test_defaults_and_a_fast_consumer_drop_nothing(servers: Servers,
                                                         rtsp_clips: dict[str, Path]) -> None:
    clip = rtsp_clips["small"]
    reference = decode_bgr(clip)
    server = servers({"/cam": h264_launch(clip)})
    frames = Frames(stop_after=len(reference))
    source = RtspSource(server.url("/cam"), stream_id="cam", options={})
    assert source.queue.max_delay == DEFAULT_MAX_DELAY_MS / 1e3
    await run_source(source, frames, timeout=15)
    assert [read_index(f.image) for f in frames.frames] == list(range(len(reference)))
    assert mismatches(frames.frames, reference) == []
    stats = source.stats()
    assert stats["dropped_late"] == 0 and stats["late_episodes"] == 0 and stats["dropped_queue_full"] == 0
