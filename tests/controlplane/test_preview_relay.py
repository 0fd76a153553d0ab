"""The relayed live preview, server side (docs/device-protocol.md section 6, controlplane.previews): a real
control plane application on loopback (aiohttp's test server), devices claimed with real provisioning bundles
and speaking the device protocol. The sync answer carries the wanted previews;
``POST /_panoflow/device/v1/preview/{instance}`` refuses no token, another device's instance, a body that is
not a JPEG and one over the limit, and keeps only the latest frame of a wanted preview, in memory."""

from __future__ import annotations

import http.cookiejar
import io
import json
import re
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from panoflow.controlplane import ControlPlane, create_access_key, open_store
from panoflow.controlplane.previews import MAX_FRAME_BYTES, PREVIEWS, PreviewRelay
from panoflow.controlplane.provisioning import read_bundle
from panoflow.controlplane.server import make_app
from tests.support.cli import panoflow_argv
from tests.support.control_plane import deploy, make_client
from tests.support.device_protocol import claimed, sync
from tests.support.fleet import wait
from tests.support.ports import free_port

pytestmark = pytest.mark.anyio

PREVIEW = "/_panoflow/device/v1/preview/"


def _jpeg(seed: int = 0) -> bytes:
    """A real JPEG (Pillow), different per seed."""
    pixels = np.random.default_rng(seed).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG")
    return out.getvalue()


class Device:
    """A claimed device speaking the device protocol through the test client."""

    def __init__(self, client: TestClient, token: str, device_id: str):
        self.client, self.token, self.id = client, token, device_id

    async def sync(self) -> dict[str, Any]:
        resp = await self.client.post("/_panoflow/device/v1/sync", json={"Software": {"Version": "0.4.0"}},
                                      headers={"Authorization": f"Bearer {self.token}"})
        assert resp.status == 200, await resp.text()
        return dict(await resp.json())

    async def frame(self, instance: str, body: bytes, *, token: str | None = "mine") -> tuple[int, Any]:
        headers = {"Content-Type": "image/jpeg"}
        if token is not None:
            headers["Authorization"] = f"Bearer {self.token if token == 'mine' else token}"
        resp = await self.client.post(PREVIEW + instance, data=body, headers=headers)
        return resp.status, json.loads(await resp.read())


@pytest.fixture
async def served(plane: ControlPlane) -> AsyncIterator[tuple[TestClient, PreviewRelay]]:
    client = TestClient(TestServer(make_app(plane)))
    await client.start_server()
    yield client, client.server.app[PREVIEWS]
    await client.close()


async def _claimed(client: TestClient, plane: ControlPlane, name: str) -> Device:
    bundle = read_bundle(plane.call("ProvisionDevice", {"Name": name})["Certificates"])
    resp = await client.post("/_panoflow/device/v1/claim", json={
        "DeviceId": bundle["DeviceId"], "ClaimToken": bundle["ClaimToken"], "Software": {"Version": "0.4.0"},
        "Hostname": name})
    doc = await resp.json()
    assert resp.status == 200, doc
    return Device(client, doc["Token"], doc["DeviceId"])


def _deploy(plane: ControlPlane, device: Device, graph: str) -> str:
    return str(plane.call("CreateApplicationInstance", {
        "DefaultRuntimeContextDevice": device.id, "Name": "people",
        "ManifestPayload": {"PayloadData": graph}})["ApplicationInstanceId"])


async def test_frames_of_a_wanted_preview_reach_the_relay_and_refusals_say_why(
        served: tuple[TestClient, PreviewRelay], plane: ControlPlane, graph_text: str) -> None:
    client, relay = served
    mine, other = await _claimed(client, plane, "edge-1"), await _claimed(client, plane, "edge-2")
    instance = _deploy(plane, mine, graph_text)
    theirs = _deploy(plane, other, graph_text)

    # nobody watches: the sync answer lists no preview, and a frame is answered "not wanted", not kept
    assert (await mine.sync())["Previews"] == []
    await other.sync()
    assert await mine.frame(instance, _jpeg()) == (200, {"Wanted": False})
    assert relay.latest(instance) is None

    # a console user opens the preview: the next sync answer asks for it, for a while, at a modest rate
    relay.want(instance)
    relay.want(theirs)
    [wanted] = (await mine.sync())["Previews"]
    assert wanted["ApplicationInstanceId"] == instance
    assert wanted["FramesPerSecond"] == relay.fps and wanted["MaxFrameBytes"] == MAX_FRAME_BYTES
    assert wanted["Until"] > (await mine.sync())["Now"]
    status, doc = await mine.frame(instance, _jpeg(1))
    assert status == 200 and doc["Wanted"] is True and doc["Stored"] is True
    first = relay.latest(instance)
    assert first is not None and first.jpeg == _jpeg(1) and first.seq == 1
    await mine.frame(instance, _jpeg(2))
    latest = relay.latest(instance)
    assert latest is not None and latest.jpeg == _jpeg(2) and latest.seq == 2  # only the newest is kept

    # refusals, each saying what to do; none of them replaces the kept frame
    status, doc = await mine.frame(instance, _jpeg(3), token=None)
    assert (status, doc["Code"]) == (401, "UnauthorizedException") and "Bearer" in doc["Message"]
    status, doc = await mine.frame(instance, _jpeg(3), token="not-a-device-token")
    assert (status, doc["Code"]) == (401, "UnauthorizedException")
    status, doc = await mine.frame(theirs, _jpeg(3))  # wanted, but another device's instance
    assert (status, doc["Code"]) == (403, "AccessDeniedException")
    assert "not running on this device" in doc["Message"]
    assert relay.latest(theirs) is None
    status, doc = await mine.frame(instance, b"GIF89a not a jpeg")
    assert (status, doc["Code"]) == (400, "ValidationException") and "not a JPEG" in doc["Message"]
    status, doc = await mine.frame(instance, _jpeg(3) + b"\0" * MAX_FRAME_BYTES)
    assert (status, doc["Code"]) == (413, "PayloadTooLargeException")
    assert relay.latest(instance) == latest

    # the other device may send its own instance's frames
    status, doc = await other.frame(theirs, _jpeg(4))
    assert status == 200 and doc["Wanted"] is True

    # once the instance is removed, its device may no longer send frames of it
    plane.call("RemoveApplicationInstance", {"ApplicationInstanceId": instance})
    await mine.sync()
    status, doc = await mine.frame(instance, _jpeg(5))
    assert status == 403


