"""``panoflow run`` with RTSP cameras, end to end in a child process (the sandbox needs a process of its
own)."""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import panoflow.cli.run
from panoflow.camera_registry import CameraRegistry
from tests.media import decode_bgr
from tests.rtsp.helpers import PANOFLOW_LAUNCHER
from tests.support.apps import write_app
from tests.support.rtsp import GstServer, h264_launch, vp8_launch

pytestmark = [
    pytest.mark.rtsp,
    pytest.mark.skipif(sys.platform != "linux", reason="the sandbox needs Linux mount namespaces"),
]

Servers = Callable[..., GstServer]
PASSWORD = "pa55-w0rd!"
REGISTRY_WIRED = "camera_uri_for" in inspect.getsource(panoflow.cli.run)


def _panoflow(*args: str, env: dict[str, str] | None = None,
              timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", PANOFLOW_LAUNCHER, "--log-format", "json", *args], check=False,
        capture_output=True, text=True,
        timeout=timeout, env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )


def _events(stderr: str) -> list[dict[str, object]]:
    out = []
    for line in stderr.splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out


def _check_hashes(result: dict[str, object], clip: Path, n: int) -> None:
    reference = [hashlib.sha256(a.tobytes()).hexdigest() for a in decode_bgr(clip)]
    got = result["frames"]["camera_node"]  # type: ignore[index]
    positions = [reference.index(h) for h in got]  # every frame is one of the file's, bit for bit
    assert positions == sorted(positions) and len(got) >= n * 0.9


def test_run_app_on_an_rtsp_camera(servers: Servers, rtsp_clips: dict[str, Path], tmp_path: Path) -> None:
    clip = rtsp_clips["long"]
    server = servers({"/cam": h264_launch(clip)}, auth=("digest", "admin", PASSWORD))
    app = write_app(tmp_path / "app")
    state = tmp_path / "state"
    uri = server.url("/cam", user="admin", password=PASSWORD)
    proc = _panoflow("run", str(app), "--camera", f"camera_node={uri}", "--frames", "60", "--state-dir",
                     str(state))
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and PASSWORD not in proc.stderr + proc.stdout
    _check_hashes(json.loads((state / "storage" / "result.json").read_text()), clip, 60)
    streaming = [e for e in _events(proc.stderr) if e.get("event") == "camera_streaming"]
    assert len(streaming) == 1 and streaming[0]["uri"] == server.url("/cam", user="admin", password="***")
    assert "camera_node: 60 frames" in proc.stderr


def test_run_reports_an_unusable_camera_once(servers: Servers, tmp_path: Path) -> None:
    server = servers({"/vp8": vp8_launch()})
    app = write_app(tmp_path / "app")
    uri = server.url("/vp8", user="admin", password=PASSWORD)
    proc = _panoflow("run", str(app), "--camera", f"camera_node={uri}", "--state-dir", str(tmp_path / "s"))
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and PASSWORD not in proc.stderr + proc.stdout
    failed = [e for e in _events(proc.stderr) if e.get("event") == "source_failed"]
    assert len(failed) == 1 and failed[0]["stream_id"] == "camera_node"
    assert "offers VP8 video" in str(failed[0]["error"]) and "admin:***@" in str(failed[0]["error"])


@pytest.mark.skipif(not REGISTRY_WIRED, reason="needs the lead's cli/run.py change: --camera NODE=NAME "
                                                "through the camera registry "
                                                "(panoflow.camera_registry.camera_uri_for)")
def test_run_camera_by_registry_name(servers: Servers, rtsp_clips: dict[str, Path], tmp_path: Path) -> None:
    clip = rtsp_clips["long"]
    server = servers({"/cam": h264_launch(clip)}, auth=("basic", "admin", PASSWORD))
    registry = tmp_path / "cameras.json"
    CameraRegistry(registry).add("front_door", server.url("/cam"), "admin", PASSWORD)
    state = tmp_path / "state"
    proc = _panoflow("run", str(write_app(tmp_path / "app")), "--camera", "camera_node=front_door",
                     "--frames", "30", "--state-dir", str(state), env={"PANOFLOW_CAMERAS": str(registry)})
    assert proc.returncode == 0, proc.stderr
    assert PASSWORD not in proc.stderr + proc.stdout
    _check_hashes(json.loads((state / "storage" / "result.json").read_text()), clip, 30)


def test_source_drops_reach_the_instance_metrics(servers: Servers, rtsp_clips: dict[str, Path],
                                                 tmp_path: Path) -> None:
    """The RTSP source's own drop counters (queue full, late, waiting for a keyframe) are Prometheus counters
    of the instance, labelled by camera node, stream and reason."""
    import http.client
    import socket
    import time

    server = servers({"/cam": h264_launch(rtsp_clips["long"])})
    sock = tmp_path / "control.sock"
    proc = subprocess.Popen(
        [sys.executable, "-c", PANOFLOW_LAUNCHER, "--log-format", "json", "run",
         str(write_app(tmp_path / "app")),
         "--camera", f"camera_node={server.url('/cam')}", "--state-dir", str(tmp_path / "state"),
         "--control", f"unix:{sock}"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    class UnixConnection(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.connect(str(sock))

    def metrics() -> str:
        conn = UnixConnection("localhost", timeout=5)
        try:
            conn.request("GET", "/metrics")
            return conn.getresponse().read().decode()
        except OSError:
            return ""
        finally:
            conn.close()

    try:
        deadline = time.monotonic() + 30
        while "panoflow_source_dropped_frames_total{" not in (text := metrics()):
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, f"no source drop counters in /metrics: {text[:2000]}"
            time.sleep(0.2)
        lines = [
            line for line in text.splitlines() if line.startswith("panoflow_source_dropped_frames_total{")
        ]
        reasons = {line.split('reason="', 1)[1].split('"', 1)[0] for line in lines}
        assert {"late", "queue_full", "waiting_keyframe"} <= reasons, lines
        assert all('node="camera_node"' in line for line in lines)
    finally:
        proc.terminate()
        proc.communicate(timeout=20)
