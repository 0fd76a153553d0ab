"""File and test-pattern sources, driven directly (no runtime): order, bit-exactness, options, pacing,
stopping."""

from __future__ import annotations

import itertools
import random
import threading
import time
from pathlib import Path

import anyio
import numpy as np
import pytest
import structlog
from aiohttp import web

from panoflow import MediaSource
from panoflow.core.plugins import build_plugins
from panoflow.core.redact import uri_scheme
from panoflow.exceptions import SourceError
from panoflow.plugins import BUILTINS
from panoflow.plugins.sources import FileSource, TestSource, read_index
from tests.media import decode_bgr, make_clip
from tests.support.sources_and_sinks import Collector, run_source

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("fmt", ["mp4", "mkv", "h264", "ts"])
async def test_file_source_delivers_every_frame_bit_exact(clips: dict[str, Path], fmt: str) -> None:
    reference = decode_bgr(clips[fmt])
    assert len(reference) == 30
    source = FileSource(str(clips[fmt]), stream_id="cam", options={})
    got = await run_source(source)
    assert [f.seq for f in got.frames] == list(range(30))
    assert [read_index(f.image) for f in got.frames] == list(range(30))
    for frame, ref in zip(got.frames, reference):
        assert frame.image.shape == (240, 320, 3) and frame.image.dtype == np.uint8
        assert np.array_equal(frame.image, ref)
    assert {f.stream_id for f in got.frames} == {"cam"}
    assert got.frames[0].stream_uri == str(clips[fmt])
    assert threading.main_thread() not in got.threads  # decoded and emitted in a worker thread
    stamps = [sec + usec / 1e6 for sec, usec in (f.capture_time for f in got.frames)]
    assert all(b > a for a, b in itertools.pairwise(stamps))
    assert abs(stamps[0] - time.time()) < 60
    assert all(f.t_produced > 0 for f in got.frames)
    assert source.frames_emitted == 30 and source.finished.is_set()


async def test_each_frame_owns_its_pixels(clips: dict[str, Path]) -> None:
    got = await run_source(FileSource(str(clips["mp4"]), stream_id="cam", options={"frames": 3}))
    a, b = got.frames[0].image, got.frames[1].image
    assert not np.shares_memory(a, b)


async def test_loop_keeps_seq_increasing(clips: dict[str, Path]) -> None:
    source = FileSource(f"file://{clips['mkv']}?loop=1&frames=70", stream_id="cam", options={})
    got = await run_source(source)
    assert [f.seq for f in got.frames] == list(range(70))
    assert [read_index(f.image) for f in got.frames] == [i % 30 for i in range(70)]
    stamps = [sec + usec / 1e6 for sec, usec in (f.capture_time for f in got.frames)]
    assert all(b > a for a, b in itertools.pairwise(stamps))


async def test_frames_option_and_caller_options(clips: dict[str, Path]) -> None:
    got = await run_source(FileSource(str(clips["ts"]), stream_id="cam", options={"frames": "7"}))
    assert [read_index(f.image) for f in got.frames] == list(range(7))


async def test_emit_false_stops_the_source(clips: dict[str, Path]) -> None:
    source = FileSource(str(clips["mp4"]), stream_id="cam", options={"loop": "1"})
    got = await run_source(source, stop_after=5)
    assert len(got.frames) == 5 and source.finished.is_set()


async def test_realtime_paces_at_the_stream_rate(clips: dict[str, Path]) -> None:
    source = FileSource(f"{clips['mp4']}?realtime=1&frames=15", stream_id="cam", options={})
    assert source.policy == "latest"
    assert FileSource(str(clips["mp4"]), stream_id="cam", options={"realtime": "1"}).policy == "latest"
    assert FileSource(str(clips["mp4"]), stream_id="cam",
                      options={}).policy == "block" == FileSource.default_policy
    started = time.perf_counter()
    got = await run_source(source)
    elapsed = time.perf_counter() - started
    assert len(got.frames) == 15
    assert elapsed >= 0.8 * 14 / 30
    wall = got.frames[-1].capture_time[0] + got.frames[-1].capture_time[1] / 1e6
    assert abs(wall - time.time()) < 5  # live-like: wall clock at decode


@pytest.mark.parametrize("uri_suffix", ["?loop=1", "?loop=1&realtime=1"])
async def test_cancellation_stops_the_thread_quickly(clips: dict[str, Path], uri_suffix: str) -> None:
    source = FileSource(f"{clips['mp4']}{uri_suffix}", stream_id="cam", options={})
    collector = Collector()
    async with anyio.create_task_group() as tg:
        tg.start_soon(source.run, collector)
        with anyio.fail_after(10):
            while len(collector.frames) < 5:
                await anyio.sleep(0.01)
        tg.cancel_scope.cancel()
    # the looping source never ends by itself: a deadline, not a stopwatch (quiet machine: a few ms)
    assert await anyio.to_thread.run_sync(source.finished.wait, 10.0), (
        "decode thread still running 10 s after cancel"
    )
    count = len(collector.frames)
    await anyio.sleep(0.1)
    assert len(collector.frames) == count


