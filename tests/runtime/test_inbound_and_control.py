"""Inbound ports (only confirmed hostPorts reach the app) and the instance control API (status, metrics,
signals)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.support.apps import routing_overrides, server_app, write_app
from tests.support.ports import free_port_in

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="needs Linux namespaces")

def _write_server_app(root: Path, container_port: int, host_port: int | None) -> tuple[Path, Path | None]:
    """The daemon's inbound-port test app, and overrides confirming ``host_port`` (none when it is None)."""
    server_app(root, "the app", container_port)
    if host_port is None:
        return root, None
    return root, routing_overrides(root / "override.json", container_port, host_port)


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=2) as resp:
        return resp.read().decode()


def test_app_port_reachable_on_confirmed_host_port_only(tmp_path: Path) -> None:
    container_port, host_port = free_port_in(8200, 9000), free_port_in(8600, 9000)
    app, overrides = _write_server_app(tmp_path / "app", container_port, host_port)
    proc = subprocess.Popen(
        [sys.executable, "-m", "panoflow", "--log-format", "json", "run", str(app), "--overrides",
         str(overrides),
         "--state-dir", str(tmp_path / "s")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                assert _get(f"http://127.0.0.1:{host_port}/") == "hello from the app"
                break
            except (OSError, urllib.error.URLError):
                assert time.monotonic() < deadline and proc.poll() is None, (
                    proc.stderr.read() if proc.poll() else ""
                )
                time.sleep(0.2)
        with pytest.raises((ConnectionRefusedError, urllib.error.URLError)):
            _get(f"http://127.0.0.1:{container_port}/")
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
    assert proc.returncode == 0


def test_host_port_in_use_fails_clearly(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        port = busy.getsockname()[1]
        app, overrides = _write_server_app(tmp_path / "app", 8080, 8000)
        text = overrides.read_text().replace('"hostPort": 8000', f'"hostPort": {port}')  # type: ignore[union-attr]
        overrides.write_text(text)  # type: ignore[union-attr]
        proc = subprocess.run(
            [sys.executable, "-m", "panoflow", "run", str(app), "--overrides", str(overrides),
             "--state-dir", str(tmp_path / "s")], capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    # the validator already rejects hostPorts outside 8000-9000; an in-range busy port is the runtime's to
    # report
    assert "hostPort" in proc.stderr


def test_control_api_status_metrics_and_signals(tmp_path: Path) -> None:
    import http.client

    from tests.media import make_clip

    clip = make_clip(tmp_path / "c.mp4", frames=30)
    app = write_app(tmp_path / "app", style="subclass")
    sock = tmp_path / "control.sock"
    proc = subprocess.Popen(
        [sys.executable, "-m", "panoflow", "--log-format", "json", "run", str(app),
         "--camera", f"camera_node=file://{clip}?loop=1&realtime=1", "--state-dir", str(tmp_path / "s"),
         "--instance-id", "inst-1", "--control", f"unix:{sock}"], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)

    class UnixConnection(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.connect(str(sock))

    def call(method: str, path: str, body: dict | None = None) -> tuple[int, str]:
        conn = UnixConnection("localhost", timeout=5)
        try:
            conn.request(method, path, body=json.dumps(body) if body is not None else None)
            resp = conn.getresponse()
            return resp.status, resp.read().decode()
        finally:
            conn.close()

    try:
        deadline = time.monotonic() + 20
        while not sock.exists():
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.1)
        while True:
            status = json.loads(call("GET", "/status")[1])
            # "running" once the app's own process is up (the camera may already deliver while it starts)
            if status["state"] == "running" and status["streams"].get("camera_node", {}).get("frames", 0) > 3:
                break
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert status["instance_id"] == "inst-1" and status["state"] == "running"
        assert status["nodes"]["camera_node"] == {"kind": "camera", "status": "RUNNING"}
        assert status["nodes"]["p_int"]["kind"] == "parameter"
        code, text = call("GET", "/metrics")
        assert code == 200 and 'panoflow_stream_frames_total{instance_id="inst-1",node="camera_node"' in text
        assert call("POST", "/nodes/camera_node/signal", {"signal": "PAUSE"}) == (
            200, json.dumps({"node": "camera_node", "status": "PAUSED"}))
        def frames() -> int:
            return int(json.loads(call("GET", "/status")[1])["streams"]["camera_node"]["frames"])

        # paused: two looks 0.5 s apart agree (a frame already on its way may still be counted, and a loaded
        # machine may take a moment: a deadline, never a fixed sleep); resumed: the counter moves again
        deadline = time.monotonic() + 30
        while True:
            paused_at = frames()
            time.sleep(0.5)
            if frames() == paused_at:
                break
            assert time.monotonic() < deadline, "the camera kept counting frames after PAUSE"
        assert call("POST", "/nodes/camera_node/signal", {"signal": "RESUME"})[0] == 200
        deadline = time.monotonic() + 30
        while frames() <= paused_at:
            assert time.monotonic() < deadline, "no frame after RESUME"
            time.sleep(0.1)
        assert call("POST", "/nodes/nope/signal", {"signal": "PAUSE"})[0] == 404
        assert call("POST", "/nodes/camera_node/signal", {"signal": "REBOOT"})[0] == 400
        assert call("POST", "/nodes/camera_node/signal", {"x": 1})[0] == 400
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert not sock.exists()


def test_metrics_include_inference_time(tmp_path: Path) -> None:
    """A model node's batches, items and run time reach the instance's /metrics."""
    import http.client

    from tests.media import make_clip
    from tests.support.apps import write_model_app

    code = """
import numpy as np
import panoramasdk

class App(panoramasdk.node):
    def __init__(self):
        pass

app = App()
while True:
    for s in app.inputs.video_in.get():
        app.call({"data": np.zeros((1, 3, 16, 16), np.float32)}, "model_node")
"""
    app = write_model_app(tmp_path / "app", code)
    clip = make_clip(tmp_path / "c.mp4", frames=30)
    sock = tmp_path / "control.sock"
    proc = subprocess.Popen(
        [sys.executable, "-m", "panoflow", "--log-format", "json", "run", str(app), "--camera",
         f"camera_node=file://{clip}?loop=1&realtime=1", "--state-dir", str(tmp_path / "s"),
         "--control", f"unix:{sock}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    class UnixConnection(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.connect(str(sock))

    try:
        deadline = time.monotonic() + 30
        while True:
            text = ""
            if sock.exists():
                conn = UnixConnection("localhost", timeout=5)
                try:
                    conn.request("GET", "/metrics")
                    text = conn.getresponse().read().decode()
                except ConnectionRefusedError:
                    pass  # the socket file is bound but not listening yet: look again
                finally:
                    conn.close()
                batches = [
                    line
                    for line in text.splitlines()
                    if line.startswith('panoflow_inference_batches_total{') and 'node="model_node"' in line
                ]
                if batches and float(batches[0].rsplit(" ", 1)[1]) >= 5:
                    break
            assert time.monotonic() < deadline and proc.poll() is None, "no inference metrics"
            time.sleep(0.2)
        seconds = [line for line in text.splitlines() if line.startswith("panoflow_inference_seconds_total{")]
        assert seconds and float(seconds[0].rsplit(" ", 1)[1]) > 0
        assert "panoflow_inference_items_total{" in text
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
