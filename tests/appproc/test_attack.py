"""A hostile application deployed to a real ``panoflow serve`` running as root (as on a device) tries every
way out that issue 13 lists: the daemon's token, the camera registry (a camera registered with a password),
the device's cloud credentials, /etc/shadow, writing /tmp and /etc on the host, listing host processes,
secrets in its environment, the daemon's API on 127.0.0.1. Every attempt is denied, and it still gets its
frames."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.support.apps import attack_app, wait_json
from tests.support.daemons import SECRETS, Daemon, live

pytestmark = [
    pytest.mark.skipif(sys.platform != "linux", reason="needs Linux namespaces"),
    pytest.mark.skipif(os.geteuid() != 0, reason="the attack is against a root daemon (as on a device)"),
]

READS = ("read_token", "read_cameras", "read_cloud_credentials", "list_state", "read_shadow")


@pytest.mark.slow
def test_hostile_app_is_denied_everything_and_still_gets_frames(make_daemon: Any, clips: dict[str, Path],
                                                                tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    aws_secret, pip_password = f"aws-{secrets.token_hex(12)}", f"pip-{secrets.token_hex(8)}"
    camera_password, cloud_token = f"cam-{secrets.token_hex(8)}", f"cloud-{secrets.token_hex(12)}"
    SECRETS.extend([aws_secret, pip_password, camera_password, cloud_token])
    # the daemon's own environment holds secrets, as a device's service environment may
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAPANOFLOWTEST0000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", aws_secret)
    monkeypatch.setenv("PIP_INDEX_URL", f"https://deploy:{pip_password}@pypi.example.com/simple")
    d: Daemon = make_daemon()
    from panoflow.camera_registry import CameraRegistry

    CameraRegistry(d.state_dir / "cameras.json").add("lobby", "rtsp://192.0.2.10:554/stream", "viewer",
                                                     camera_password)
    # the device's control-plane credentials, where the cloud client keeps them
    cloud = d.state_dir / "cloud.json"
    cloud.write_text(json.dumps({"device_id": "device-1", "token": cloud_token}))
    cloud.chmod(0o600)
    mark = f"pf-attack-{secrets.token_hex(6)}"
    port = urlsplit(d.url).port
    assert port is not None
    app = attack_app(tmp_path / "app", d.state_dir, port, mark)
    r = d.cli("deploy", str(app), "--name", "hostile", "--camera", f"camera_node={live(clips['a'])}")
    assert r.returncode == 0, r.stderr + d.stderr()[-3000:]

    storage = d.state_dir / "apps" / "hostile" / "storage" / "attack.json"
    seen = wait_json(storage, lambda s: s["frames"] >= 30, 40,
                     lambda s: f"the app got no frames: {s}; {d.instance('hostile')}")
    assert d.instance("hostile")["health_status"] == "RUNNING"

    # every file of the daemon's, and the host's shadow file: not there at all, or not readable
    for name in READS:
        assert seen[name]["ok"] is False, (name, seen[name])
        assert seen[name]["error"].startswith(("FileNotFoundError", "PermissionError")), (name, seen[name])
    # writes: /etc is read-only; /tmp is the sandbox's own, and neither reaches the host
    assert seen["write_etc"]["ok"] is False and "Read-only file system" in seen["write_etc"]["error"]
    assert not Path("/etc", mark).exists() and not Path("/tmp", mark).exists()
    assert not list(tmp_path.parent.rglob(mark))
    # the daemon's API on 127.0.0.1 is the sandbox's own loopback: nothing listens there
    for name in ("daemon_api", "daemon_socket"):
        assert seen[name]["ok"] is False and "Connection refused" in seen[name]["error"], (name, seen[name])
    # its /proc shows its own processes only: the sandbox's init and the app
    commands = list(seen["processes"].values())
    assert len(commands) <= 3, commands
    assert all("bwrap" in c or "panoramasdk._bootstrap" in c for c in commands), commands
    # no daemon, not even its sandbox's pasta
    assert not any(" serve " in c or "pasta" in c for c in commands)
    # nothing of the daemon's environment
    environ = seen["environ"]
    assert not {"AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "PIP_INDEX_URL"} & set(environ), sorted(environ)
    dumped = json.dumps(seen)
    for secret in (aws_secret, pip_password, camera_password, cloud_token, d.token):
        assert secret not in dumped
    # an unprivileged uid without capabilities
    assert seen["ids"] == [64000, 64000, 64000]
    caps = {line.split(":")[0]: line.split(":")[1].strip() for line in seen["status"]}
    assert caps["CapEff"] == caps["CapPrm"] == caps["CapBnd"] == "0000000000000000", caps
    assert caps["NoNewPrivs"] == "1"
    # the instance's runtime process (outside the sandbox, the daemon's privileges dropped) cannot read them
    # either
    runtime = Path(f"/proc/{d.instance('hostile')['process']['pid']}/status").read_text()
    uid = int(runtime.split("\nUid:")[1].split()[0])
    assert uid != 0
    record = next((d.state_dir / "instances").glob("*/instance.json"))
    for path in (d.state_dir / "token", d.state_dir / "cameras.json", cloud, record):
        probe = subprocess.run([sys.executable, "-c", "import sys; open(sys.argv[1]).read()", str(path)],
                               user=uid, group=uid, extra_groups=[], capture_output=True, text=True,
                               check=False)
        assert probe.returncode == 1 and "PermissionError" in probe.stderr, (path, probe.stderr)
    # and the frames keep coming after all that
    wait_json(storage, lambda s: s["frames"] >= seen["frames"] + 30, 20, lambda s: f"frames stopped at {s}")
