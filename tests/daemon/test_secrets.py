"""No token and no camera password in any log file, API answer or CLI output. (The session-wide check in
conftest greps every daemon's log files once the whole suite is over.)"""

from __future__ import annotations

import json
import secrets
import stat
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.apps import counter_app
from tests.support.daemons import SECRETS, Daemon, live, log_files

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="needs Linux namespaces")


def test_camera_credentials_and_token_stay_out_of_logs(make_daemon: Any, clips: dict[str, Path],
                                                       tmp_path: Path) -> None:
    d: Daemon = make_daemon()
    password, query_token = f"pw-{secrets.token_hex(8)}", f"tok-{secrets.token_hex(8)}"
    SECRETS.extend([password, query_token])
    camera = f"http://admin:{password}@127.0.0.1:9/cam.mp4?token={query_token}"  # refused: the source fails
    app = counter_app(tmp_path / "app")
    r = d.cli("deploy", str(app), "--name", "secretive", "--camera", f"camera_node={live(clips['a'])}",
              "--camera", f"camera_node={camera}")
    assert r.returncode == 0, r.stderr
    inst = d.instance("secretive")
    assert inst["cameras"]["camera_node"][1] == "http://admin:***@127.0.0.1:9/cam.mp4?token=***"
    deadline = time.monotonic() + 15
    while "cannot open" not in (d.state_dir / "apps" / "secretive" / "logs" / "instance.log").read_text():
        assert time.monotonic() < deadline, "the failing camera was never reported"
        time.sleep(0.2)
    outputs = [d.cli("ps", "--json").stdout, d.cli("logs", "secretive", "--tail", "1000").stdout,
               d.cli("logs", "secretive", "--node", "code_node").stdout, json.dumps(d.get("/instances")),
               d.get("/metrics").decode(), d.get("/device/logs?tail=100000").decode()]
    # the record on disk keeps the real URI (it must, to start the camera again), readable by the owner only
    record = d.state_dir / "instances" / inst["instance_id"] / "instance.json"
    assert password in record.read_text() and stat.S_IMODE(record.stat().st_mode) == 0o600
    d.stop()  # flush everything the instance and the daemon had to say
    files = log_files(tmp_path)
    assert any(p.name == "daemon.log" for p in files) and any(p.name == "instance.log" for p in files)
    for secret in (password, query_token, d.token):
        for text in outputs:
            assert secret not in text
        for path in files:
            assert secret not in path.read_text(errors="replace"), path
