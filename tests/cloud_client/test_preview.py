"""The device's half of the relayed live preview (cloud_client/preview.py, docs/device-protocol.md section 6):
a real control plane application on loopback (aiohttp's test server), a device claimed with a real bundle and
its CloudClient, and a real instance preview (the MJPEG sink's PreviewServer with its capability key) that the
pusher reads. Frames reach the relay while wanted, an unchanged picture is not sent again, the task stops when
the preview is no longer wanted, and an instance without a preview is said once, not per sync."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import numpy as np
import pytest
import structlog
from aiohttp.test_utils import TestServer

from panoflow.cloud_client.client import CloudClient
from panoflow.cloud_client.preview import MAX_FPS, PreviewPusher, parse_previews
from panoflow.controlplane import ControlPlane, open_store
from panoflow.controlplane.previews import PREVIEWS, PreviewRelay
from panoflow.controlplane.provisioning import read_bundle
from panoflow.controlplane.server import make_app
from panoflow.plugins.sinks.mjpeg import MjpegFeed, PreviewServer
from tests.support.control_plane import APP

pytestmark = pytest.mark.anyio


async def _until(check: Callable[[], bool], timeout: float, what: str) -> None:
    with anyio.fail_after(timeout):
        while not check():
            await anyio.sleep(0.05)
    assert check(), what


@pytest.fixture
async def fleet(tmp_path: Any) -> AsyncIterator[tuple[CloudClient, PreviewRelay, str]]:
    """A control plane on loopback, a device claimed on it (its CloudClient), an instance deployed to it."""
    store = open_store(f"sqlite:///{tmp_path / 'cp.db'}")
    plane = ControlPlane(store, assets=tmp_path / "assets", heartbeat_s=1.0)
    server = TestServer(make_app(plane), host="127.0.0.1")
    await server.start_server()
    url = str(server.make_url("")).rstrip("/")
    bundle = read_bundle(plane.call("ProvisionDevice", {"Name": "edge-1"})["Certificates"])
    async with CloudClient(url, insecure_http=True) as client:
        answer = await client.claim(device_id=bundle["DeviceId"], claim_token=bundle["ClaimToken"],
                                    version="0.4.0", hostname="edge-1")
        client.token = answer["Token"]
        instance = str(plane.call("CreateApplicationInstance", {
            "DefaultRuntimeContextDevice": bundle["DeviceId"], "Name": "people",
            "ManifestPayload": {"PayloadData": (APP / "graph.json").read_text()}})["ApplicationInstanceId"])
        yield client, server.app[PREVIEWS], instance
    await server.close()
    store.close()


@pytest.fixture
async def preview() -> AsyncIterator[tuple[MjpegFeed, str]]:
    """An instance's own preview, as the daemon's instances serve it (loopback, a capability key)."""
    feed = MjpegFeed()
    server = PreviewServer(feed, "127.0.0.1", 0, key="k3y")
    await server.start()
    yield feed, server.url
    await server.stop()


def _picture(value: int) -> np.ndarray:
    image = np.zeros((48, 64, 3), dtype=np.uint8)
    image[:, : value % 64] = 200
    return image


async def test_wanted_previews_are_pushed_until_nobody_watches(
        fleet: tuple[CloudClient, PreviewRelay, str], preview: tuple[MjpegFeed, str]) -> None:
    client, relay, instance = fleet
    feed, url = preview
    pusher = PreviewPusher(client, lambda cloud_id: url if cloud_id == instance else None)
    feed.publish(_picture(1))
    async with anyio.create_task_group() as tg:
        tg.start_soon(pusher.run)
        # not wanted: the answer lists nothing, nothing is sent
        pusher.update(await client.sync({"Software": {"Version": "0.4.0"}}))
        await anyio.sleep(0.5)
        assert pusher.sent == 0 and relay.latest(instance) is None
        # a console user looks: the next answer lists it, frames arrive
        relay.want(instance)
        answer = await client.sync({"Software": {"Version": "0.4.0"}})
        assert [p["ApplicationInstanceId"] for p in answer["Previews"]] == [instance]
        pusher.update(answer)
        await _until(lambda: relay.latest(instance) is not None, 20, "the first frame")
        first = relay.latest(instance)
        assert first is not None and first.jpeg.startswith(b"\xff\xd8\xff")
        # an unchanged picture is not sent again; a new one is
        await anyio.sleep(1.0)
        assert pusher.sent == 1
        feed.publish(_picture(40))
        await _until(lambda: pusher.sent == 2, 20, "the second frame")
        latest = relay.latest(instance)
        assert latest is not None and latest.seq == 2 and latest.jpeg != first.jpeg
        # the next answer no longer lists it: the task ends
        pusher.update({"Now": answer["Now"], "Previews": []})
        await _until(lambda: not pusher._running, 10, "the task to stop")
        feed.publish(_picture(50))
        await anyio.sleep(0.5)
        assert pusher.sent == 2
        tg.cancel_scope.cancel()


async def test_nobody_watching_any_more_stops_the_task_and_trouble_is_said_once(
        fleet: tuple[CloudClient, PreviewRelay, str], preview: tuple[MjpegFeed, str]) -> None:
    client, relay, instance = fleet
    feed, url = preview
    source: dict[str, str | None] = {"url": None}
    pusher = PreviewPusher(client, lambda _cloud_id: source["url"])
    relay.want(instance)
    answer = await client.sync({"Software": {"Version": "0.4.0"}})
    with structlog.testing.capture_logs() as logs:
        async with anyio.create_task_group() as tg:
            tg.start_soon(pusher.run)
            for _ in range(3):  # three syncs, the instance without a preview: said once
                pusher.update(answer)
                await _until(lambda: any(e["event"] == "cloud_preview_stopped" for e in logs), 10, "why")
                await anyio.sleep(0.3)  # the task of this sync has had its go
                await _until(lambda: not pusher._running, 10, "the task to give up")
            stopped = [e for e in logs if e["event"] == "cloud_preview_stopped"]
            assert len(stopped) == 1 and "no display node" in stopped[0]["why"]
            # the preview appears; the control plane's want has lapsed meanwhile (nobody looked for longer
            # than its window): the first frame is answered "not wanted" and the task stops
            source["url"] = url
            feed.publish(_picture(7))
            relay.clock = lambda: time.monotonic() + relay.window_s + 1
            pusher.update(answer)
            await _until(lambda: pusher.sent == 1, 20, "one frame")
            await _until(lambda: not pusher._running, 10, "the task to stop")
            assert instance not in pusher.wanted and relay.latest(instance) is None
            tg.cancel_scope.cancel()


def test_previews_of_an_answer_are_read_leniently() -> None:
    now = "2026-12-07T10:00:00+00:00"
    wanted = parse_previews({"Now": now, "Previews": [
        {"ApplicationInstanceId": "a", "Until": "2026-12-07T10:00:30+00:00", "FramesPerSecond": 99,
         "MaxFrameBytes": 1000},
        {"ApplicationInstanceId": "b", "Until": "2026-12-07T09:59:00+00:00"},  # already over
        {"ApplicationInstanceId": "c", "Until": "garbage", "FramesPerSecond": "NaN"},
        {"Until": now}, "not an object"]}, clock=lambda: 100.0)
    assert sorted(wanted) == ["a", "c"]
    assert wanted["a"].until == 130.0 and wanted["a"].fps == MAX_FPS and wanted["a"].max_bytes == 1024
    assert wanted["c"].until == 130.0 and wanted["c"].fps == 3.0
    assert parse_previews({"Previews": "nope"}) == {} and parse_previews({}) == {}
