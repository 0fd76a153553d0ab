"""Issue 17's browser test: an operator's whole journey through the web console in headless Chromium, against
a real ``panoflow control-plane serve`` process, a real ``panoflow serve`` device provisioned to it and a real
GStreamer RTSP camera with a password.

Sign in with a key from ``panoflow control-plane keys create``, add the camera, deploy the greeter through the
wizard with its greeting changed from the default, see it RUNNING, see the greeting in its log on the logs
page, watch the live preview relayed from the device on the control plane's console (and on the device's own
console), pause the camera node from the control plane's console and see both previews stop moving, sign
out. Each step leaves a screenshot in the test's folder
(``screenshots/``) and, when ``PANOFLOW_CONSOLE_SCREENSHOTS`` names a folder, there too (docs/console.md
regenerates the README's picture that way). Everything the browsers received (bodies, headers, page sources,
console messages) is then searched for the camera password, the secret keys and the device's tokens.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.console.browser import Browsing, picture
from tests.console.fleet import ConsoleControlPlane
from tests.media import make_clip
from tests.support.apps import greeter_app
from tests.support.daemons import SECRETS, Daemon
from tests.support.fleet import join
from tests.support.rtsp import GstServer, h264_launch

CAMERA_USER, CAMERA_PASSWORD = "operator", "console-Camera-Pw-5519"
GREETING = "hola from the console"
#: how long the deployment may take to show RUNNING on the loaded shared machine (ms)
RUNNING_MS = 150_000
BAD = "(Bad Request)"


def _moving(shot: Callable[[], bytes], *, timeout: float) -> bool:
    """Whether the picture changes between two looks one second apart, within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last = shot()
    while time.monotonic() < deadline:
        time.sleep(1)
        now = shot()
        if now != last:
            return True
        last = now
    return False


