"""The HTTP API itself: the token, the OpenAPI document against the routes, bad input, archives, the quota."""

from __future__ import annotations

import io
import json
import os
import stat
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.apps import counter_app
from tests.support.daemons import Daemon, live

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="needs Linux namespaces")


def _concrete(path: str) -> str:
    return (path.replace("{ref}", "someapp").replace("{node}", "camera_node")
            .replace("{sha256}", "0" * 64))


def test_token_is_private_and_required_everywhere_but_healthz(make_daemon: Any) -> None:
    d: Daemon = make_daemon()
    token_file = d.state_dir / "token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert len(d.token) >= 40
    assert d.request("GET", "/healthz", token=None) == (200, {"status": "ok"})
    doc = d.get("/openapi.json")
    assert doc["openapi"] == "3.0.3" and doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    checked = 0
    for path, ops in doc["paths"].items():
        for method in ops:
            if path == "/healthz":
                continue
            for token in (None, "not-the-token", d.token + "x"):
                status, body = d.request(method.upper(), _concrete(path), token=token)
                assert status == 401, (method, path, status, body)
                assert "error" in body
            checked += 1
    assert checked >= 15
    assert d.request("GET", "/no/such/route", token=None)[0] == 401
    assert d.request("GET", "/no/such/route")[0] == 404
    # the same token after a restart
    token = d.token
    d.stop()
    d.start()
    assert d.token == token and d.request("GET", "/device")[0] == 200


def test_openapi_describes_every_route(tmp_path: Path) -> None:
    from panoflow.daemon.api import Api
    from panoflow.daemon.manager import Manager
    from panoflow.daemon.openapi import openapi_document
    from panoflow.daemon.store import StatePaths

    paths = StatePaths(tmp_path)
    app = Api(Manager(paths), paths, "t", "device-x").app()
    routes = {(r.method.lower(), r.resource.canonical) for r in app.router.routes()  # type: ignore[union-attr]
              if r.method != "HEAD"}
    doc = openapi_document()
    described = {(method, path) for path, ops in doc["paths"].items() for method in ops}
    assert routes == described
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert op["operationId"] and op["summary"] and op["responses"], (method, path)
            public = op.get("security") == []
            assert public == (path == "/healthz")
            assert public or "401" in op["responses"]


def test_device_and_bad_requests(make_daemon: Any, tmp_path: Path) -> None:
    from panoflow.daemon.app_archive import pack_app

    d: Daemon = make_daemon()
    device = d.get("/device")
    assert device["max_instances"] == 10 and device["instances"] == 0 and device["display_owner"] is None
    assert device["device_id"].startswith("device-")
    bad_bodies: list[Any] = [
        None, [], {"name": "x"}, {"name": "../x", "archive": "0" * 64}, {"name": "x", "archive": "nothex"},
        {"name": "x", "archive": "0" * 64, "cameras": {"c": "file:///x"}},
        {"name": "x", "archive": "0" * 64, "params": {"p": 1}},
        {"name": "x", "archive": "0" * 64, "graph": "/etc/passwd"},
        {"name": "x", "archive": "0" * 64, "surprise": True},
    ]
    for body in bad_bodies:
        raw = b"null" if body is None else None
        status, answer = d.request("POST", "/instances", body, raw=raw)
        assert status == 400, (body, status, answer)
        assert answer["error"]
    assert d.request("POST", "/instances", raw=b"{not json")[0] == 400
    status, answer = d.request("POST", "/instances", {"name": "x", "archive": "0" * 64})
    assert status == 404 and "POST it to /archives" in answer["error"]
    # what only validation can tell fails the deployment, with the reason, before anything starts
    buf = io.BytesIO()
    sha = pack_app(counter_app(tmp_path / "app"), buf)
    assert d.request("POST", "/archives", raw=buf.getvalue())[0] == 201
    for extra, reason in (({"cameras": {"camera_node": ["lobby"]}}, "camera 'lobby' is not a URI"),
                          ({"params": {"nope": "1"}}, "no parameter node 'nope'"),
                          ({"params": {"p_int": "many"}}, "not a valid int32"),
                          ({"graph": "graphs/none/graph.json"}, "graph.json"),
                          ({"overrides": {"nodeGraphOverrides": {}}}, "overrides.json")):
        status, inst = d.request("POST", "/instances", {"name": "x", "archive": sha, **extra})
        assert status == 202 and inst["status"] == "DEPLOYMENT_PENDING"
        inst = d.wait_for(inst["instance_id"], lambda i: i["status"] == "DEPLOYMENT_FAILED",
                          what="the failure")
        assert reason in inst["status_description"] and inst["process"]["pid"] is None, inst
    for path in ("/instances/nope", "/instances/nope/nodes", "/instances/nope/logs",
                 "/instances/nope/preview.jpg"):
        assert d.request("GET", path)[0] == 404, path
    assert d.request("DELETE", "/instances/nope")[0] == 404
    assert d.request("POST", "/instances/nope/nodes/camera_node/signal", {"signal": "PAUSE"})[0] == 404
    assert d.request("GET", "/device/logs?tail=-1")[0] == 400
    assert d.request("GET", "/device/logs?follow=maybe")[0] == 400
    status, text = d.request("GET", "/device/logs?tail=5")
    assert status == 200 and all(json.loads(line) for line in text.decode().splitlines())
    assert d.request("PUT", "/instances")[0] == 405
    assert d.request("GET", "/display.jpg")[0] == 404  # nothing on the HDMI output yet


