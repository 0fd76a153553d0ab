"""The rtsp source against a real RTSP server (GStreamer): bit-exact frames, transports, codecs, auth,
errors."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import av
import numpy as np
import pytest
import structlog

from panoflow.exceptions import SourceError
from panoflow.plugins.rtsp import FfmpegRtspSource, RtspSource, RtspTcpSource
from tests.media import decode_bgr, read_index
from tests.rtsp.helpers import Frames, mismatches, run_source
from tests.support.rtsp import GstServer, h264_launch, h265_launch, vp8_launch

pytestmark = [pytest.mark.anyio, pytest.mark.rtsp]

Servers = Callable[..., GstServer]
PASSWORD = "s3cr3t-Pa55"


async def _receive(uri: str, n: int, *, cls: type[RtspSource] = RtspSource, timeout: float = 15.0,
                   **options: str) -> tuple[Frames, RtspSource]:
    frames = Frames(stop_after=n)
    source = cls(uri, stream_id="cam", options=options)
    await run_source(source, frames, timeout=timeout)
    return frames, source


@pytest.mark.parametrize("transport", ["tcp", "udp"])
async def test_frames_bit_exact_with_pyav_decode(servers: Servers, rtsp_clips: dict[str, Path],
                                                 transport: str) -> None:
    clip = rtsp_clips["small"]
    reference = decode_bgr(clip)
    server = servers({"/cam": h264_launch(clip)})
    frames, source = await _receive(server.url("/cam", query=f"transport={transport}"), len(reference))
    # a new client starts at frame 0 (non-shared factory): every frame, in order, identical to PyAV's decode
    assert [read_index(f.image) for f in frames.frames] == list(range(len(reference)))
    assert mismatches(frames.frames, reference) == []
    stats = source.stats()
    assert stats["packets_lost"] == 0 and stats["decode_errors"] == 0 and stats["dropped_queue_full"] == 0
    assert [f.seq for f in frames.frames] == list(range(len(reference)))
    assert all(f.stream_uri == server.url("/cam", query=f"transport={transport}") for f in frames.frames)


async def test_rtspt_scheme_and_capture_time(servers: Servers, rtsp_clips: dict[str, Path]) -> None:
    clip = rtsp_clips["long"]
    reference = decode_bgr(clip)
    server = servers({"/cam": h264_launch(clip)})
    frames = Frames()
    source = RtspTcpSource(server.url("/cam", scheme="rtspt"), stream_id="cam", options={})
    t0 = time.time()
    async with anyio.create_task_group() as tg:
        tg.start_soon(source.run, frames)
        await frames.wait(lambda f: source.stats()["clock"] == "rtcp", 15)  # first RTCP sender report
        synced = frames.count
        await frames.wait_count(synced + 30, 5)
        tg.cancel_scope.cancel()
    assert source.settings.transport == "tcp"
    assert mismatches(frames.frames, reference) == []
    stamps = [f.capture_time[0] + f.capture_time[1] / 1e6 for f in frames.frames]
    assert all(t0 - 1 < s < time.time() + 1 for s in stamps)  # wall-clock seconds, near now
    steps = np.diff(stamps[synced + 1 :])  # RTP time mapped by the sender report: exactly 30 fps spacing
    assert np.allclose(steps, 1 / 30, atol=1e-3), steps


async def test_h265_stream_bit_exact(servers: Servers, hevc_clip: Path) -> None:
    reference = decode_bgr(hevc_clip)
    server = servers({"/hevc": h265_launch(hevc_clip)})
    frames, source = await _receive(server.url("/hevc"), len(reference))
    assert [read_index(f.image) for f in frames.frames] == list(range(len(reference)))
    assert mismatches(frames.frames, reference) == []
    assert source.state.sessions == 1


async def test_streams_above_2_megapixels_scaled_like_the_appliance(servers: Servers, big_clip: Path) -> None:
    with av.open(str(big_clip)) as container:
        reference = [
            f.reformat(width=1920, height=1080, format="bgr24", interpolation="AREA").to_ndarray()
            for f in container.decode(video=0)
        ]
    server = servers({"/big": h264_launch(big_clip)})
    # every picture of the short clip, however slowly this machine decodes 2560x1440 (the age bound of the
    # decoder queue would otherwise skip to a keyframe: tests/rtsp/test_late.py); the scaling is what is
    # checked here
    frames, source = await _receive(server.url("/big"), 10, max_delay_ms="off")
    assert {f.image.shape for f in frames.frames} == {(1080, 1920, 3)}
    # the painted index does not survive scaling, so compare in clip order: a session starts at frame 0, and
    # when the camera ended the 20-frame clip before this machine decoded 10 of them, the next session starts
    # at 0 again
    expected = 0
    for f in frames.frames:
        if expected and not np.array_equal(f.image, reference[expected]):
            expected = 0
        assert np.array_equal(f.image, reference[expected]), (f"frame {expected} of the clip is not scaled "
                                                              "alike")
        expected += 1
    assert source.stats()["source_size"] == [2560, 1440]
    off, _ = await _receive(server.url("/big", query="downscale=off"), 3)
    assert off.frames[0].image.shape == (1440, 2560, 3)


@pytest.mark.parametrize("method", ["basic", "digest"])
async def test_auth_success(servers: Servers, rtsp_clips: dict[str, Path], method: str) -> None:
    clip = rtsp_clips["small"]
    server = servers({"/cam": h264_launch(clip)}, auth=(method, "admin", PASSWORD))
    uri = server.url("/cam", user="admin", password=PASSWORD)
    frames, source = await _receive(uri, 10, auth=method)
    assert mismatches(frames.frames, decode_bgr(clip)) == []
    assert PASSWORD not in source.describe() and PASSWORD not in frames.frames[0].stream_uri
    assert "admin:***@" in frames.frames[0].stream_uri


async def _failing(uri: str, seconds: float, capfd: pytest.CaptureFixture[str], **options: str,
                   ) -> tuple[list[dict[str, object]], RtspSource]:
    """Run a camera that cannot stream for ``seconds``; returns its log events."""
    source = RtspSource(uri, stream_id="front_door", options={"retry_max": "0.2", **options})
    with structlog.testing.capture_logs() as logs:
        with anyio.move_on_after(seconds):
            await source.run(Frames())
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err and PASSWORD not in out + err
    return logs, source


def _down_lines(logs: list[dict[str, object]]) -> list[dict[str, object]]:
    assert PASSWORD not in repr(logs)
    return [e for e in logs if e["event"] == "camera_down"]


@pytest.mark.parametrize("method", ["basic", "digest"])
async def test_wrong_password_one_clear_line_and_retries(servers: Servers, rtsp_clips: dict[str, Path],
                                                         capfd: pytest.CaptureFixture[str],
                                                         method: str) -> None:
    server = servers({"/cam": h264_launch(rtsp_clips["small"])}, auth=(method, "admin", "right"))
    logs, source = await _failing(server.url("/cam", user="admin", password=PASSWORD), 1.5, capfd)
    (line,) = _down_lines(logs)
    assert line["stream_id"] == "front_door" and line["uri"] == server.url("/cam", user="admin",
                                                                           password="***")
    assert "wrong username or password" in str(line["reason"])
    assert source.state.failures >= 4  # kept retrying, silently


async def test_missing_credentials_named(servers: Servers, rtsp_clips: dict[str, Path],
                                         capfd: pytest.CaptureFixture[str]) -> None:
    server = servers({"/cam": h264_launch(rtsp_clips["small"])}, auth=("digest", "admin", "right"))
    logs, _ = await _failing(server.url("/cam"), 0.6, capfd)
    (line,) = _down_lines(logs)
    assert "requires a username and password" in str(line["reason"])


async def test_unknown_path(servers: Servers, rtsp_clips: dict[str, Path],
                            capfd: pytest.CaptureFixture[str]) -> None:
    server = servers({"/cam": h264_launch(rtsp_clips["small"])})
    logs, source = await _failing(server.url("/nope", user="admin", password=PASSWORD), 1.0, capfd)
    (line,) = _down_lines(logs)
    assert "no stream at path /nope (404" in str(line["reason"]) and "***" in str(line["uri"])
    assert source.state.failures >= 3


async def test_unreachable_host(capfd: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    logs, source = await _failing(f"rtsp://admin:{PASSWORD}@127.0.0.1:{port}/cam", 1.0, capfd)
    (line,) = _down_lines(logs)
    assert f"cannot connect to 127.0.0.1:{port}: Connection refused" == line["reason"]
    assert source.state.failures >= 3


async def test_silent_host_times_out(capfd: pytest.CaptureFixture[str]) -> None:
    """A host that accepts the connection and never answers (a hung camera)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        logs, _ = await _failing(f"rtsp://127.0.0.1:{port}/cam", 1.2, capfd, timeout="0.3")
    (line,) = _down_lines(logs)
    assert line["reason"] == f"the camera at 127.0.0.1:{port} did not answer within 0.3 s"


