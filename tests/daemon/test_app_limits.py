"""Limits under ``panoflow serve``: an app over its memory limit is killed, reported with the reason, and
restarted with back-off, while another instance on the device keeps its frames coming."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.apps import write_app
from tests.support.daemons import Daemon, events

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="needs Linux namespaces and cgroups")

GREEDY = """
app = panoramasdk.node()
app.inputs.video_in.get()
print("allocating", flush=True)
hog = bytearray(400 * 1024 * 1024)  # touch every page: over a 128 MiB limit
for i in range(0, len(hog), 4096):
    hog[i] = 1
print("still here", flush=True)
"""

STEADY = """
import json, os
app = panoramasdk.node()
frames = 0
while True:
    frames += len(app.inputs.video_in.get())
    with open("/opt/aws/panorama/storage/frames.tmp", "w") as f:
        json.dump(frames, f)
    # whole or old
    os.replace("/opt/aws/panorama/storage/frames.tmp", "/opt/aws/panorama/storage/frames.json")
"""


def test_memory_limit_kills_reports_and_restarts_while_others_run(make_daemon: Any, tmp_path: Path,
                                                                   clips: dict[str, Path]) -> None:
    d: Daemon = make_daemon()
    camera = f"camera_node=file://{clips['a']}?loop=1&realtime=1"
    steady = write_app(tmp_path / "steady", code=STEADY)
    r = d.cli("deploy", str(steady), "--name", "steady", "--camera", camera)
    assert r.returncode == 0, r.stderr
    greedy = write_app(tmp_path / "greedy", code=GREEDY)
    r = d.cli("deploy", str(greedy), "--name", "greedy", "--camera", camera, "--memory", "128")
    assert r.returncode == 0, r.stderr

    deadline = time.monotonic() + 90
    while True:
        restarting = events(d, "greedy", "instance_restarting")
        if restarting:
            break
        assert time.monotonic() < deadline, d.instance("greedy")
        time.sleep(0.3)
    assert "memory limit" in (d.cli("logs", "greedy", "--tail", "200").stdout + d.stderr())
    greedy_view = d.instance("greedy")
    assert greedy_view["process"]["restarts"] >= 1 or greedy_view["health_status"] == "ERROR"
    log = d.cli("logs", "greedy", "--node", "code_node", "--tail", "50")
    assert "allocating" in log.stdout and "still here" not in log.stdout

    frames = d.state_dir / "apps" / "steady" / "storage" / "frames.json"
    deadline = time.monotonic() + 30
    while not frames.exists():
        assert time.monotonic() < deadline, "the other instance never got a frame"
        time.sleep(0.2)
    before = json.loads(frames.read_text())
    deadline = time.monotonic() + 30
    while json.loads(frames.read_text()) < before + 30:  # still about 30 fps: 30 more frames within seconds
        assert time.monotonic() < deadline, "the other instance stopped getting frames"
        time.sleep(0.2)
    assert d.instance("steady")["health_status"] == "RUNNING"
