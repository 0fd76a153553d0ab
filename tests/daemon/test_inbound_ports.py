"""Inbound ports through the daemon: a confirmed hostPort reaches the app's containerPort and nothing else is
opened; two instances cannot claim one hostPort; a replacement takes its predecessor's hostPort over."""

from __future__ import annotations

import socket
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.support.apps import routing_overrides, server_app
from tests.support.daemons import Daemon
from tests.support.ports import free_port_in

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="needs Linux namespaces")


def _get(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=3) as resp:
        return resp.read().decode()


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (the instance's sandbox: pasta, bubblewrap, the app)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").iterdir():
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                pass
    return out


def _listening_ports(pid: int) -> set[int]:
    """TCP ports the instance process ``pid`` or any process it started listens on in the host's network
    (their sockets matched against the host's socket table, as seen by ``pid``)."""
    inodes = set()
    for member in _tree(pid):
        for fd in Path(f"/proc/{member}/fd").iterdir():
            try:
                target = fd.readlink().as_posix()
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    ports = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def test_confirmed_host_port_only_and_no_double_claims(make_daemon: Any, tmp_path: Path) -> None:
    d: Daemon = make_daemon()
    container_port, host_port = free_port_in(8300, 8500), free_port_in(8700, 8900)
    overrides = routing_overrides(tmp_path / "override.json", container_port, host_port)
    v1 = server_app(tmp_path / "v1", "v1", container_port)
    r = d.cli("deploy", str(v1), "--name", "web", "--overrides", str(overrides))
    assert r.returncode == 0, r.stderr
    web = d.instance("web")
    assert web["host_ports"] == [host_port]
    assert _get(host_port) == "hello from v1"
    with pytest.raises((ConnectionRefusedError, urllib.error.URLError)):
        _get(container_port)
    assert _listening_ports(web["process"]["pid"]) == {host_port}

    # another application claiming the same hostPort fails before it starts, with the reason
    other = server_app(tmp_path / "other", "other", container_port + 1)
    other_overrides = routing_overrides(tmp_path / "other.json", container_port + 1, host_port)
    r = d.cli("deploy", str(other), "--name", "other", "--overrides", str(other_overrides))
    assert r.returncode == 1
    assert (
        f"hostPort {host_port} is already claimed by application instance {web['instance_id']} (web)"
        in r.stderr
    )
    assert d.instance("other")["process"]["pid"] is None
    assert _get(host_port) == "hello from v1"

    # a hostPort something else on the device holds: the instance itself reports it
    taken = free_port_in(8901, 9000)
    with socket.socket() as holder:
        holder.bind(("0.0.0.0", taken))
        holder.listen()
        r = d.cli("deploy", str(other), "--name", "other", "--overrides",
                  str(routing_overrides(tmp_path / "taken.json", container_port + 1, taken)))
    assert r.returncode == 1 and f"hostPort {taken}" in r.stderr and "already in use" in r.stderr

    # a new version of the same application takes the hostPort over (the old one lets go of it first)
    v2 = server_app(tmp_path / "v2", "v2", container_port)
    r = d.cli("deploy", str(v2), "--name", "web", "--overrides", str(overrides))
    assert r.returncode == 0, r.stderr
    assert _get(host_port) == "hello from v2"
    assert d.instance("web")["replaces"] == web["instance_id"]