async def test_unsupported_codec_stops_with_one_clear_error(servers: Servers,
                                                            capfd: pytest.CaptureFixture[str]) -> None:
    server = servers({"/vp8": vp8_launch()})
    source = RtspSource(server.url("/vp8", user="admin", password=PASSWORD), stream_id="lobby", options={})
    with structlog.testing.capture_logs() as logs, pytest.raises(SourceError) as err:
        await run_source(source, Frames(), timeout=10)
    message = str(err.value)
    assert message.startswith("node lobby: camera rtsp://admin:***@127.0.0.1:")
    assert "offers VP8 video; panoflow decodes H.264 and H.265" in message and PASSWORD not in message
    assert not _down_lines(logs)  # no retrying: it can never work
    out, err_text = capfd.readouterr()
    assert "Traceback" not in out + err_text


async def test_ffmpeg_backend_bit_exact_and_reads_other_codecs(servers: Servers,
                                                               rtsp_clips: dict[str, Path]) -> None:
    clip = rtsp_clips["small"]
    reference = decode_bgr(clip)
    server = servers({"/cam": h264_launch(clip), "/vp8": vp8_launch()}, auth=("digest", "admin", PASSWORD))
    for uri, cls in ((server.url("/cam", user="admin", password=PASSWORD, scheme="rtsp+ffmpeg"),
                      FfmpegRtspSource),
                     (server.url("/cam", user="admin", password=PASSWORD,
                                 query="backend=ffmpeg&transport=udp"),
                      RtspSource)):
        frames, source = await _receive(uri, 40, cls=cls)
        assert source.settings.backend == "ffmpeg"
        assert mismatches(frames.frames, reference) == []
        indexes = [read_index(f.image) for f in frames.frames]
        assert indexes == sorted(indexes) and PASSWORD not in frames.frames[0].stream_uri
    frames, _ = await _receive(server.url("/vp8", user="admin", password=PASSWORD, scheme="rtsp+ffmpeg"), 5,
                               cls=FfmpegRtspSource)
    assert frames.frames[0].image.shape == (240, 320, 3)