async def test_missing_file_is_a_source_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope.mp4"
    with pytest.raises(SourceError, match="nope.mp4") as info:
        await run_source(FileSource(str(missing), stream_id="cam", options={}))
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert info.value.node_id == "cam"


async def test_not_a_video_is_a_source_error(tmp_path: Path) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n" * 100)
    with pytest.raises(SourceError, match="notes.mp4"):
        await run_source(FileSource(str(text), stream_id="cam", options={}))


async def test_corrupt_packets_are_skipped_counted_and_logged_once(clip_dir: Path) -> None:
    clip = make_clip(clip_dir / "to-corrupt.mp4", frames=40, size=(320, 240))
    data = bytearray(clip.read_bytes())
    rng = random.Random(1)
    start = len(data) // 3
    data[start : start + 3000] = bytes(rng.randrange(256) for _ in range(3000))
    bad = clip_dir / "corrupt.mp4"
    bad.write_bytes(bytes(data))
    with structlog.testing.capture_logs() as logs:
        source = FileSource(str(bad), stream_id="cam", options={})
        got = await run_source(source)
    assert source.corrupt_packets > 0
    assert 0 < len(got.frames) < 40
    assert [e["event"] for e in logs].count("corrupt_packet_skipped") == 1
    assert any(e["event"] == "corrupt_packets_total" and e["count"] == source.corrupt_packets for e in logs)


async def test_http_source_and_redacted_stream_uri(clips: dict[str, Path]) -> None:
    app = web.Application()
    app.router.add_static("/media/", clips["mp4"].parent)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        uri = f"http://viewer:s3cret@127.0.0.1:{port}/media/{clips['mp4'].name}?frames=12"
        assert _builtin_source_for(uri) is FileSource
        source = FileSource(uri, stream_id="web", options={})
        got = await run_source(source)
    finally:
        await runner.cleanup()
    assert [read_index(f.image) for f in got.frames] == list(range(12))
    assert "s3cret" not in got.frames[0].stream_uri and "viewer:***@" in got.frames[0].stream_uri


async def test_http_error_is_a_source_error_without_password() -> None:
    with pytest.raises(SourceError) as info:
        await run_source(FileSource("http://u:pw123@127.0.0.1:1/x.mp4", stream_id="web", options={}))
    assert "pw123" not in str(info.value) and "127.0.0.1:1/x.mp4" in str(info.value)


async def test_testsrc_frames_carry_their_index() -> None:
    source = TestSource("testsrc://?size=320x180&frames=20&realtime=0", stream_id="t", options={})
    assert source.policy == "block"
    got = await run_source(source)
    assert [f.seq for f in got.frames] == list(range(20))
    assert [read_index(f.image) for f in got.frames] == list(range(20))
    assert got.frames[0].image.shape == (180, 320, 3)
    assert not np.shares_memory(got.frames[0].image, got.frames[1].image)
    assert not np.array_equal(got.frames[0].image, got.frames[1].image)  # it moves
    assert threading.main_thread() not in got.threads


async def test_testsrc_is_paced_by_default() -> None:
    source = TestSource("testsrc://", stream_id="t", options={"size": "160x120", "fps": "60", "frames": "13"})
    assert source.policy == "latest" == TestSource.default_policy
    started = time.perf_counter()
    got = await run_source(source)
    assert len(got.frames) == 13
    assert time.perf_counter() - started >= 0.8 * 12 / 60


async def test_testsrc_stops_on_cancel() -> None:
    source = TestSource("testsrc://?size=160x120&fps=5", stream_id="t", options={})
    collector = Collector()
    with anyio.move_on_after(0.3):
        await source.run(collector)
    assert await anyio.to_thread.run_sync(source.finished.wait, 0.5)


def test_testsrc_rejects_tiny_sizes_and_unknown_options() -> None:
    with pytest.raises(ValueError, match="at least 128x16"):
        TestSource("testsrc://?size=64x64", stream_id="t", options={})
    with pytest.raises(ValueError, match="unknown option 'loop'"):
        TestSource("testsrc://", stream_id="t", options={"loop": "1"})


def _builtin_source_for(uri: str) -> type[MediaSource] | None:
    """The source class the runtime picks for ``uri`` among the built-in plugins (by its scheme)."""
    return build_plugins(BUILTINS, entry_points=False).sources.get(uri_scheme(uri))


def test_the_runtime_picks_the_file_and_test_sources_by_scheme() -> None:
    assert _builtin_source_for("/x/y.mp4") is FileSource
    assert _builtin_source_for("file:///x/y.mkv") is FileSource
    assert _builtin_source_for("https://h/y.mp4") is FileSource
    assert _builtin_source_for("testsrc://") is TestSource
    assert _builtin_source_for("rtsp://cam/1") not in (FileSource, TestSource, None)
