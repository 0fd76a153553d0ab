"""debug-server's traits: the app serves HTTP on containerPort 80 (hostPort confirmed by an override) and a
thread of its own calls the device's hostPort; both its own client and the host get the ``/status`` answer,
under ``panoflow run`` and under a root ``panoflow serve``."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from panoflow.isolation import SandboxSpec
from panoflow.isolation.host import find_tools
from panoflow.isolation.layout import Tools, command
from tests.support.apps import read_json, routing_overrides, status_app
from tests.support.daemons import Daemon
from tests.support.ports import free_port_in

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="needs Linux namespaces")

CONTAINER_PORT = 80  # debug-server's


def _host_status(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=3) as resp:
        return dict(json.loads(resp.read()))


def _wait_for_answers(storage: Path, host_port: int, token: str,
                      alive: Callable[[], str | None]) -> dict[str, Any]:
    """What the app's own client saw once it got its answer, after the host got the same answer at
    hostPort."""
    expected = {"status": "running", "path": "/status", "token": token}
    deadline = time.monotonic() + 45
    while True:
        seen = read_json(storage / "client.json")
        if seen is not None and seen["loopback"].get("answer") == expected:
            break
        problem = alive()
        assert problem is None, problem
        assert time.monotonic() < deadline, f"the app's own client got no /status answer: {seen}"
        time.sleep(0.2)
    assert _host_status(host_port) == expected
    return seen


def _check_device_address(seen: dict[str, Any], token: str) -> None:
    """At the device's address (debug-server's client calls ``http://DEVICE_IP:8080/status``) the app reaches
    its own hostPort through the nftables rule in its network namespace, where the host has ``nft``
    (docs/isolation.md)."""
    tools = find_tools()
    assert seen["device_address"], seen
    if tools is None or tools.nft is None:
        pytest.skip("no nft here (apt-get install nftables): the device's address cannot lead to the app's "
                    "port")
    assert seen["device"].get("answer") == {"status": "running", "path": "/status", "token": token}, seen


@pytest.mark.slow
def test_own_client_reaches_its_host_port_under_run(tmp_path: Path) -> None:
    host_port, token = free_port_in(8080, 8300), secrets.token_hex(4)
    app = status_app(tmp_path / "app", host_port, token)
    overrides = routing_overrides(tmp_path / "override.json", CONTAINER_PORT, host_port)
    state = tmp_path / "state"
    err = open(tmp_path / "run.stderr", "wb")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "panoflow", "run", str(app), "--overrides", str(overrides),
                             "--state-dir", str(state), "--duration", "90"], stdout=err, stderr=err)
    err.close()

    def alive() -> str | None:
        if proc.poll() is None:
            return None
        return f"panoflow run exited with {proc.returncode}: {(tmp_path / 'run.stderr').read_text()[-3000:]}"

    try:
        seen = _wait_for_answers(state / "storage", host_port, token, alive)
        _check_device_address(seen, token)
        console = (state / "logs" / "code_node" / "console_output").read_text()
        assert "listening on 80" in console
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 0, (tmp_path / "run.stderr").read_text()[-3000:]


@pytest.mark.slow
def test_own_client_reaches_its_host_port_under_serve(make_daemon: Any, tmp_path: Path) -> None:
    d: Daemon = make_daemon()
    host_port, token = free_port_in(8080, 8300), secrets.token_hex(4)
    app = status_app(tmp_path / "app", host_port, token)
    overrides = routing_overrides(tmp_path / "override.json", CONTAINER_PORT, host_port)
    r = d.cli("deploy", str(app), "--name", "status", "--overrides", str(overrides))
    assert r.returncode == 0, r.stderr + d.stderr()[-3000:]
    assert d.instance("status")["host_ports"] == [host_port]

    def alive() -> str | None:
        inst = d.instance("status")
        return None if inst["health_status"] == "RUNNING" else f"the instance is not running: {inst}"

    seen = _wait_for_answers(d.state_dir / "apps" / "status" / "storage", host_port, token, alive)
    _check_device_address(seen, token)
    if os.geteuid() == 0:
        status = Path(f"/proc/{d.instance('status')['process']['pid']}/status").read_text()
        assert "\nUid:\t64000\t" in status


def test_sandbox_command_line_for_an_inbound_port_below_1024() -> None:
    """pasta's command lowers the namespace's unprivileged-port floor and, with nft, loads the device-address
    redirect for each hostPort that differs from its containerPort; then it becomes bubblewrap."""
    spec = SandboxSpec(argv=["/usr/bin/python3", "app.py"], inbound=[(80, 8080), (9000, 9000)])
    with_nft = command(spec, Tools("/usr/bin/bwrap", "/usr/bin/pasta", True, "/usr/sbin/nft"), uid=1, gid=1,
                       data_fds={})
    sh = with_nft.index("/bin/sh")
    assert with_nft[sh - 1] == "--" and with_nft[sh + 1] == "-c"
    script, rules, nft = with_nft[sh + 2], with_nft[sh + 4], with_nft[sh + 5]
    assert "ip_unprivileged_port_start" in script and script.endswith('exec "$@"') and nft == "/usr/sbin/nft"
    assert "tcp dport 8080 redirect to :80" in rules and "9000" not in rules
    assert with_nft[sh + 6] == "/usr/bin/bwrap"
    without = command(spec, Tools("/usr/bin/bwrap", "/usr/bin/pasta", True), uid=1, gid=1, data_fds={})
    sh = without.index("/bin/sh")
    assert without[sh + 3:sh + 5] == ["sh", "/usr/bin/bwrap"] and not any("redirect" in a for a in without)
