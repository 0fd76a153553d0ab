"""Signals (PAUSE/RESUME, ``launch: onSignal``), the HDMI output and previews, metrics, logs, removal."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.media import make_clip
from tests.support.apps import counter_app
from tests.support.cli import panoflow_argv
from tests.support.daemons import Daemon, live

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="needs Linux namespaces")


def frames(d: Daemon, name: str) -> int:
    return int(d.instance(name)["streams"].get("camera_node", {}).get("frames", 0))


def node_status(d: Daemon, name: str, node: str = "camera_node") -> str:
    nodes = {n["node_id"]: n for n in d.get(f"/instances/{name}/nodes")["nodes"]}
    return str(nodes[node]["current_status"])


def test_signals_pause_resume_and_on_signal(make_daemon: Any, clips: dict[str, Path], tmp_path: Path) -> None:
    d: Daemon = make_daemon()
    app = counter_app(tmp_path / "app", on_signal=True)
    r = d.cli("deploy", str(app), "--name", "cam", "--camera", f"camera_node={live(clips['a'])}")
    assert r.returncode == 0, r.stderr
    d.wait_for("cam", lambda i: bool(i["nodes"]), what="node statuses")
    assert node_status(d, "cam") == "PAUSED"  # launch: onSignal
    assert node_status(d, "cam", "code_node") == "RUNNING"
    time.sleep(1.2)
    assert frames(d, "cam") == 0

    r = d.cli("signal", "cam", "camera_node", "resume")
    assert r.returncode == 0 and r.stdout.strip() == "camera_node: RUNNING"
    assert node_status(d, "cam") == "RUNNING"
    d.wait_for("cam", lambda i: i["streams"]["camera_node"]["frames"] > 10, what="frames after RESUME")

    r = d.cli("signal", "cam", "camera_node", "pause")
    assert r.returncode == 0 and r.stdout.strip() == "camera_node: PAUSED"
    # the daemon refreshes an instance's counters every second: once paused, two refreshes 1.2 s apart
    # agree (a running 30 fps camera never does); a deadline: a loaded machine may need a few refreshes
    deadline = time.monotonic() + 30
    while True:
        paused_at = frames(d, "cam")
        time.sleep(1.2)
        if frames(d, "cam") == paused_at:
            break
        assert time.monotonic() < deadline, "the frame counter kept growing after PAUSE"

    # signals are desired state: RESUME holds across a restart of the process, overriding launch: onSignal
    assert d.cli("signal", "cam", "camera_node", "resume").returncode == 0
    pid = d.instance("cam")["process"]["pid"]
    os.kill(pid, signal.SIGKILL)
    d.wait_for("cam", lambda i: i["health_status"] == "RUNNING" and i["process"]["pid"] not in (None, pid),
               what="the restart")
    d.wait_for("cam", lambda i: i["streams"].get("camera_node", {}).get("frames", 0) > 5, what="frames")
    assert node_status(d, "cam") == "RUNNING"

    r = d.cli("signal", "cam", "code_node", "pause")
    assert r.returncode == 1 and "no camera node 'code_node'" in r.stderr
    r = d.cli("signal", "cam", "camera_node", "reboot")
    assert r.returncode == 2
    status, answer = d.request("POST", "/instances/cam/nodes/camera_node/signal", {"signal": "STOP"})
    assert status == 400 and "signal" in answer["error"]


def _jpeg_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as img:
        return img.size


class MjpegReader:
    """Reads parts of a multipart/x-mixed-replace response in a thread (the stream never ends by itself)."""

    def __init__(self, d: Daemon, path: str):
        req = urllib.request.Request(d.url + path, headers={"Authorization": f"Bearer {d.token}"})
        self.resp = urllib.request.urlopen(req, timeout=20)
        assert self.resp.headers.get_content_type() == "multipart/x-mixed-replace"

    def part(self) -> bytes:
        length = -1
        while True:
            line = self.resp.readline()
            assert line, "the stream ended"
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
            elif not line.strip() and length >= 0:
                data = self.resp.read(length)
                self.resp.readline()
                return bytes(data)

    def close(self) -> None:
        self.resp.close()


def test_hdmi_follows_the_most_recent_instance_and_previews(make_daemon: Any, clips: dict[str, Path],
                                                          tmp_path: Path) -> None:
    d: Daemon = make_daemon()
    small = make_clip(tmp_path / "small.mp4", frames=30, size=(256, 192), seed=3)
    app = counter_app(tmp_path / "app")
    assert d.cli("deploy", str(app), "--name", "first", "--camera",
                 f"camera_node={live(clips['a'])}").returncode == 0
    first = d.wait_for("first", lambda i: i["preview_url"] is not None, what="a preview")
    assert first["preview_url"].startswith("http://127.0.0.1:")
    # the instance's own preview is a capability URL: another local user guessing the port sees nothing
    key_url = first["preview_url"]
    bare = key_url[: key_url.index("/", len("http://"))] + "/"
    assert key_url != bare and len(key_url) - len(bare) > 20
    for guess in (bare, bare + "stream.mjpg", bare + "snapshot.jpg"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(guess, timeout=5).close()
        refused.value.close()  # the error holds the answer's socket: left to the garbage collector, it warns
        assert refused.value.code == 404
    with urllib.request.urlopen(key_url + "snapshot.jpg", timeout=5) as ok:
        assert ok.status == 200
    assert d.get("/device")["display_owner"] == first["instance_id"]
    assert _jpeg_size(d.get("/display.jpg")) == (320, 240)

    display = MjpegReader(d, "/display.mjpg")
    try:
        assert _jpeg_size(display.part()) == (320, 240)
        assert d.cli("deploy", str(app), "--name", "second", "--camera",
                     f"camera_node={live(small)}").returncode == 0
        second = d.wait_for("second", lambda i: i["preview_url"] is not None, what="a preview")
        assert d.get("/device")["display_owner"] == second["instance_id"]
        # the open HDMI stream switches to the newer instance without reconnecting
        deadline = time.monotonic() + 10
        while _jpeg_size(display.part()) != (256, 192):
            assert time.monotonic() < deadline
        # every instance keeps its own preview
        assert _jpeg_size(d.get("/instances/first/preview.jpg")) == (320, 240)
        assert _jpeg_size(d.get("/instances/second/preview.jpg")) == (256, 192)
        own = MjpegReader(d, "/instances/first/preview.mjpg")
        try:
            assert _jpeg_size(own.part()) == (320, 240)
        finally:
            own.close()
        # the newest goes: the output goes back to the other one
        r = d.cli("remove", "second")
        assert r.returncode == 0 and "second: REMOVAL_SUCCEEDED" in r.stdout
        while _jpeg_size(display.part()) != (320, 240):
            assert time.monotonic() < deadline + 10
        assert d.get("/device")["display_owner"] == first["instance_id"]
    finally:
        display.close()


def test_metrics_logs_follow_and_remove(make_daemon: Any, clips: dict[str, Path], tmp_path: Path) -> None:
    d: Daemon = make_daemon()
    app = counter_app(tmp_path / "app")
    assert d.cli("deploy", str(app), "--name", "m1", "--camera",
                 f"camera_node={live(clips['a'])}").returncode == 0
    r = d.cli("deploy", str(app), "--name", "m2", "--camera", f"camera_node={live(clips['b'])}", "--no-wait")
    assert r.returncode == 0 and r.stdout.startswith("m2: DEPLOYMENT_PENDING (applicationInstance-"), r.stdout
    d.wait_for("m2", lambda i: i["status"] == "DEPLOYMENT_SUCCEEDED", what="the deployment")
    ids = {n: d.instance(n)["instance_id"] for n in ("m1", "m2")}
    d.wait_for("m2", lambda i: i["streams"].get("camera_node", {}).get("frames", 0) > 0, what="frames")

    text = d.get("/metrics").decode()
    families = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")]
    assert len(families) == len(set(families)), "a metric family is declared twice"
    for fam in ("panoflow_stream_fps", "panoflow_stream_dropped_frames_total",
                "panoflow_frame_latency_seconds",
                "panoflow_application_errors_total", "panoflow_instance_restarts_total", "panoflow_device_up",
                "panoflow_instance_up"):
        assert f"# TYPE {fam} " in text, fam
    for name, iid in ids.items():
        assert (
            f'panoflow_stream_frames_total{{application="{name}",instance_id="{iid}",node="camera_node"'
            in text
        )
        assert f'panoflow_instance_restarts_total{{instance_id="{iid}",application="{name}"}} 0' in text
    assert "panoflow_device_up 1" in text

    # logs -f prints lines as they are written (here: the signal the daemon records)
    follower = subprocess.Popen(panoflow_argv("logs", "m1", "--tail", "0", "-f", "--daemon", d.url,
                                              "--token-file", str(d.state_dir / "token")),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        got: list[str] = []
        reader = threading.Thread(target=lambda: got.extend(iter(follower.stdout.readline, "")), daemon=True)
        reader.start()
        time.sleep(1.0)
        assert d.cli("signal", "m1", "camera_node", "pause").returncode == 0
        deadline = time.monotonic() + 10
        while not any('"node_signalled"' in line for line in got):
            assert time.monotonic() < deadline, got
            time.sleep(0.1)
        assert all(json.loads(line) for line in got)
    finally:
        follower.terminate()
        follower.communicate(timeout=10)

    # remove: the process stops, the instance, its storage and logs go; the other stays
    pid = d.instance("m1")["process"]["pid"]
    assert (d.state_dir / "apps" / "m1" / "storage" / "counter.txt").exists()
    r = d.cli("remove", "m1")
    assert r.returncode == 0 and r.stdout.strip() == f"m1: REMOVAL_SUCCEEDED ({ids['m1']})"
    assert not Path(f"/proc/{pid}").exists()
    assert not (d.state_dir / "apps" / "m1").exists() and not (d.state_dir / "instances" / ids["m1"]).exists()
    assert [i["name"] for i in d.get("/instances")["instances"]] == ["m2"]
    assert d.cli("remove", "m1").returncode == 1
    assert d.instance("m2")["health_status"] == "RUNNING"


def test_a_registered_camera_by_name(make_daemon: Any, clips: dict[str, Path], tmp_path: Path) -> None:
    import functools
    import http.server
    import secrets

    from tests.support.daemons import SECRETS

    cameras = pytest.importorskip("panoflow.camera_registry")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(clips["a"].parent))
    handler.log_message = lambda *a: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        d: Daemon = make_daemon()
        password = f"pw-{secrets.token_hex(8)}"
        SECRETS.append(password)
        url = f"http://127.0.0.1:{server.server_address[1]}/{clips['a'].name}?loop=1&realtime=1"
        cameras.CameraRegistry(d.state_dir / "cameras.json").add("lobby", url, "viewer", password)
        app = counter_app(tmp_path / "app")
        r = d.cli("deploy", str(app), "--name", "named", "--camera", "camera_node=lobby")
        assert r.returncode == 0, r.stderr
        inst = d.wait_for("named", lambda i: i["streams"].get("camera_node", {}).get("frames", 0) > 0,
                          what="frames")
        assert inst["cameras"] == {"camera_node": ["lobby"]}  # the deployment keeps the name, not the URI
        r = d.cli("deploy", str(app), "--name", "unnamed", "--camera", "camera_node=camera:nowhere")
        assert r.returncode == 1 and "no camera named 'nowhere'" in r.stderr
    finally:
        server.shutdown()
        server.server_close()
