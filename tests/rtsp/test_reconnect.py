"""Cameras that die, hang and come back: reconnection, stall detection, bounded resources, the app's view."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import anyio.to_thread
import pytest
import structlog

from panoflow.core.bus import Inbox, Policy
from panoflow.core.frame import Frame
from panoflow.core.ports import InputTimeout, MediaInput
from panoflow.plugins.rtsp import RtspSource
from tests.media import decode_bgr
from tests.rtsp.helpers import Frames, mismatches
from tests.support.rtsp import GstServer, h264_launch

pytestmark = [pytest.mark.anyio, pytest.mark.rtsp]

Servers = Callable[..., GstServer]


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _rss_kib() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


async def _after(frames: Frames, moment: float, timeout: float) -> float:
    """Wait for a frame emitted after ``moment`` (monotonic); returns how long after ``moment`` it came."""
    await frames.wait(lambda f: bool(f.times) and f.times[-1] > moment, timeout)
    return next(t for t in frames.times if t > moment) - moment


@pytest.mark.parametrize("transport", ["tcp", "udp"])
async def test_server_killed_and_restarted(servers: Servers, rtsp_clips: dict[str, Path],
                                           transport: str) -> None:
    clip = rtsp_clips["long"]
    server = servers({"/cam": h264_launch(clip)})
    source = RtspSource(server.url("/cam", query=f"transport={transport}"), stream_id="cam", options={})
    frames = Frames()
    with structlog.testing.capture_logs() as logs:
        async with anyio.create_task_group() as tg:
            tg.start_soon(source.run, frames)
            await frames.wait_count(10, 10)
            await anyio.to_thread.run_sync(server.kill)
            await anyio.sleep(0.5)  # down for a while: the source keeps retrying, the run goes on
            ready = await anyio.to_thread.run_sync(server.start)
            assert await _after(frames, ready, 2.0) < 2.0
            await frames.wait_count(frames.count + 10, 5)
            tg.cancel_scope.cancel()
    assert mismatches(frames.frames, decode_bgr(clip)) == []
    events = [e["event"] for e in logs]
    assert events[:2] == ["camera_connecting", "camera_streaming"]
    assert events.count("camera_streaming") == 2 and events[-1] == "camera_stopped"
    down = [e for e in logs if e["event"] == "camera_down"]
    # "closed by the camera", maybe then "cannot connect": once each, not per retry
    assert 1 <= len(down) <= 2
    assert source.state.failures > len(down)


async def test_stalled_camera_is_reconnected(servers: Servers, rtsp_clips: dict[str, Path]) -> None:
    """A camera that stops sending but keeps the connection open (SIGSTOP) is detected by the stall
    timeout."""
    server = servers({"/cam": h264_launch(rtsp_clips["long"])})
    source = RtspSource(server.url("/cam"), stream_id="cam",
                        options={"stall_timeout": "0.5", "timeout": "0.3"})
    frames = Frames()
    assert server.proc is not None
    with structlog.testing.capture_logs() as logs:
        async with anyio.create_task_group() as tg:
            tg.start_soon(source.run, frames)
            await frames.wait_count(5, 10)
            server.proc.send_signal(signal.SIGSTOP)
            try:
                await anyio.sleep(1.5)
            finally:
                server.proc.send_signal(signal.SIGCONT)
            resumed = time.monotonic()
            assert await _after(frames, resumed, 3.0) < 3.0
            await frames.wait(lambda f: source.state.sessions == 2, 1.0)
            tg.cancel_scope.cancel()
    reasons = [e["reason"] for e in logs if e["event"] == "camera_down"]
    assert reasons[0] == "no frame for 0.5 s (stalled)"


@pytest.mark.slow
async def test_fifty_kill_restart_cycles_recover_fast_and_leak_nothing(servers: Servers,
                                                                        rtsp_clips: dict[str, Path]) -> None:
    server = servers({"/cam": h264_launch(rtsp_clips["long"])})
    source = RtspSource(server.url("/cam"), stream_id="cam", options={})
    frames = Frames(keep=4)
    recoveries: list[float] = []
    baseline: tuple[int, int, int] | None = None
    async with anyio.create_task_group() as tg:
        tg.start_soon(source.run, frames)
        await frames.wait_count(5, 10)
        for cycle in range(50):
            await anyio.to_thread.run_sync(server.kill)
            ready = await anyio.to_thread.run_sync(server.start)
            recoveries.append(await _after(frames, ready, 2.0))
            await frames.wait_count(frames.count + 3, 2.0)
            if cycle == 0:
                await anyio.sleep(0.2)
                baseline = (_fds(), threading.active_count(), _rss_kib())
        await anyio.sleep(0.2)
        after = (_fds(), threading.active_count(), _rss_kib())
        tg.cancel_scope.cancel()
    assert baseline is not None
    print(f"recovery after restart: max {max(recoveries):.3f} s, mean {sum(recoveries) / 50:.3f} s; "
          f"fds/threads/RSS KiB after cycle 1 {baseline}, after cycle 50 {after}")
    assert max(recoveries) < 2.0, recoveries
    assert source.state.sessions == 51
    assert after[0] <= baseline[0], f"open file descriptors grew: {baseline[0]} -> {after[0]}"
    assert after[1] <= baseline[1], f"threads grew: {baseline[1]} -> {after[1]}"
    assert after[2] <= baseline[2] * 1.10, f"RSS grew more than 10 %: {baseline[2]} -> {after[2]} KiB"


async def test_get_while_one_camera_is_down(servers: Servers, rtsp_clips: dict[str, Path]) -> None:
    """Two cameras on one input port. One dies: ``get()`` keeps returning the other's new frames with the dead
    one's last frame re-delivered ``is_cached=True``; both down: ``get`` blocks until its timeout; back:
    fresh."""
    cams = {"a": servers({"/cam": h264_launch(rtsp_clips["long"])}),
            "b": servers({"/cam": h264_launch(rtsp_clips["other"])})}
    inbox: Inbox[Frame] = Inbox("code.video_in", Policy.parse("latest"), list(cams))
    port = MediaInput("video_in", inbox, list(cams))

    def emitter(stream: str) -> Callable[[Frame], bool]:
        return lambda frame: inbox.put(stream, frame)

    def batches(n: int) -> list[list[Frame]]:
        return [port.get(timeout=2.0) for _ in range(n)]

    async with anyio.create_task_group() as tg:
        for stream, server in cams.items():
            tg.start_soon(RtspSource(server.url("/cam"), stream_id=stream, options={}).run, emitter(stream))
        first = await anyio.to_thread.run_sync(batches, 30)
        assert [f.stream_id for f in first[-1]] == ["a", "b"]
        await anyio.to_thread.run_sync(cams["b"].kill)
        await anyio.sleep(0.3)
        down = await anyio.to_thread.run_sync(batches, 15)
        assert all([f.stream_id for f in batch] == ["a", "b"] for batch in down)
        assert all(not batch[0].is_cached and batch[1].is_cached for batch in down[2:])
        await anyio.to_thread.run_sync(cams["a"].kill)
        await anyio.sleep(0.3)
        t0 = time.monotonic()
        with pytest.raises(InputTimeout):
            await anyio.to_thread.run_sync(lambda: [port.get(timeout=0.5) for _ in range(5)])
        assert time.monotonic() - t0 >= 0.45
        for server in cams.values():
            await anyio.to_thread.run_sync(server.start)
        back = await anyio.to_thread.run_sync(batches, 40)
        assert any(not f.is_cached for f in back[-1] if f.stream_id == "b") or any(
            not batch[1].is_cached for batch in back[-10:])
        assert not inbox.closed
        tg.cancel_scope.cancel()