def _frozen(shot: Callable[[], bytes], *, timeout: float, still: float = 3.0) -> bool:
    """Whether the picture stays the same for ``still`` seconds (looked at every half second), within
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last, since = shot(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = shot()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= still:
            return True
    return False


@pytest.mark.slow
@pytest.mark.timeout(360)  # a device, a package upload and a deployment on 2 shared cores
def test_console_journey(make_daemon: Callable[..., Daemon], console_cp: ConsoleControlPlane,
                         servers: Callable[..., GstServer], browsing: Callable[..., Browsing],
                         tmp_path: Path) -> None:
    from playwright.sync_api import expect

    cp = console_cp
    SECRETS.append(CAMERA_PASSWORD)
    # a device joined with a ProvisionDevice bundle, a camera with a password, the greeter (published)
    daemon, device_id = join(make_daemon, cp, tmp_path, "console")  # type: ignore[arg-type]
    clip = make_clip(tmp_path / "camera.mp4", frames=600, size=(320, 240), seed=17)  # 20 s of real-time video
    camera = servers({"/front": h264_launch(clip)}, auth=("digest", CAMERA_USER, CAMERA_PASSWORD))
    app = greeter_app(tmp_path / "greeter")
    cp.publish(app)
    graph = (app / "graphs" / "test_app" / "graph.json").read_text()

    web = browsing()
    page = web.page

    # 1. sign in with the key pair (the console sends a signed-out visitor to its sign-in page)
    page.goto(cp.console)
    expect(page).to_have_url(re.compile(r"/console/sign-in"))
    page.get_by_label("Access key ID").fill(cp.key["AccessKeyId"])
    page.get_by_label("Secret access key").fill(cp.key["SecretAccessKey"])
    web.shot("sign-in")
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/console/instances$"))
    expect(page.locator("#read-only-note")).to_have_count(0)
    web.shot("instances-empty")

    # 2. add the camera: its password is sent once and never shown again
    page.locator("#nav").get_by_role("link", name="Cameras").click()
    page.get_by_label("Camera name").fill("front_door")
    page.get_by_label("Stream URL").fill(camera.url("/front"))
    page.get_by_label("Username").fill(CAMERA_USER)
    page.get_by_label("Password").fill(CAMERA_PASSWORD)
    page.get_by_role("button", name="Test connection").click()
    # the control plane reached the camera with the password (an RTSP DESCRIBE)
    expect(page.locator("#camera-test-result")).to_contain_text("Connected", timeout=30_000)
    web.shot("camera-test")
    page.get_by_role("button", name="Add camera").click()
    expect(page.locator("#camera-front_door")).to_be_visible()
    expect(page.get_by_label("Password")).to_have_value("")
    web.shot("camera-added")
    names = {n["PackageName"] for n in cp.pano.list_nodes(Category="MEDIA_SOURCE")["Nodes"]}
    assert "front_door" in names or any("front_door" in n for n in names), names

    # 3. the deploy wizard: the graph, then one field per overridable node, titled by its decorator
    page.locator("#nav").get_by_role("link", name="Deploy").click()
    page.get_by_label("Device").select_option(label="edge-console")
    page.get_by_label("Instance name").fill("greeter")
    page.get_by_label("or paste graph.json").fill(graph)
    web.shot("deploy-graph")
    page.get_by_role("button", name="Next: parameters").click()
    greeting = page.get_by_label("Greeting")
    expect(greeting).to_have_value("hello")  # the graph's default
    expect(page.locator("#param-p_str-help")).to_have_text("The words the greeter logs when it starts")
    expect(page.get_by_label("Frame interval")).to_have_attribute("type", "number")
    expect(page.get_by_label("Enabled")).to_have_attribute("type", "checkbox")
    camera_field = page.get_by_label("Camera")
    expect(page.locator("#param-camera_node-help")).to_have_text("The camera whose video the greeter shows")
    choice = camera_field.locator("option", has_text="front_door").get_attribute("value")
    assert choice
    camera_field.select_option(choice)
    greeting.fill(GREETING)
    web.shot("deploy-wizard")  # the README's picture
    # the browser keeps int32 in range by itself (min/max); without its checks (as a script would post), the
    # server refuses with the rule `panoflow validate` applies, at the field, and keeps the other values
    page.get_by_label("Frame interval").fill("99999999999")
    page.locator("#deploy-parameters").evaluate("form => { form.noValidate = true; }")
    page.get_by_role("button", name="Deploy").click()
    expect(page.locator("#param-p_int-error")).to_contain_text("outside the int32 range")
    expect(page.get_by_label("Greeting")).to_have_value(GREETING)
    assert cp.pano.list_application_instances()["ApplicationInstances"] == []
    web.shot("deploy-wizard-refused")
    page.get_by_label("Frame interval").fill("5")
    page.get_by_role("button", name="Deploy").click()

    # 4. the instance page follows the deployment until the device runs it
    expect(page.locator("h1")).to_have_text("greeter")
    instance_id = page.url.rstrip("/").rsplit("/", 1)[1]
    expect(page.locator("#instance-health")).to_have_text("RUNNING", timeout=RUNNING_MS)
    expect(page.locator("#instance-status")).to_have_text("DEPLOYMENT_SUCCEEDED")
    expect(page.locator("#node-front_door .node-status")).to_have_text("RUNNING", timeout=60_000)
    web.shot("instance-running")
    session_id = web.cookie("panoflow_console")["value"]
    described = cp.pano.describe_application_instance(ApplicationInstanceId=instance_id)
    assert described["Name"] == "greeter" and described["DefaultRuntimeContextDevice"] == device_id

    # the instances page with a real row, on a phone: no horizontal scroll
    page.locator("#nav").get_by_role("link", name="Application instances").click()
    expect(page.locator(f"#instance-{instance_id} .instance-health")).to_have_text("RUNNING")
    page.set_viewport_size({"width": 375, "height": 812})
    assert web.horizontal_overflow() == 0
    web.shot("instances-phone")
    page.set_viewport_size({"width": 1280, "height": 800})

    # 5. the logs page shows the code node's line with the greeting the wizard set
    page.locator(f"#instance-{instance_id} .instance-name").get_by_role("link").click()
    page.get_by_role("link", name="Logs").click()
    page.get_by_label("Follow").check()
    expect(page.locator("#log-lines")).to_contain_text(f"greeter says {GREETING!r} every 5 frames",
                                                       timeout=60_000)
    web.shot("logs")

    # 6. the live preview on the control plane's console: the device hears it is wanted at its next sync and
    # posts the instance's frames, which the page streams (MJPEG)
    page.goto(f"{cp.console}instances/{instance_id}")
    page.get_by_role("link", name="Live preview").click()
    relayed = page.locator("#preview-image")
    expect(relayed).to_have_attribute("alt", re.compile("greeter"))
    expect(page.locator("#preview-status")).to_have_attribute("data-state", "live", timeout=30_000)
    assert _moving(lambda: picture(relayed), timeout=30), "the relayed live preview does not move"
    web.shot("preview-relayed")

    # and on the device's own console, relayed by the daemon
    device_web = browsing()
    device_page = device_web.page
    device_page.goto(daemon.url + "/console/")
    device_page.get_by_label("API token").fill(daemon.token)
    device_page.get_by_role("button", name="Sign in").click()
    device_page.get_by_role("link", name="greeter").click()
    device_page.get_by_role("link", name="Live preview").click()
    image = device_page.locator("#preview-image")
    expect(image).to_have_attribute("alt", re.compile("greeter"))
    assert _moving(lambda: picture(image), timeout=30), "the live preview does not move"
    device_web.shot("preview-live")

    # 7. pause the camera node from the control plane's console: PAUSED there and in the Panorama API
    page.goto(f"{cp.console}instances/{instance_id}")
    page.get_by_role("button", name="Pause camera front_door").click()
    expect(page.locator("#node-front_door .node-status")).to_have_text("PAUSED", timeout=60_000)
    expect(page.get_by_role("button", name="Resume camera front_door")).to_be_visible()
    web.shot("camera-paused")
    nodes = cp.pano.list_application_instance_node_instances(ApplicationInstanceId=instance_id)
    assert {n["NodeInstanceId"]: n["CurrentStatus"] for n in nodes["NodeInstances"]}["front_door"] == "PAUSED"

    # 8. the previews stop moving: the control plane's says the camera is paused, the device's freezes too
    # (an MJPEG image never finishes loading: the page counts once its document is in)
    page.goto(f"{cp.console}instances/{instance_id}/preview", wait_until="domcontentloaded")
    expect(page.locator("#preview-status")).to_have_attribute("data-state", "paused", timeout=30_000)
    assert _frozen(lambda: picture(relayed), timeout=60), "the relayed preview kept moving, camera paused"
    assert relayed.evaluate("img => img.naturalWidth") == 320  # still the camera's last picture, not a blank
    web.shot("preview-relayed-paused")
    assert _frozen(lambda: picture(image), timeout=60), "the preview kept moving with its camera paused"
    device_web.shot("preview-paused")

    # 9. sign out: the sign-in page says so, and the console is closed again
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/console/sign-in"))
    expect(page.locator("#messages")).to_contain_text("You signed out.")
    web.shot("signed-out")
    page.goto(f"{cp.console}instances/{instance_id}")
    expect(page).to_have_url(re.compile(r"/console/sign-in"))
    expect(page.locator("#sign-in")).to_be_visible()

    # nothing the browsers received holds a secret: camera password, secret keys, device tokens
    cloud_token = json.loads((daemon.state_dir / "cloud.json").read_text())["Token"]
    secrets = [CAMERA_PASSWORD, cp.key["SecretAccessKey"], cp.read_only_key["SecretAccessKey"], daemon.token,
               cloud_token]
    for one in (web, device_web):
        assert one.leaks(secrets) == []
        assert one.leaks([session_id], set_cookie=False) == []
        assert one.errors == [], one.errors
        assert one.unread == [], one.unread
    # no answer failed but the refused int32 (whose 400 the browser logs as an error), no script error
    assert web.failed == [f"400 {cp.console}deploy"] and device_web.failed == []
    errors = [m for m in web.console + device_web.console if m.startswith("error")]
    assert errors == [f"error: Failed to load resource: the server responded with a status of 400 {BAD}"]
    # and the search had something to search: the pages, the console's own requests and the camera's name
    html = [text for where, text in web.texts if where.startswith(cp.url) and "<html" in text]
    assert len(html) >= 10 and any("front_door" in text for text in html)
    # nor the control plane's log, which has the sign-in (the daemon's logs are searched after the session)
    log = cp.log()
    assert "console_sign_in" in log
    assert [secret[:3] for secret in [*secrets, session_id] if secret in log] == []
    assert sorted(web.shots.glob("*.png")) == sorted(web.saved + device_web.saved)  # each step's screenshot
    assert len(web.saved) + len(device_web.saved) == 16