def _tar(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _file(name: str, data: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


def test_archive_upload_is_content_addressed_and_safe(make_daemon: Any, tmp_path: Path) -> None:
    from panoflow.daemon.app_archive import pack_app

    d: Daemon = make_daemon()
    app = counter_app(tmp_path / "app")
    (app / "packages" / "123456789012-TEST_CODE-1.0" / "src" / "inside").symlink_to("data.txt")
    first, second = io.BytesIO(), io.BytesIO()
    sha = pack_app(app, first)
    assert pack_app(app, second) == sha and first.getvalue() == second.getvalue()  # deterministic
    status, answer = d.request("POST", "/archives", raw=first.getvalue())
    assert status == 201 and answer["sha256"] == sha and answer["stored"] is True
    assert d.request("POST", "/archives", raw=first.getvalue())[1]["stored"] is False
    assert d.get(f"/archives/{sha}") == {"sha256": sha}
    stored = d.state_dir / "archives" / sha
    assert (stored / "graphs" / "test_app" / "graph.json").is_file()
    assert os.readlink(stored / "packages" / "123456789012-TEST_CODE-1.0" / "src" / "inside") == "data.txt"

    evil = [
        [_file("graphs/a.json"), _file("../escape")],
        [_file("graphs/a.json"), _file("/etc/evil")],
        [_file("graphs/a.json"), _link("graphs/l", "/etc/passwd")],
        [_file("graphs/a.json"), _link("graphs/l", "../../outside")],
        [_file("graphs/a.json"), _link("graphs/h", "../x", tarfile.LNKTYPE)],
        [_file("graphs/a.json"), _file("other/x")],
        [_file("packages/x")],
    ]
    fifo = tarfile.TarInfo("graphs/fifo")
    fifo.type = tarfile.FIFOTYPE
    evil.append([_file("graphs/a.json"), (fifo, None)])
    for members in evil:
        status, answer = d.request("POST", "/archives", raw=_tar(members))
        assert status == 400, (members, answer)
    for raw in (b"", b"garbage", b"\x1f\x8b\x08\x00garbage"):
        assert d.request("POST", "/archives", raw=raw)[0] == 400
    assert not (tmp_path / "escape").exists() and not (d.state_dir / "escape").exists()
    assert sorted(p.name for p in (d.state_dir / "archives").iterdir()) == [sha]


def test_at_most_max_instances(make_daemon: Any, clips: dict[str, Path], tmp_path: Path) -> None:
    d: Daemon = make_daemon("state", "--max-instances", "1")
    app = counter_app(tmp_path / "app")
    camera = f"camera_node={live(clips['a'])}"
    assert d.cli("deploy", str(app), "--name", "one", "--camera", camera).returncode == 0
    r = d.cli("deploy", str(app), "--name", "two", "--camera", camera)
    assert r.returncode == 1 and "already runs 1 application instances, its maximum" in r.stderr
    assert "Traceback" not in r.stderr
    # replacing the one that runs is still allowed
    r = d.cli("deploy", str(app), "--name", "one", "--camera", camera, "--param", "p_str=v2")
    assert r.returncode == 0, r.stderr
    # the old version is removed once the new one runs; its removal may still be finishing when deploy returns
    deadline = time.monotonic() + 15
    while [i["name"] for i in d.get("/instances")["instances"]] != ["one"]:
        assert time.monotonic() < deadline, d.get("/instances")
        time.sleep(0.2)


def test_client_errors_are_one_line(make_daemon: Any, tmp_path: Path) -> None:
    d: Daemon = make_daemon()
    # one daemon per state directory; an address in use is said so
    r = d.cli("serve", "--state-dir", str(d.state_dir), "--listen", "127.0.0.1:0", with_daemon_args=False)
    assert r.returncode == 1 and f"another panoflow serve is using {d.state_dir}" in r.stderr
    port = d.url.rsplit(":", 1)[1]
    r = d.cli("serve", "--state-dir", str(tmp_path / "other"), "--listen", f"127.0.0.1:{port}",
              with_daemon_args=False)
    assert (
        r.returncode == 1 and f"cannot listen on 127.0.0.1:{port}" in r.stderr and "Traceback" not in r.stderr
    )
    r = d.cli("ps", "--daemon", "http://127.0.0.1:9", "--token-file", str(d.state_dir / "token"),
              with_daemon_args=False)
    assert r.returncode == 1 and "cannot reach the panoflow daemon at http://127.0.0.1:9" in r.stderr
    r = d.cli("ps", "--daemon", d.url, "--token-file", str(tmp_path / "missing"), with_daemon_args=False)
    assert r.returncode == 1 and "cannot read the daemon's token" in r.stderr
    bad = tmp_path / "bad-token"
    bad.write_text("wrong\n")
    r = d.cli("ps", "--daemon", d.url, "--token-file", str(bad), with_daemon_args=False)
    assert r.returncode == 1 and "bearer token" in r.stderr
    # PANOFLOW_DAEMON and PANOFLOW_TOKEN_FILE stand in for the flags
    r = d.cli("ps", with_daemon_args=False,
              env={"PANOFLOW_DAEMON": d.url, "PANOFLOW_TOKEN_FILE": str(d.state_dir / "token")})
    assert r.returncode == 0 and r.stdout.split() == ["NAME", "INSTANCE", "ID", "STATUS", "HEALTH", "PID",
                                                      "RESTARTS"]
    # the token file alone finds the daemon (daemon.json beside it)
    r = d.cli("ps", "--json", "--token-file", str(d.state_dir / "token"), with_daemon_args=False,
              env={"PANOFLOW_DAEMON": ""})
    assert r.returncode == 0 and json.loads(r.stdout) == []
    r = d.cli("logs", "nope")
    assert r.returncode == 1 and "no application instance 'nope'" in r.stderr


def test_an_app_that_finishes_its_clip_at_once_counts_as_deployed(
    make_daemon: Any, tmp_path: Path
) -> None:
    """A 3-frame clip, read losslessly, is done before the daemon's first status poll: exit 0 is a success."""
    from tests.media import make_clip

    d: Daemon = make_daemon("state")
    app = counter_app(tmp_path / "app")
    clip = make_clip(tmp_path / "tiny.mp4", frames=3)
    r = d.cli("deploy", str(app), "--name", "quick", "--camera", f"camera_node={clip}")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "DEPLOYMENT_SUCCEEDED" in r.stdout
