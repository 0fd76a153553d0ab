"""The display sink's MJPEG preview over real HTTP (aiohttp client), and in headless Chromium when present."""

from __future__ import annotations

import asyncio
import io
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import anyio
import numpy as np
import pytest
from PIL import Image

from panoflow.core.bus import Inbox
from panoflow.core.frame import Frame, Rect
from panoflow.plugins.sinks import DisplaySink
from panoflow.plugins.sinks.mjpeg import BOUNDARY
from panoflow.plugins.sources import TestPattern
from tests.support.sources_and_sinks import frame

pytestmark = pytest.mark.anyio

CHROMIUM = "/usr/bin/chromium"


class Running:
    """A display sink with a preview, fed by a task putting test-pattern frames every ``period`` seconds."""

    def __init__(self, sink: DisplaySink, inbox: Inbox[Frame]):
        self.sink, self.inbox, self.sent = sink, inbox, 0
        assert sink.url is not None
        self.url: str = sink.url

    async def produce(self, size: tuple[int, int], period: float, count: int | None = None) -> None:
        pattern = TestPattern(size)
        while count is None or self.sent < count:
            self.inbox.put(
                "cam", frame(pattern.render(self.sent), seq=self.sent, overlays=(Rect(0.1, 0.1, 0.5, 0.5),))
            )
            self.sent += 1
            await anyio.sleep(period)


async def _start(options: dict[str, str], tg: anyio.abc.TaskGroup) -> Running:
    inbox: Inbox[Frame] = Inbox("preview", "latest", ["cam"])
    sink = DisplaySink(node_id="hdmi", options={"preview": "127.0.0.1:0", **options})
    tg.start_soon(sink.run, inbox)
    with anyio.fail_after(10):
        while sink.port is None:
            await anyio.sleep(0.01)
    assert sink.port > 0 and sink.url == f"http://127.0.0.1:{sink.port}/"
    return Running(sink, inbox)


async def _parts(resp: aiohttp.ClientResponse, n: int) -> AsyncIterator[bytes]:
    """The JPEG payloads of the first ``n`` parts of a multipart/x-mixed-replace response."""
    for _ in range(n):
        line = await resp.content.readline()
        while line == b"\r\n":
            line = await resp.content.readline()
        assert line == f"--{BOUNDARY}\r\n".encode()
        headers = {}
        while (line := await resp.content.readline()) != b"\r\n":
            key, _, value = line.decode().partition(":")
            headers[key.strip().lower()] = value.strip()
        assert headers["content-type"] == "image/jpeg"
        data = await resp.content.readexactly(int(headers["content-length"]))
        assert await resp.content.readexactly(2) == b"\r\n"
        yield data


def _jpeg_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as img:
        assert img.format == "JPEG"
        img.load()
        return img.size


async def test_snapshot_page_and_stream_over_http() -> None:
    async with anyio.create_task_group() as tg:
        run = await _start({}, tg)
        url = run.url
        async with aiohttp.ClientSession() as http:
            async with http.get(url + "snapshot.jpg") as resp:
                assert resp.status == 503  # nothing composed yet
            assert run.sink.feed.jpegs_encoded == 0
            tg.start_soon(run.produce, (320, 240), 0.02)
            with anyio.fail_after(10):
                while run.sink.outputs < 3:
                    await anyio.sleep(0.01)
            assert run.sink.feed.jpegs_encoded == 0, "encoded JPEG with nobody watching"
            async with http.get(url + "snapshot.jpg") as resp:
                assert resp.status == 200 and resp.content_type == "image/jpeg"
                assert _jpeg_size(await resp.read()) == (320, 240)
            async with http.get(url) as resp:
                assert resp.status == 200 and '<img src="stream.mjpg"' in await resp.text()
            async with http.get(url + "stream.mjpg") as resp:
                assert resp.status == 200
                assert resp.headers["Content-Type"] == f"multipart/x-mixed-replace; boundary={BOUNDARY}"
                sizes = [_jpeg_size(data) async for data in _parts(resp, 4)]
                assert sizes == [(320, 240)] * 4
                assert run.sink.feed.clients == 1
        run.inbox.close()
        tg.cancel_scope.cancel()
    assert run.sink.port is None  # server stopped


async def test_stream_ends_when_the_sink_stops() -> None:
    async with anyio.create_task_group() as tg:
        run = await _start({"size": "160x120"}, tg)
        run.inbox.put("cam", frame(np.zeros((240, 320, 3), np.uint8)))
        async with aiohttp.ClientSession() as http, http.get(run.url + "stream.mjpg") as resp:
            assert [_jpeg_size(d) async for d in _parts(resp, 1)] == [(160, 120)]
            run.inbox.close()  # the sink drains, returns and shuts the server down
            with anyio.fail_after(5):
                await resp.content.read()  # EOF
    assert run.sink.feed.clients == 0


async def test_a_client_that_never_reads_does_not_make_memory_grow() -> None:
    noise = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)  # ~incompressible
    async with anyio.create_task_group() as tg:
        run = await _start({"quality": "95"}, tg)
        reader, writer = await asyncio.open_connection("127.0.0.1", run.sink.port)
        writer.write(b"GET /stream.mjpg HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        for i in range(150):
            run.inbox.put("cam", frame(np.roll(noise, i, axis=1), seq=i))
            await anyio.sleep(0.005)
        with anyio.fail_after(10):
            while run.sink.frames_in < 150 and run.inbox.depth:
                await anyio.sleep(0.01)
        # the stalled client holds at most what fits in the socket buffers; the sink kept going
        assert run.sink.feed.jpegs_encoded < 100
        assert run.sink.outputs > 10
        writer.close()
        run.inbox.close()
    del reader


@pytest.mark.skipif(
    not os.access(CHROMIUM, os.X_OK), reason=f"{CHROMIUM} not installed (scripts/test installs it)"
)
async def test_preview_page_renders_in_headless_chromium(tmp_path: Path) -> None:
    shot = tmp_path / "shot.png"
    async with anyio.create_task_group() as tg:
        run = await _start({}, tg)
        tg.start_soon(run.produce, (640, 360), 0.03)
        with anyio.fail_after(10):
            while run.sink.outputs < 2:
                await anyio.sleep(0.01)
        cmd = [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--window-size=640,360",
            "--timeout=5000",
            f"--screenshot={shot}",
            run.url,
        ]
        with anyio.fail_after(60):
            result = await anyio.run_process(cmd, check=False, env={**os.environ, "HOME": str(tmp_path)})
        assert shot.exists(), result.stderr.decode(errors="replace")[-2000:]
        run.inbox.close()
        tg.cancel_scope.cancel()
    with Image.open(shot) as img:
        pixels = np.asarray(img.convert("RGB"))
    assert pixels.std() > 20, "the screenshot is blank"
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 100
    assert shutil.which(CHROMIUM)