async def test_several_cameras_on_one_server_port(servers: Servers, rtsp_clips: dict[str, Path],
                                                  hevc_clip: Path) -> None:
    clips = {"/a": rtsp_clips["small"], "/b": rtsp_clips["other"]}
    server = servers({"/a": h264_launch(clips["/a"]), "/b": h264_launch(clips["/b"]),
                      "/c": h265_launch(hevc_clip)})
    plan = [("/a", "tcp", clips["/a"]), ("/b", "udp", clips["/b"]), ("/c", "tcp", hevc_clip)]
    got: dict[str, Frames] = {}
    async with anyio.create_task_group() as tg:
        for mount, transport, _ in plan:
            got[mount] = Frames(stop_after=45)
            source = RtspSource(server.url(mount, query=f"transport={transport}"), stream_id=mount,
                                options={})
            tg.start_soon(run_source, source, got[mount], 15.0)
    for mount, _, clip in plan:
        frames = got[mount].frames
        assert len(frames) == 45 and {f.stream_id for f in frames} == {mount}
        assert mismatches(frames, decode_bgr(clip)) == []


async def test_slow_consumer_never_stalls_the_reader(servers: Servers, rtsp_clips: dict[str, Path]) -> None:
    """An emit that blocks 0.3 s per frame (a slow app under a blocking policy): the RTP reader keeps pace,
    the queue stays within its bound, drops are counted, and the frames that do arrive are intact."""
    clip = rtsp_clips["long"]
    server = servers({"/cam": h264_launch(clip)})
    frames = Frames(delay=0.3)
    source = RtspSource(server.url("/cam"), stream_id="cam", options={"buffer": "8"})
    start = time.monotonic()
    with anyio.move_on_after(4.0):
        await source.run(frames)
    elapsed = time.monotonic() - start
    stats = source.stats()
    assert stats["units"] >= 30 * (elapsed - 1.0)  # pictures kept arriving in real time
    assert stats["queue_high_water"] <= 8
    assert stats["dropped_queue_full"] + stats["dropped_waiting_keyframe"] + stats["dropped_late"] > 30
    assert 5 <= frames.count <= 15
    assert mismatches(frames.frames, decode_bgr(clip)) == []
    assert stats["state"] == "stopped" and source.state.sessions == 1  # no spurious stall/reconnect


async def test_cancel_stops_quickly_and_frees_the_decoder(servers: Servers,
                                                          rtsp_clips: dict[str, Path]) -> None:
    server = servers({"/cam": h264_launch(rtsp_clips["long"])})
    source = RtspSource(server.url("/cam"), stream_id="cam", options={})
    frames = Frames()
    async with anyio.create_task_group() as tg:
        tg.start_soon(source.run, frames)
        await frames.wait_count(5, 10)
        t0 = time.monotonic()
        tg.cancel_scope.cancel()
    # a deadline that tells "interrupted" from "waited for the 5 s socket timeout" (quiet machine: ~0.05 s)
    assert time.monotonic() - t0 < 4
    assert await anyio.to_thread.run_sync(source.finished.wait, 10.0)
