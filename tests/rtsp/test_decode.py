"""The decoder side: bounded queue, keyframe gating, scaling, frames out of a worker thread."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest

from panoflow.plugins.rtsp.decode import CodedPicture, FrameDecoder, Intake, NewStream, UnitQueue, scaled_size
from tests.media import decode_bgr, make_clip


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((1920, 1080), None),
        ((1280, 720), None),
        ((3840, 2160), (1920, 1080)),
        ((2560, 1440), (1920, 1080)),
        ((2592, 1944), (1662, 1246)),  # 5 MP 4:3: 1920x1080's area at 4:3
        ((4096, 1024), (2880, 720)),
    ],
)
def test_scaled_size(size: tuple[int, int], expected: tuple[int, int] | None) -> None:
    assert scaled_size(*size, (1920, 1080)) == expected
    assert scaled_size(*size, None) is None
    if expected:
        assert (
            expected[0] * expected[1] <= 1920 * 1080
            and abs(expected[0] / expected[1] - size[0] / size[1]) < 0.01
        )


def test_queue_is_bounded_and_new_stream_clears_it() -> None:
    queue = UnitQueue(3)
    assert all(queue.offer(CodedPicture(b"x", False, 0.0)) for _ in range(3))
    assert not queue.offer(CodedPicture(b"x", False, 0.0)) and len(queue) == 3 and queue.high_water == 3
    assert queue.offer(NewStream("h264")) and len(queue) == 1
    queue.close()
    assert queue.take(0.01) is None


def test_intake_waits_for_keyframes_and_counts_drops() -> None:
    queue, need = UnitQueue(2), threading.Event()
    need.set()
    intake = Intake(queue, need)
    intake.offer(b"p", keyframe=False, intact=True, wall=0.0)
    assert intake.dropped_waiting == 1 and len(queue) == 0
    intake.offer(b"k", keyframe=True, intact=True, wall=0.0)
    intake.offer(b"p", keyframe=False, intact=True, wall=0.0)
    intake.offer(b"p", keyframe=False, intact=True, wall=0.0)  # full: dropped, and now waits for a keyframe
    assert intake.dropped_full == 1 and need.is_set() and intake.last_overflow > 0
    intake.offer(b"p", keyframe=False, intact=True, wall=0.0)
    assert intake.dropped_waiting == 2
    intake.offer(b"k", keyframe=True, intact=False, wall=0.0)  # damaged: never decoded
    assert intake.damaged == 1 and len(queue) == 2


def test_decoder_thread_emits_bit_exact_frames(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "c.mp4", frames=20, size=(320, 240), container="h264", seed=6)
    got: list[np.ndarray] = []
    decoder = FrameDecoder(stream_id="s", stream_uri="rtsp://h/x", emit=lambda f: got.append(f.image) or True,
                           downscale=None, limit=20)
    queue = UnitQueue(64)
    queue.offer(NewStream("h264"))
    with av.open(str(clip)) as c:
        for packet in c.demux(video=0):
            if packet.size:
                assert queue.offer(CodedPicture(bytes(packet), packet.is_keyframe, time.time()))
    thread = threading.Thread(target=decoder.run, args=(queue,))
    thread.start()
    thread.join(10)
    assert decoder.ended == "limit" and decoder.frames == 20
    assert all(np.array_equal(a, b) for a, b in zip(got, decode_bgr(clip), strict=True))


def test_decode_error_asks_for_a_keyframe() -> None:
    decoder = FrameDecoder(stream_id="s", stream_uri="", emit=lambda f: True, downscale=None)
    decoder.need_keyframe.clear()
    queue = UnitQueue(4)
    queue.offer(NewStream("h264"))
    queue.offer(CodedPicture(b"\x00\x00\x00\x01\x65" + b"\xff" * 64, True, 0.0))  # garbage "IDR"
    thread = threading.Thread(target=decoder.run, args=(queue,))
    thread.start()
    deadline = time.monotonic() + 5
    while decoder.decode_errors == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    decoder.stop.set()
    thread.join(5)
    assert decoder.decode_errors == 1 and decoder.need_keyframe.is_set()