async def test_a_want_lapses_unless_renewed() -> None:
    now = [100.0]
    relay = PreviewRelay(window_s=30, clock=lambda: now[0])
    relay.want("i-1")
    answer = relay.sync_answer("dev", {"Now": "x", "Instances": [
        {"ApplicationInstanceId": "i-1", "DesiredState": "RUNNING"},
        {"ApplicationInstanceId": "i-2", "DesiredState": "REMOVED"}]})
    assert [p["ApplicationInstanceId"] for p in answer["Previews"]] == ["i-1"]
    assert relay.owner("i-1") == "dev" and relay.owner("i-2") is None
    assert relay.put("i-1", b"\xff\xd8\xff1")["Wanted"] is True
    now[0] += 20
    relay.want("i-1")  # the page is still open
    now[0] += 20
    assert relay.is_wanted("i-1") and relay.latest("i-1") is not None
    now[0] += 31  # closed: the want lapses and the frame goes with it
    assert not relay.is_wanted("i-1") and relay.latest("i-1") is None
    assert relay.put("i-1", b"\xff\xd8\xff2") == {"Wanted": False}
    assert relay.sync_answer("dev", {"Instances": []})["Previews"] == [] and relay.owner("i-1") is None


@pytest.fixture
async def fuzz_target(served: tuple[TestClient, PreviewRelay], plane: ControlPlane,
                      graph_text: str) -> tuple[Device, str, PreviewRelay]:
    """One device and its instance for every example of the property test."""
    client, relay = served
    device = await _claimed(client, plane, "edge-fuzz")
    instance = _deploy(plane, device, graph_text)
    await device.sync()
    return device, instance, relay


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(st.binary(max_size=64), st.binary(max_size=64).map(lambda b: b"\xff\xd8\xff" + b)))
async def test_any_body_is_kept_exactly_when_it_is_a_jpeg(fuzz_target: tuple[Device, str, PreviewRelay],
                                                          body: bytes) -> None:
    device, instance, relay = fuzz_target
    relay.want(instance)
    status, doc = await device.frame(instance, body)
    if body.startswith(b"\xff\xd8\xff"):
        assert status == 200 and doc["Stored"] is True
        latest = relay.latest(instance)
        assert latest is not None and latest.jpeg == body
    else:
        assert (status, doc["Code"]) == (400, "ValidationException")


def test_serve_preview_fps_reaches_the_devices_sync_answer(tmp_path: Path, graph_text: str) -> None:
    """``control-plane serve --preview-fps 4`` as a real process: a console user opens a preview, and the
    device's next sync answer asks for 4 frames a second; a rate out of range is refused before serving."""
    bad = subprocess.run(panoflow_argv("control-plane", "serve", "--db", "sqlite:///x.db", "--assets", "a",
                                       "--preview-fps", "9"), capture_output=True, text=True, timeout=60,
                         check=False, cwd=tmp_path)
    assert bad.returncode == 2 and "frames per second between 0.1 and 5" in bad.stderr
    db = f"sqlite:///{tmp_path / 'cp.db'}"
    store = open_store(db)
    key = create_access_key(store)
    store.close()
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    with open(tmp_path / "serve.log", "wb") as out:
        proc = subprocess.Popen(panoflow_argv(
            "control-plane", "serve", "--db", db, "--listen", f"127.0.0.1:{port}", "--assets",
            str(tmp_path / "assets"), "--insecure-http", "--preview-fps", "4"), stdout=out, stderr=out)
    try:
        wait(lambda: _answers(endpoint), 30, "the control plane to answer")
        pano = make_client(endpoint, key.access_key_id, key.secret_access_key)
        device, token = claimed(endpoint, pano)
        instance = deploy(pano, device, graph_text)
        sync(endpoint, token)  # the device's instances are known to the relay
        # a console user signs in and opens the preview (cookies and the sign-in form's token, as a browser)
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        form = opener.open(f"{endpoint}/console/sign-in", timeout=10).read().decode()
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', form)
        assert csrf, form
        opener.open(f"{endpoint}/console/sign-in", urllib.parse.urlencode({
            "csrf_token": csrf[1], "access_key_id": key.access_key_id,
            "secret_access_key": key.secret_access_key}).encode(), timeout=10).read()
        page = opener.open(f"{endpoint}/console/instances/{instance}/preview", timeout=10).read().decode()
        assert 'id="preview-status"' in page
        [wanted] = sync(endpoint, token)["Previews"]
        assert wanted["ApplicationInstanceId"] == instance and wanted["FramesPerSecond"] == 4
        pano.close()
    finally:
        proc.terminate()
        proc.wait(20)


def _answers(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint}/console/sign-in", timeout=2) as answer:
            answer.read()
    except urllib.error.HTTPError as exc:
        exc.close()  # it holds the answer's socket
        return False
    except OSError:
        return False
    return True
