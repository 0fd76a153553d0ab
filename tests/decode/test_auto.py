"""``?decode=auto``: a camera decodes only keyframes while its consumers take few frames (never fewer
than they were taking) and every picture again when demand rises; each change logged once, the mode and the
effective rate in ``stats()``. The policy alone with a simulated camera and consumer (hypothesis), then real
H.264 streams (a realtime file, an RTSP session) with a consumer whose rate changes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st

from panoflow.plugins.decode_budget import KeyframeGate
from panoflow.plugins.rtsp import RtspSource
from panoflow.plugins.sources import FileSource, read_index
from tests.decode.helpers import SlowConsumer, digest
from tests.media import decode_bgr, make_clip
from tests.support.rtsp import GstServer, h264_launch

pytestmark = pytest.mark.anyio


def simulate(demand: float, seconds: float, *, gop: int, fps: int = 30, window: float = 10.0,
             below: float = 0.5,
             demand_later: float | None = None) -> tuple[KeyframeGate, list[tuple[float, str]]]:
    """A ``fps`` camera with a keyframe every ``gop`` pictures, decoded when the gate admits them, and a
    consumer under the ``latest`` policy that wants a frame every ``1 / demand`` seconds (``demand_later``
    from half-time): it takes the newest decoded picture, or waits for the next. Returns the gate and its mode
    after each change."""
    now = [0.0]
    gate = KeyframeGate("auto", below=below, window=window, clock=lambda: now[0])
    n = {"decoded": 0, "taken": 0}
    gate.bind(decoded=lambda: n["decoded"], taken=lambda: n["taken"])
    pending, want, modes = False, 0.0, []
    for i in range(int(seconds * fps)):
        t = now[0] = i / fps
        rate = demand if demand_later is None or t < seconds / 2 else demand_later
        if pending and want <= t:  # it asked before this picture and the last one was there
            n["taken"], pending, want = n["taken"] + 1, False, want + 1 / rate
        changes = gate.changes
        if gate.admit(i % gop == 0):
            n["decoded"] += 1
            if want <= t:  # it was waiting for a picture
                n["taken"], want = n["taken"] + 1, t + 1 / rate
            else:
                pending = True  # replaces the one before, which no one converts
        if gate.changes != changes:
            modes.append((t, gate.decoding))
    return gate, modes


@settings(max_examples=60, deadline=None)
@given(demand=st.floats(0.05, 30.0), gop=st.sampled_from([10, 15, 30, 60, 90]))
def test_a_steady_consumer_changes_the_mode_at_most_once(demand: float, gop: int) -> None:
    gate, modes = simulate(demand, 90.0, gop=gop)
    assert gate.changes <= 1, modes  # never oscillates
    keyframe_fps = 30 / gop
    if gate.keyframes_only:  # only when the keyframes alone serve the consumer as well as every picture did
        assert demand <= keyframe_fps
    if demand < 0.5 * keyframe_fps:
        assert modes and modes[0][0] <= 25.0 and gate.keyframes_only  # decided within a few windows


def test_demand_rising_brings_every_picture_back() -> None:
    _gate, modes = simulate(0.2, 120.0, gop=30, demand_later=5.0)
    assert [m for _t, m in modes] == ["keyframes", "all"]
    assert modes[0][0] <= 25.0 and 60.0 < modes[1][0] <= 60.0 + 25.0


def test_a_consumer_taking_more_than_the_keyframes_keeps_every_picture() -> None:
    gate, modes = simulate(5.0, 60.0, gop=30)  # a 5 fps app, 1 s GOP: keyframes alone would give it 1 fps
    assert modes == [] and gate.decoding == "all"


def test_changes_happen_only_at_keyframes_and_are_logged_once() -> None:
    with structlog.testing.capture_logs() as logs:
        _gate, modes = simulate(0.2, 120.0, gop=30, demand_later=5.0)
    assert all(round(t * 30) % 30 == 0 for t, _m in modes)
    changed = [e for e in logs if e["event"] == "decode_mode_changed"]
    assert [e["decoding"] for e in changed] == ["keyframes", "all"]
    assert changed[0]["taken_fps"] <= 0.8 * changed[0]["keyframe_fps"] and changed[0]["keyframe_fps"] == 1.0
    assert changed[1]["taken"] >= 0.95 * changed[1]["decoded"]
    # the rate each change leads to: the keyframes' (1 a second), then every picture's again (30 a second)
    assert changed[0]["effective_fps"] == 1.0 and 29.0 <= changed[1]["effective_fps"] <= 30.0


@pytest.mark.parametrize("bad", [0, 1.5, "half"])
def test_a_bad_auto_share_names_the_option(bad: Any) -> None:
    with pytest.raises(ValueError, match=r"option 'auto_below' for source .*expected a"):
        FileSource(f"file:///c.mp4?decode=auto&auto_below={bad}", stream_id="cam", options={})


async def _follow(source: Any, consumer: SlowConsumer, timeout: float = 60.0) -> list[str]:
    """Run ``source`` into ``consumer``: at 0.4 fps until the camera decodes only keyframes, then at 10 fps
    until it decodes every picture again and the consumer took 10 more frames. Returns the modes seen."""
    seen: list[str] = []

    def note() -> str:
        mode = str(source.stats().get("decoding"))
        if not seen or seen[-1] != mode:
            seen.append(mode)
        return mode

    async with anyio.create_task_group() as tg:
        tg.start_soon(source.run, consumer)
        with anyio.fail_after(timeout):
            while note() != "keyframes":
                await anyio.sleep(0.05)
            stats = source.stats()
            assert stats["decode"] == "auto" and stats["decode_mode_changes"] == 1
            consumer.fps = 10.0
            while note() != "all":
                await anyio.sleep(0.05)
            taken = len(consumer.taken)
            while len(consumer.taken) < taken + 10:
                await anyio.sleep(0.05)
        consumer.stop.set()
        tg.cancel_scope.cancel()
    consumer.close()
    return seen


def _check_frames(consumer: SlowConsumer, reference: list[Any]) -> None:
    indices = [read_index(image) % len(reference) for image in consumer.images]
    assert [digest(image) for image in consumer.images] == [digest(reference[i]) for i in indices]
    assert any(i % 30 for i in indices[-10:])  # every picture again: not only keyframes


async def test_a_realtime_file_follows_its_consumer(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "cam.mp4", frames=60, fps=30)  # keyframes at 0 and 1 s, looped
    reference = decode_bgr(clip)
    uri = f"file://{clip}?realtime=1&loop=1&decode=auto&auto_window=2"
    source = FileSource(uri, stream_id="cam", options={})
    consumer = SlowConsumer(0.4)
    with structlog.testing.capture_logs() as logs:
        seen = await _follow(source, consumer)
    assert seen == ["all", "keyframes", "all"]
    changed = [e for e in logs if e["event"] == "decode_mode_changed"]
    assert [e["decoding"] for e in changed] == ["keyframes", "all"]
    assert 0.5 <= changed[0]["keyframe_fps"] <= 1.5 and changed[1]["decoded_fps"] <= 1.5  # 1 s GOP
    assert source.stats()["decode_mode_changes"] == 2
    _check_frames(consumer, reference)


@pytest.mark.rtsp
async def test_a_camera_follows_its_consumer(servers: Any, tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "cam.mp4", frames=450, fps=30, seed=4)  # 15 s, keyframes each second
    reference = decode_bgr(clip)
    server: GstServer = servers({"/cam": h264_launch(clip)})
    source = RtspSource(server.url("/cam", query="decode=auto&auto_window=2"), stream_id="cam", options={})
    consumer = SlowConsumer(0.4)
    with structlog.testing.capture_logs() as logs:
        seen = await _follow(source, consumer, timeout=14.0)
    assert seen[-3:] == ["all", "keyframes", "all"]
    assert [e["decoding"] for e in logs if e["event"] == "decode_mode_changed"] == ["keyframes", "all"]
    stats = source.stats()
    assert stats["decode_errors"] == 0 and stats["skipped_nonkey"] > 0
    assert stats["conversions"] == consumer.delivered
    _check_frames(consumer, reference)
