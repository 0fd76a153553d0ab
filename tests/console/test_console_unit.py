"""The web console's server side (docs/console.md) through aiohttp's test client: a real control plane on
SQLite in a tmp dir, a real daemon API object, a real RTSP answer from a loopback server. The browser journey
is test_console_journey.py."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import structlog
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given, settings
from hypothesis import strategies as st

from panoflow.console.charts import History, instance_series, parse_exposition, svg_chart
from panoflow.console.plane import mount_plane_console
from panoflow.console.probe import describe_camera
from panoflow.console.wizard import form_fields, read_graph
from panoflow.controlplane import ControlPlane, create_access_key, open_store
from panoflow.controlplane.previews import PREVIEWS
from panoflow.controlplane.server import make_app
from panoflow.core.metrics import MetricFamily, render

pytestmark = pytest.mark.anyio

GRAPH = Path(__file__).parents[2] / "examples" / "hello_panorama" / "graphs" / "hello_panorama" / "graph.json"
PASSWORD = "pa55-W0rd-never-shown"
Opener = Callable[..., Any]


@pytest.fixture
def plane(tmp_path: Path) -> Any:
    store = open_store(f"sqlite:///{tmp_path / 'cp.db'}")
    yield ControlPlane(store, assets=tmp_path / "assets")
    store.close()


class Browser:
    """A test client that keeps cookies (aiohttp's jar) and reads the CSRF token off the last page."""

    def __init__(self, client: TestClient):
        self.client = client
        self.csrf = ""

    async def page(self, path: str, **kwargs: Any) -> tuple[int, str]:
        resp = await self.client.get(path, **kwargs)
        text = await resp.text()
        m = re.search(r'name="csrf_token" value="([^"]+)"', text)
        if m:
            self.csrf = m[1]
        return resp.status, text

    async def post(self, path: str, data: Any = None, *, csrf: str | None = None,
                   allow_redirects: bool = False, headers: dict[str, str] | None = None) -> Any:
        form = dict(data or {})
        token = self.csrf if csrf is None else csrf
        if token:
            form.setdefault("csrf_token", token)
        return await self.client.post(path, data=form, allow_redirects=allow_redirects, headers=headers)

    async def sign_in(self, key_id: str, secret: str) -> Any:
        await self.page("/console/sign-in")
        return await self.post("/console/sign-in", {"access_key_id": key_id, "secret_access_key": secret})


@pytest.fixture
async def open_console(plane: ControlPlane) -> AsyncIterator[Opener]:
    clients: list[TestClient] = []

    async def make(ttl: float | None = None, clock: Callable[[], float] = time.monotonic) -> Browser:
        client = TestClient(TestServer(make_app(
            plane, routes=lambda app: mount_plane_console(app, plane, session_ttl_s=ttl, clock=clock))))
        await client.start_server()
        clients.append(client)
        return Browser(client)

    yield make
    for c in clients:
        await c.close()


def _device(plane: ControlPlane, name: str = "edge-1") -> str:
    return str(plane.call("ProvisionDevice", {"Name": name})["DeviceId"])


def _camera(plane: ControlPlane, name: str = "front_door") -> None:
    plane.call("CreateNodeFromTemplateJob", {
        "TemplateType": "RTSP_CAMERA_STREAM", "OutputPackageName": name, "OutputPackageVersion": "1.0",
        "NodeName": name,
        "TemplateParameters": {"StreamUrl": "rtsp://127.0.0.1:8554/cam", "Password": PASSWORD}})


async def _signed_in(open_console: Opener, plane: ControlPlane, *, read_only: bool = False,
                     ttl: float | None = None, clock: Callable[[], float] = time.monotonic) -> Browser:
    key = create_access_key(plane.store, read_only=read_only)
    browser = await open_console(ttl, clock)
    resp = await browser.sign_in(key.access_key_id, key.secret_access_key)
    assert resp.status == 303, await resp.text()
    return browser


async def test_wrong_key_is_refused_with_a_message_and_never_echoed(open_console: Opener,
                                                                      plane: ControlPlane) -> None:
    key = create_access_key(plane.store)
    browser = await open_console()
    resp = await browser.sign_in(key.access_key_id, "wrong-" + key.secret_access_key)
    text = await resp.text()
    assert resp.status == 401
    assert "Wrong access key ID or secret access key." in text
    assert "wrong-" not in text and key.secret_access_key not in text
    with structlog.testing.capture_logs() as logs:
        resp = await browser.sign_in("PFAKNOSUCHKEY0000000", key.secret_access_key)
        assert resp.status == 401 and key.secret_access_key not in await resp.text()
        await browser.sign_in(key.secret_access_key, key.access_key_id)  # the two fields swapped
    assert [e.get("access_key_id") for e in logs if e["event"] == "console_sign_in_failed"] == [
        "PFAKNOSUCHKEY0000000", None]
    assert key.secret_access_key not in repr(logs)
    # no session: pages send to the sign-in form
    resp = await browser.client.get("/console/devices", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/console/sign-in"
    # guessing is slowed down: after 10 failures from one address in a minute, even the right key waits
    for _ in range(8):
        await browser.sign_in(key.access_key_id, "guess")
    resp = await browser.sign_in(key.access_key_id, key.secret_access_key)
    assert resp.status == 429 and "Too many failed sign-ins" in await resp.text()
    # a sign-in without the form's own token is refused too (login CSRF)
    resp = await browser.client.post("/console/sign-in", data={"access_key_id": key.access_key_id,
                                                               "secret_access_key": key.secret_access_key})
    assert resp.status == 403 and "CSRF" in await resp.text()


async def test_session_cookie_flags_and_secret_free_pages(open_console: Opener,
                                                          plane: ControlPlane) -> None:
    key = create_access_key(plane.store)
    browser = await open_console()
    await browser.page("/console/sign-in")
    resp = await browser.post("/console/sign-in", {"access_key_id": key.access_key_id,
                                                   "secret_access_key": key.secret_access_key})
    assert resp.status == 303 and resp.headers["Location"] == "/console/instances"
    cookie = next(v for v in resp.headers.getall("Set-Cookie") if v.startswith("panoflow_console="))
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console/" in cookie
    assert "Secure" not in cookie  # plain HTTP here; Secure when served over TLS
    session_id = cookie.split(";")[0].split("=", 1)[1]
    assert len(session_id) >= 40
    for path in ("/console/instances", "/console/devices", "/console/cameras", "/console/packages",
                 "/console/deploy"):
        status, text = await browser.page(path)
        assert status == 200, path
        assert session_id not in text and key.secret_access_key not in text
        assert 'class="skip-link" href="#main"' in text and 'id="sign-out"' in text
    assert "Content-Security-Policy" in resp.headers
    resp = await browser.post("/console/sign-out")
    assert resp.status == 303 and resp.headers["Location"] == "/console/sign-in?signed_out=1"
    resp = await browser.client.get("/console/instances", allow_redirects=False)
    assert resp.headers["Location"] == "/console/sign-in"


async def test_expired_session_shows_the_sign_in_page_with_a_message(open_console: Opener,
                                                                     plane: ControlPlane) -> None:
    now = [1000.0]  # the sessions' clock, moved by hand: no waiting, nothing a loaded machine can delay
    browser = await _signed_in(open_console, plane, ttl=60, clock=lambda: now[0])
    now[0] += 59
    status, _text = await browser.page("/console/instances")
    assert status == 200
    now[0] += 1
    resp = await browser.client.get("/console/instances", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/console/sign-in?expired=1"
    status, text = await browser.page(resp.headers["Location"])
    assert "Your session expired. Sign in again." in text
    # htmx polling gets a redirect header instead of a page
    resp = await browser.client.get("/console/instances", headers={"HX-Request": "true"},
                                    allow_redirects=False)
    assert resp.headers.get("HX-Redirect") == "/console/sign-in"


async def test_posts_need_the_session_csrf_token(open_console: Opener, plane: ControlPlane) -> None:
    device = _device(plane)
    browser = await _signed_in(open_console, plane)
    await browser.page("/console/devices")
    for token in ("", "forged-token"):
        resp = await browser.post(f"/console/devices/{device}/reboot", csrf=token)
        assert resp.status == 403
        assert "CSRF check failed" in await resp.text()
    assert plane.call("ListDevicesJobs", {"DeviceId": device})["DeviceJobs"] == []
    # the htmx header carries it as well as the hidden field
    resp = await browser.client.post(f"/console/devices/{device}/reboot",
                                     headers={"X-CSRF-Token": browser.csrf}, allow_redirects=False)
    assert resp.status == 303
    jobs = plane.call("ListDevicesJobs", {"DeviceId": device})["DeviceJobs"]
    assert [j["JobType"] for j in jobs] == ["REBOOT"]


async def test_read_only_key_sees_no_controls_and_a_forged_post_is_refused(open_console: Opener,
                                                                           plane: ControlPlane) -> None:
    device = _device(plane)
    _camera(plane)
    browser = await _signed_in(open_console, plane, read_only=True)
    status, text = await browser.page("/console/instances")
    assert 'id="read-only-note"' in text and 'id="deploy-link"' not in text
    assert 'href="/console/deploy"' not in text  # nor in the navigation
    status, text = await browser.page("/console/devices")
    assert status == 200 and device in text and "Reboot" not in text and "Update software" not in text
    status, text = await browser.page("/console/cameras")
    assert 'id="add-camera"' not in text
    status, text = await browser.page("/console/deploy")
    assert status == 403 and "This access key is read-only" in text
    for path, form in ((f"/console/devices/{device}/reboot", {}),
                       ("/console/deploy", {"device": device, "name": "x", "manifest": GRAPH.read_text()}),
                       ("/console/cameras", {"name": "cam2", "url": "rtsp://127.0.0.1/x"})):
        resp = await browser.post(path, form)
        assert resp.status == 403, path
        assert "This access key is read-only" in await resp.text()
    # a refused htmx click says why, in the page's messages
    resp = await browser.post(f"/console/devices/{device}/reboot", headers={"HX-Request": "true"})
    assert resp.status == 403 and resp.headers["HX-Retarget"] == "#messages"
    text = await resp.text()
    assert "This access key is read-only" in text and "<html" not in text
    assert plane.call("ListDevicesJobs", {"DeviceId": device})["DeviceJobs"] == []
    assert plane.call("ListApplicationInstances", {})["ApplicationInstances"] == []


async def test_camera_password_never_appears_in_pages_or_logs(open_console: Opener,
                                                              plane: ControlPlane) -> None:
    browser = await _signed_in(open_console, plane)
    await browser.page("/console/cameras")
    with structlog.testing.capture_logs() as logs:
        bad = await browser.post("/console/cameras", {"name": "front door!", "url": "http://x",
                                                      "username": "admin", "password": PASSWORD})
        bad_text = await bad.text()
        ok = await browser.post("/console/cameras", {"name": "front_door", "url": "rtsp://127.0.0.1:8554/cam",
                                                     "username": "admin", "password": PASSWORD})
        _status, listing = await browser.page("/console/cameras")
    assert bad.status == 400
    assert "Camera name: 1 to 50 letters" in bad_text and "Stream URL: expected rtsp://" in bad_text
    assert 'id="camera-name-error"' in bad_text and 'value="admin"' in bad_text
    assert ok.status == 303
    assert 'id="camera-front_door"' in listing
    for text in (bad_text, listing):
        assert PASSWORD not in text
    assert PASSWORD not in repr(logs)
    jobs = plane.call("ListNodeFromTemplateJobs", {})["NodeFromTemplateJobs"]
    assert len(jobs) == 1


async def test_test_connection_describes_the_camera(open_console: Opener, plane: ControlPlane) -> None:
    seen: list[bytes] = []

    async def rtsp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        seen.append(request)
        cseq = re.search(rb"CSeq: *(\d+)", request, re.IGNORECASE)
        sdp = (b"v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=cam\r\nt=0 0\r\n"
               b"m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n")
        writer.write(b"RTSP/1.0 200 OK\r\nCSeq: " + (cseq[1] if cseq else b"1") +
                     b"\r\nContent-Type: application/sdp\r\nContent-Length: " + str(len(sdp)).encode() +
                     b"\r\n\r\n" + sdp)
        await writer.drain()
        await reader.read()
        writer.close()

    server = await asyncio.start_server(rtsp, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        browser = await _signed_in(open_console, plane)
        await browser.page("/console/cameras")
        form = {"name": "cam", "url": f"rtsp://127.0.0.1:{port}/s", "password": PASSWORD}
        resp = await browser.post("/console/cameras/test", form, headers={"HX-Request": "true"})
        text = await resp.text()
        assert "Connected" in text and "1 video stream" in text and PASSWORD not in text
        assert seen and seen[0].startswith(b"DESCRIBE rtsp://127.0.0.1:")
    finally:
        server.close()
        await server.wait_closed()
    closed = await describe_camera(f"rtsp://127.0.0.1:{port}/s", None, None, timeout=3)
    assert not closed.ok and "Cannot connect" in closed.message
    assert not (await describe_camera("rtsp://u:p@127.0.0.1/s", None, None)).ok


async def _deployed(open_console: Opener, plane: ControlPlane) -> tuple[Browser, str, str]:
    device = _device(plane)
    _camera(plane)
    browser = await _signed_in(open_console, plane)
    await browser.page("/console/deploy")
    graph = GRAPH.read_text()
    start = {"device": device, "name": "hello", "manifest": graph}
    resp = await browser.post("/console/deploy/parameters", start)
    text = await resp.text()
    assert resp.status == 200, text
    resp = await browser.post("/console/deploy", {
        "device": device, "name": "hello", "manifest": graph, "param.greeting": "hi there",
        "param.box_size": "0.25", "param.camera_node": "123456789012::front_door.front_door@1.0"})
    assert resp.status == 303, await resp.text()
    instance_id = resp.headers["Location"].rsplit("/", 1)[1]
    return browser, device, instance_id


async def test_deploy_wizard_fields_validation_and_create(open_console: Opener,
                                                          plane: ControlPlane) -> None:
    device = _device(plane)
    _camera(plane)
    browser = await _signed_in(open_console, plane)
    status, _ = await browser.page("/console/deploy")
    assert status == 200
    graph = GRAPH.read_text()
    # step 1: a broken graph is shown with its JSON pointer, nothing is created
    resp = await browser.post("/console/deploy/parameters", {"device": device, "name": "hello",
                                                             "manifest": '{"nodeGraph": {}}'})
    text = await resp.text()
    assert resp.status == 400 and 'id="manifest-errors"' in text and "/nodeGraph" in text
    # step 2: one field per overridable node, labelled by its decorator
    start = {"device": device, "name": "hello", "manifest": graph}
    resp = await browser.post("/console/deploy/parameters", start)
    text = await resp.text()
    assert re.search(r'<label for="param-greeting">Greeting</label>', text)
    assert re.search(r'<input id="param-box_size" name="param.box_size" type="number" step="any" '
                     r'value="0.25"', text)
    assert 'id="param-box_size-help">Side of the moving box, relative to the frame.</p>' in text
    assert re.search(r'<select id="param-camera_node"[^>]*required', text)
    assert "front_door" in text
    # a bad value is shown at its field, by the parameter type's own check
    resp = await browser.post("/console/deploy", {
        "device": device, "name": "hello", "manifest": graph, "param.greeting": "x", "param.box_size": "1e40",
        "param.camera_node": ""})
    text = await resp.text()
    assert resp.status == 400
    assert re.search(r'id="param-box_size-error"[^>]*>Box size: 1e\+40 is outside the float32 range', text)
    assert 'id="param-camera_node-error"' in text
    assert plane.call("ListApplicationInstances", {})["ApplicationInstances"] == []
    # a good form creates the instance with the overrides
    resp = await browser.post("/console/deploy", {
        "device": device, "name": "hello", "manifest": graph, "param.greeting": "hi there",
        "param.box_size": "0.5", "param.camera_node": "123456789012::front_door.front_door@1.0"})
    assert resp.status == 303
    instance_id = resp.headers["Location"].rsplit("/", 1)[1]
    nodes = plane.call("ListApplicationInstanceNodeInstances", {"ApplicationInstanceId": instance_id})
    names = {n["NodeName"] for n in nodes["NodeInstances"]}
    assert "front_door" in names
    _status, text = await browser.page(f"/console/instances/{instance_id}")
    assert "Deployment of hello started." in text and 'id="instance-status">DEPLOYMENT_PENDING' in text
    # Replace starts from the instance's own graph, device and name
    _status, text = await browser.page(f"/console/deploy?replace={instance_id}")
    assert f'name="replace" value="{instance_id}"' in text and 'value="hello"' in text
    assert "camera_node" in text and f'<option value="{device}" selected>' in text
    resp = await browser.post("/console/deploy", {
        "device": device, "name": "hello", "manifest": graph, "replace": instance_id,
        "param.camera_node": "123456789012::front_door.front_door@1.0"})
    assert resp.status == 303
    old = plane.call("DescribeApplicationInstance", {"ApplicationInstanceId": instance_id})
    assert old["Status"] == "REMOVAL_PENDING" and "Replaced by" in old["StatusDescription"]


async def test_pause_resume_remove_and_logs(open_console: Opener, plane: ControlPlane) -> None:
    browser, device, instance_id = await _deployed(open_console, plane)
    camera = "front_door"
    plane.report_application_status(instance_id, "DEPLOYMENT_SUCCEEDED", health="RUNNING",
                                    node_statuses={camera: "RUNNING", "code_node": "RUNNING"})
    status, text = await browser.page(f"/console/instances/{instance_id}")
    assert f'id="node-{camera}"' in text and f'aria-label="Pause camera {camera}"' in text
    assert f'aria-label="Resume camera {camera}"' not in text  # running: only Pause is offered
    assert 'aria-label="Pause camera code_node"' not in text
    resp = await browser.post(f"/console/instances/{instance_id}/nodes/{camera}/pause",
                              headers={"HX-Request": "true"})
    assert resp.status == 200 and f"Paused {camera}." in await resp.text()
    assert [s["Signal"] for s in plane.pending_signals(instance_id)] == ["PAUSE"]
    plane.report_application_status(instance_id, "DEPLOYMENT_SUCCEEDED", health="RUNNING",
                                    node_statuses={camera: "PAUSED", "code_node": "RUNNING"})
    _status, text = await browser.page(f"/console/instances/{instance_id}")
    assert (
        f'aria-label="Resume camera {camera}"' in text and f'aria-label="Pause camera {camera}"' not in text
    )
    plane.append_device_logs(device, {"Lines": [
        {"Time": "2026-12-07T10:00:00Z", "Instance": instance_id, "Node": "code_node", "Line": "hello <b>"},
        {"Time": "2026-12-07T10:00:01Z", "Instance": instance_id, "Node": "", "Line": "instance started"},
        {"Time": "2026-12-07T10:00:02Z", "Instance": "other", "Node": "code_node", "Line": "not mine"}]})
    status, text = await browser.page(f"/console/instances/{instance_id}/logs")
    assert "[code_node] hello &lt;b&gt;" in text and "instance started" in text and "not mine" not in text
    status, text = await browser.page(f"/console/instances/{instance_id}/logs/lines?node=code_node")
    assert "hello &lt;b&gt;" in text and "instance started" not in text
    status, text = await browser.page(f"/console/instances/{instance_id}/logs?node=nope")
    assert status == 400 and "has no node" in text
    # the preview is relayed from the device: the page streams it and says the device hears at its next sync
    interfaces = [{"Name": "eth0", "IpAddress": "192.0.2.7"}]
    plane.device_sync(device, {"SoftwareVersion": "0.1.0", "NetworkInterfaces": interfaces, "Instances": []})
    _status, text = await browser.page(f"/console/instances/{instance_id}/preview")
    assert f'src="/console/instances/{instance_id}/preview.mjpg"' in text
    assert 'data-state="waiting"' in text and "at its next sync (it syncs every 5 s)" in text
    _status, text = await browser.page("/console/devices")
    heartbeat = re.search(r'class="device-heartbeat">([^<]*)<', text)
    assert heartbeat and heartbeat[1].endswith("UTC"), text
    resp = await browser.post(f"/console/instances/{instance_id}/remove")
    assert resp.status == 303
    described = plane.call("DescribeApplicationInstance", {"ApplicationInstanceId": instance_id})
    assert described["Status"] == "REMOVAL_PENDING"


def _metrics_text(app: str, frames: float, dropped: float, seconds: float, batches: float) -> str:
    fams = [MetricFamily("panoflow_stream_fps", "gauge", "fps").add(frames, application=app, stream="cam"),
            MetricFamily("panoflow_stream_dropped_frames_total", "counter", "d").add(dropped,
                                                                                      application=app),
            MetricFamily("panoflow_inference_seconds_total", "counter", "s").add(seconds, application=app),
            MetricFamily("panoflow_inference_batches_total", "counter", "b").add(batches, application=app),
            MetricFamily("panoflow_cloudwatch_metric", "gauge", "c").add(7, application=app, namespace="Demo",
                                                                         metric="people", unit="Count")]
    return render(fams)


async def test_metrics_charts_from_device_metrics(open_console: Opener, plane: ControlPlane) -> None:
    browser, device, instance_id = await _deployed(open_console, plane)
    status, text = await browser.page(f"/console/instances/{instance_id}/metrics")
    assert 'id="metrics-empty"' in text
    plane.put_device_metrics(device, _metrics_text("hello", 10, 0, 0.0, 0))
    await browser.page(f"/console/instances/{instance_id}/metrics/charts")
    plane.put_device_metrics(device, _metrics_text("hello", 12, 6, 0.5, 10))
    status, text = await browser.page(f"/console/instances/{instance_id}/metrics/charts")
    assert status == 200
    assert re.search(r'id="chart-fps".*?<polyline class="series"', text, re.DOTALL)
    assert re.search(r'id="chart-inference".*?aria-label="Inference time \(ms\): latest 50 ms"', text,
                     re.DOTALL)
    assert re.search(r'id="chart-app-0" class="chart-app".*?people \(Demo\)', text, re.DOTALL)


async def test_relayed_preview_streams_the_devices_frames_to_a_read_only_key(open_console: Opener,
                                                                               plane: ControlPlane) -> None:
    browser, _device_id, instance_id = await _deployed(open_console, plane)
    watcher = create_access_key(plane.store, read_only=True)  # read-only keys may watch
    resp = await browser.sign_in(watcher.access_key_id, watcher.secret_access_key)
    assert resp.status == 303
    relay = browser.client.server.app[PREVIEWS]
    now = [1000.0]
    relay.clock = lambda: now[0]
    base = f"/console/instances/{instance_id}/preview"
    assert not relay.is_wanted(instance_id)
    status, text = await browser.page(base)
    assert status == 200 and relay.is_wanted(instance_id)  # looking at it asks the device for it
    assert 'data-state="waiting"' in text and "at its next sync" in text
    # the device posts (controlplane.previews keeps the latest frame): the stream sends each new one
    first, second = b"\xff\xd8\xff-first-frame", b"\xff\xd8\xff-second-frame"
    relay.put(instance_id, first)
    stream = await browser.client.get(base + ".mjpg")
    assert stream.headers["Content-Type"].startswith("multipart/x-mixed-replace; boundary=")

    async def part() -> bytes:
        length = None
        while True:
            line = (await asyncio.wait_for(stream.content.readline(), 10)).strip()
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
            elif not line and length is not None:
                return await stream.content.readexactly(length)

    assert await part() == first
    relay.put(instance_id, second)
    assert await part() == second
    stream.close()
    _status, text = await browser.page(base + "/state")
    assert 'data-state="live"' in text and "frame 2" in text
    # no new frame for a while: stalled, or paused when the device reports its camera paused
    now[0] += 10
    _status, text = await browser.page(base + "/state")
    assert 'data-state="stalled"' in text
    plane.report_application_status(instance_id, "DEPLOYMENT_SUCCEEDED", health="RUNNING",
                                    node_statuses={"front_door": "PAUSED", "code_node": "RUNNING"})
    _status, text = await browser.page(base + "/state")
    assert 'data-state="paused"' in text and "the camera front_door is paused" in text
    # nobody looked for longer than the window: the frame is forgotten, the device is told to stop
    now[0] += relay.window_s + 1
    assert relay.latest(instance_id) is None and relay.put(instance_id, first) == {"Wanted": False}
    # a device that never sends: "no frames" after a few heartbeats
    await browser.page(base)
    now[0] += 4 * plane.heartbeat_s
    _status, text = await browser.page(base + "/state")
    assert 'data-state="paused"' in text and "No frames from the device" in text


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.text(max_size=12), st.floats(allow_nan=False, allow_infinity=False, width=32)),
                min_size=1, max_size=6))
def test_exposition_parser_reads_what_panoflow_renders(items: list[tuple[str, float]]) -> None:
    fam = MetricFamily("panoflow_x", "gauge", "help")
    for i, (label, value) in enumerate(items):
        fam.add(value, application=label, n=str(i))
    samples = parse_exposition(render([fam]) + "garbage line {\n# comment\n")
    assert len(samples) == len(items)
    for i, (sample, (label, value)) in enumerate(zip(samples, items)):
        assert sample.labels == {"application": label, "n": str(i)}
        assert sample.value == pytest.approx(value, rel=1e-6)


def test_history_and_chart_without_data() -> None:
    history = History(keep=3)
    t0 = dt.datetime(2026, 12, 7, tzinfo=dt.timezone.utc)
    for i in range(5):
        history.add("d", t0 + dt.timedelta(seconds=i), _metrics_text("a", i, 0, 0, 0))
    history.add("d", t0, _metrics_text("a", 99, 0, 0, 0))  # older than the newest: ignored
    samples = history.samples("d")
    assert len(samples) == 3
    fps = instance_series(samples, {"a"})[0]
    assert [v for _t, v in fps.points] == [2, 3, 4]
    assert "no data yet" in svg_chart(instance_series([], {"a"})[0])


def test_wizard_field_kinds() -> None:
    graph, errors = read_graph(GRAPH.read_text())
    assert graph is not None and not errors
    assert [(f.node, f.kind, f.label, f.required) for f in form_fields(graph)] == [
        ("camera_node", "camera", "Camera", True), ("greeting", "string", "Greeting", False),
        ("box_size", "float32", "Box size", False)]


async def test_device_console_signs_in_with_the_daemon_token(tmp_path: Path) -> None:
    from panoflow.console.device import mount_device_console
    from panoflow.daemon.api import Api
    from panoflow.daemon.logfiles import tail_lines
    from panoflow.daemon.manager import Manager
    from panoflow.daemon.model import InstanceRecord, new_instance_id
    from panoflow.daemon.store import StatePaths

    paths = StatePaths(tmp_path / "state")
    paths.create()
    token = "tok-" + "x" * 40
    api = Api(Manager(paths), paths, token, "device-test")
    app = api.app()
    mount_device_console(app, api, token, tail=tail_lines)  # as daemon.server does
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        browser = Browser(client)
        await browser.page("/console/sign-in")
        resp = await browser.post("/console/sign-in", {"api_token": "wrong"})
        text = await resp.text()
        assert resp.status == 401 and "Wrong API token." in text and 'id="api-token"' in text
        await browser.page("/console/sign-in")
        resp = await browser.post("/console/sign-in", {"api_token": token})
        assert resp.status == 303
        status, text = await browser.page("/console/instances")
        assert status == 200 and 'id="instances-empty"' in text and token not in text
        assert 'id="deploy-link"' not in text
        status, text = await browser.page("/console/instances/nope")
        assert status == 404 and "No application instance" in text
        # a deployed (stopped) instance: its page, its log file, no preview, and pausing says why not
        rec = InstanceRecord(new_instance_id(), "greeter", "0" * 64, status="DEPLOYMENT_SUCCEEDED")
        api.manager.records[rec.instance_id] = rec
        logs = paths.app_logs("greeter")
        logs.mkdir(parents=True)
        (logs / "instance.log").write_text("started <ok>\n" + f"token={token}\n")
        status, text = await browser.page("/console/instances")
        assert f'id="instance-{rec.instance_id}"' in text and ">greeter</a>" in text
        status, text = await browser.page(f"/console/instances/{rec.instance_id}")
        assert status == 200 and 'id="instance-status">DEPLOYMENT_SUCCEEDED' in text
        status, text = await browser.page(f"/console/instances/{rec.instance_id}/logs")
        assert "started &lt;ok&gt;" in text and token not in text  # escaped, and redacted
        status, text = await browser.page(f"/console/instances/{rec.instance_id}/preview")
        assert 'id="preview-unavailable"' in text and "no preview now" in text
        resp = await browser.post(f"/console/instances/{rec.instance_id}/nodes/camera_node/pause")
        assert resp.status == 409 and "is not running" in await resp.text()
        # the API itself still wants the bearer token: the console cookie opens only /console/
        resp = await client.get("/instances")
        assert resp.status == 401
    finally:
        await client.close()


def test_static_assets_are_package_data() -> None:
    from importlib import resources

    htmx = resources.files("panoflow.console").joinpath("static", "htmx.min.js").read_text()
    assert htmx.startswith("/*! htmx 2.") and "0BSD" in htmx.splitlines()[0]
    css = resources.files("panoflow.console").joinpath("static", "console.css").read_text()
    assert ":focus-visible" in css and "max-width: 640px" in css


@settings(max_examples=80, deadline=None)
@given(box=st.one_of(st.text(max_size=12), st.floats().map(repr), st.integers().map(str)),
       greeting=st.text(max_size=20))
def test_wizard_values_are_either_overrides_the_validator_accepts_or_errors_at_their_field(
        box: str, greeting: str) -> None:
    from panoflow.console.wizard import build_overrides
    from panoflow.core.manifest import parse_overrides
    from panoflow.core.params import FLOAT32

    graph, _ = read_graph(GRAPH.read_text())
    assert graph is not None
    result = build_overrides(graph, {"param.box_size": box, "param.greeting": greeting}, [])
    assert set(result.errors) <= {"camera_node", "box_size"}  # the camera is required and not chosen
    values = {n["name"]: n.get("value") for n in (result.overrides or {}).get("nodeGraphOverrides", {})
              .get("nodes", [])}
    if "box_size" in result.errors:
        assert "box_size_override" not in values
    elif box.strip() and float(box) != 0.25:
        assert FLOAT32.check(values["box_size_override"]) == ""
    if result.overrides is not None:
        assert parse_overrides(json.dumps(result.overrides).encode(), "o.json").model is not None


def test_session_store_expiry_and_bounds() -> None:
    from panoflow.console import sessions

    now = [0.0]
    store = sessions.SessionStore(10, clock=lambda: now[0])
    first = store.create("PFAK1", read_only=True)
    assert store.get(first.id).session is first and first.read_only
    assert not store.get("unknown").expired and store.get(None).session is None
    now[0] = 11
    second = store.create("PFAK2", read_only=False)  # sweeps the expired one, remembering it expired
    assert store.get(first.id) == sessions.Lookup(None, expired=True)
    assert store.get(second.id).session is second
    assert second.check_csrf(second.csrf) and not second.check_csrf(first.csrf) and not second.check_csrf("")
    store.end(second.id)
    assert store.get(second.id).session is None and len(store) == 0
    with pytest.raises(ValueError):
        sessions.SessionStore(0)
