"""A device deleted from the control plane is locked out: a real control plane, a real ``panoflow serve``."""

from __future__ import annotations

import json
import os
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support.cli import log_records
from tests.support.daemons import Daemon
from tests.support.fleet import ControlPlaneServer, create_instance, instance_running, join, publish_app, wait


def _events(daemon: Daemon) -> list[dict[str, Any]]:
    """The daemon's own log (STATE_DIR/logs/daemon.log, JSON lines)."""
    return log_records((daemon.state_dir / "logs" / "daemon.log").read_text(errors="replace"))


def _connections_to(pid: int, port: int) -> int:
    """TCP connections (any state but LISTEN) that process ``pid`` holds to ``127.0.0.1:port``."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        remote_port = int(fields[2].rsplit(":", 1)[1], 16)
        if fields[9] in inodes and remote_port == port and fields[3] != "0A":
            count += 1
    return count


def _post(url: str, token: str, body: Any = None, context: ssl.SSLContext | None = None) -> int:
    req = urllib.request.Request(url, data=json.dumps(body or {}).encode(), method="POST",
                                 headers={"Authorization": f"Bearer {token}",
                                          "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10, context=context) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        with exc:
            return int(exc.code)


def test_a_deleted_device_is_locked_out_and_keeps_running(make_daemon: Callable[..., Daemon],
                                                           cp: ControlPlaneServer, cloud_app: dict[str, Any],
                                                           tmp_path: Path) -> None:
    publish_app(cp, cloud_app)
    daemon, device_id = join(make_daemon, cp, tmp_path)
    instance_id = create_instance(cp, device_id, cloud_app)
    wait(instance_running(cp, instance_id), 60, "the instance to run")
    token = json.loads((daemon.state_dir / "cloud.json").read_text())["Token"]
    metrics = f"{cp.url}/_panoflow/device/v1/metrics"
    # the token works until the deletion
    assert _post(metrics, token, {"Text": "# probe\n"}, context=cp.client_ssl) == 200
    running = daemon.instance_pids()
    assert running

    cp.pano.delete_device(DeviceId=device_id)
    refused = wait(lambda: [e for e in _events(daemon) if e.get("event") == "cloud_refused"], 20,
                   "the device to say it was refused")
    wait(lambda: any(e.get("event") == "cloud_connector_stopped" for e in _events(daemon)), 10,
         "the cloud connector to stop")

    # stopped syncing: for three heartbeats no connection to the control plane, no further cloud line
    assert daemon.proc is not None
    seen = len(_events(daemon))
    deadline = time.monotonic() + 3.5
    while time.monotonic() < deadline:
        assert _connections_to(daemon.proc.pid, cp.port) == 0, "the device still talks to the control plane"
        time.sleep(0.1)
    later = [e.get("event") for e in _events(daemon)[seen:]]
    assert not [e for e in later if str(e).startswith("cloud_")], later
    (line,) = [e for e in _events(daemon) if e.get("event") == "cloud_refused"]  # said once
    assert line["level"] == "error" and line["device_id"] == device_id
    assert "deleted" in line["error"] and "provision it again" in line["what_now"], line
    assert refused == [line]
    logs = (daemon.state_dir / "logs" / "daemon.log").read_text() + daemon.stderr()
    assert token not in logs

    # the instance runs on untouched, the local API still answers
    assert daemon.instance_pids() == running and daemon.proc.poll() is None
    assert daemon.instance("people")["status"] == "DEPLOYMENT_SUCCEEDED"
    # and the control plane refuses the token
    assert _post(f"{cp.url}/_panoflow/device/v1/sync", token, context=cp.client_ssl) == 403
    assert _post(metrics, token, {"Text": "# probe\n"}, context=cp.client_ssl) == 403
