"""The sandbox's network: outbound NAT to a peer host, none, inbound on confirmed hostPorts, chosen loopback
ports.

The "outside world" is a peer host the test builds itself: a network namespace joined to this host by a veth
pair (10.213.N.1 here, 10.213.N.2 there) with a TCP server inside, so outbound NAT is checked without the
internet.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from panoflow.exceptions import SandboxError
from panoflow.isolation import SandboxSpec, host_problems, start
from tests.isolation.probes import HostServer, interpreter, require, require_root, run_probe
from tests.support.ports import free_port

CONNECT = r"""
import json, os, socket, sys
host, port = os.environ["TARGET"].rsplit(":", 1)
try:
    with socket.create_connection((host, int(port)), timeout=3) as s:
        result = {"ok": True, "answer": s.recv(100).decode()}
except Exception as exc:
    result = {"ok": False, "error": type(exc).__name__ + ": " + str(exc)}
print(json.dumps(result), flush=True)
sys.stdin.read()
"""

PEER_SERVER = r"""
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen()
print("ready", flush=True)
while True:
    c, addr = s.accept()
    c.sendall(b"peer answers " + addr[0].encode())
    c.close()
"""


@dataclass
class Peer:
    address: str
    port: int
    host_address: str


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@pytest.fixture
def peer() -> Iterator[Peer]:
    """A peer host in its own network namespace, routed from this host over a veth pair."""
    require_root()
    if shutil.which("ip") is None:
        pytest.skip("needs iproute2 (ip) to build the peer host")
    routes = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True, check=True).stdout
    used = {line.split(".")[2] for line in routes.splitlines() if line.startswith("10.213.")}
    subnet = next(str(n) for n in range(256) if str(n) not in used)
    tag = secrets.token_hex(3)
    ns, host_if, peer_if = f"pf-peer-{tag}", f"pfh{tag}", f"pfp{tag}"
    host_address, address = f"10.213.{subnet}.1", f"10.213.{subnet}.2"
    server = None
    try:
        _ip("netns", "add", ns)
        _ip("link", "add", host_if, "type", "veth", "peer", "name", peer_if)
        _ip("link", "set", peer_if, "netns", ns)
        _ip("addr", "add", f"{host_address}/24", "dev", host_if)
        _ip("link", "set", host_if, "up")
        _ip("-n", ns, "addr", "add", f"{address}/24", "dev", peer_if)
        _ip("-n", ns, "link", "set", peer_if, "up")
        _ip("-n", ns, "link", "set", "lo", "up")
        port = free_port()
        server = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-c", PEER_SERVER, address, str(port)],
            stdout=subprocess.PIPE,
        )
        assert server.stdout is not None and server.stdout.readline() == b"ready\n"
        yield Peer(address, port, host_address)
    finally:
        if server is not None:
            server.kill()
            server.wait(10)
            if server.stdout is not None:
                server.stdout.close()
        subprocess.run(["ip", "link", "del", host_if], capture_output=True, timeout=10, check=False)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10, check=False)


def test_outbound_nat_reaches_a_peer_host(peer: Peer, scratch: Path) -> None:
    rc, result, _ = run_probe(CONNECT, scratch, env={"TARGET": f"{peer.address}:{peer.port}"})
    assert rc == 0
    assert result["ok"], result
    # the peer sees the host's address on that link: the sandbox is behind NAT
    assert result["answer"] == f"peer answers {peer.host_address}"


def test_host_names_from_the_spec(peer: Peer, scratch: Path) -> None:
    _rc, result, _ = run_probe(
        CONNECT, scratch, env={"TARGET": f"peer.example:{peer.port}"}, hosts={"peer.example": peer.address}
    )
    assert result["ok"], result


def test_network_none_reaches_nothing(peer: Peer, scratch: Path) -> None:
    _rc, result, _ = run_probe(
        CONNECT, scratch, env={"TARGET": f"{peer.address}:{peer.port}"}, network="none"
    )
    assert not result["ok"]
    assert "unreachable" in result["error"]


LOOPBACK_SELF = r"""
import json, socket, sys
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
c = socket.create_connection(s.getsockname(), timeout=3)
print(json.dumps({"ok": True}), flush=True)
sys.stdin.read()
"""


def test_network_none_keeps_loopback(scratch: Path) -> None:
    rc, result, _ = run_probe(LOOPBACK_SELF, scratch, network="none")
    assert rc == 0 and result == {"ok": True}


def test_chosen_loopback_port_reaches_the_host_others_do_not(host_server: HostServer, scratch: Path) -> None:
    _rc, result, _ = run_probe(
        CONNECT, scratch, env={"TARGET": f"127.0.0.1:{host_server.port}"}, loopback_ports=[host_server.port]
    )
    assert result == {"ok": True, "answer": "host secret service"}
    other = HostServer()
    try:
        _rc, result, _ = run_probe(
            CONNECT, scratch, env={"TARGET": f"127.0.0.1:{other.port}"}, loopback_ports=[host_server.port]
        )
        assert not result["ok"]
        assert other.accepted == 0
    finally:
        other.close()


INBOUND = r"""
import json, os, socket, sys, threading
container_port, host_port = int(os.environ["CONTAINER_PORT"]), int(os.environ["HOST_PORT"])
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("0.0.0.0", container_port))
srv.listen()
def serve():
    while True:
        c, _ = srv.accept()
        c.sendall(b"app server")
        c.close()
threading.Thread(target=serve, daemon=True).start()
try:  # the app calls its own confirmed hostPort, as on the appliance
    with socket.create_connection(("127.0.0.1", host_port), timeout=3) as s:
        own = {"ok": True, "answer": s.recv(100).decode()}
except Exception as exc:
    own = {"ok": False, "error": str(exc)}
print(json.dumps({"own": own}), flush=True)
sys.stdin.read()
"""


@pytest.mark.parametrize("same_port", [False, True], ids=["container-to-other-host-port", "same-port"])
def test_inbound_on_the_confirmed_host_port(scratch: Path, same_port: bool) -> None:
    host_port = free_port()
    container_port = host_port if same_port else 8080
    answers: list[bytes] = []

    def from_host(_: object) -> None:
        deadline = time.monotonic() + 5
        while True:
            try:
                with socket.create_connection(("127.0.0.1", host_port), timeout=3) as s:
                    answers.append(s.recv(100))
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    _rc, result, _ = run_probe(
        INBOUND,
        scratch,
        stdin_hold=from_host,
        env={"CONTAINER_PORT": str(container_port), "HOST_PORT": str(host_port)},
        inbound=[(container_port, host_port)],
    )
    assert answers == [b"app server"]
    assert result["own"] == {"ok": True, "answer": "app server"}


def test_inbound_port_in_use_fails_with_the_port_named(scratch: Path) -> None:
    python, mounts = interpreter()
    with socket.socket() as busy:
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        port = busy.getsockname()[1]
        spec = SandboxSpec(argv=[python, "-c", "pass"], mounts=mounts, inbound=[(8080, port)])
        problems = host_problems(spec)
        assert any(f"hostPort {port} is already in use" in p for p in problems), problems
        require(SandboxSpec(argv=[python, "-c", "pass"], mounts=mounts))
        with pytest.raises(SandboxError, match=f"hostPort {port} is already in use.*ss -ltnp"):
            start(spec)


def test_privileged_host_port_is_explained() -> None:
    start_port = int(Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text())
    if start_port <= 80:
        pytest.skip(f"unprivileged processes may bind port 80 here (ip_unprivileged_port_start={start_port})")
    problems = host_problems(SandboxSpec(argv=["/usr/bin/true"], inbound=[(8080, 80)]))
    assert any("sysctl -w net.ipv4.ip_unprivileged_port_start=80" in p for p in problems), problems


def test_unprivileged_caller_gets_its_own_uid(scratch: Path) -> None:
    """A non-root launcher runs the sandbox as itself (pasta and bwrap need no privileges)."""
    require_root()
    venv_python = sys.executable
    script = (
        "import json, subprocess, sys\n"
        "from panoflow.isolation import SandboxSpec, start, host_problems\n"
        "spec = SandboxSpec(argv=['/usr/bin/python3', '-c', 'import os; print(os.getuid())'])\n"
        "problems = host_problems(spec)\n"
        "if problems: print(json.dumps(problems)); sys.exit(3)\n"
        "p = start(spec, stdout=subprocess.PIPE)\n"
        "print(p.stdout.read().decode().strip()); p.wait(); p.close()\n"
    )
    uid = 64001
    result = subprocess.run(
        [venv_python, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        cwd="/",
        user=uid,
        group=uid,
        extra_groups=[],
        check=False,
    )
    if result.returncode != 0 and "Permission denied" in result.stderr:
        pytest.skip(f"panoflow's interpreter is not usable by uid {uid}: {result.stderr.strip()[-200:]}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().splitlines()[-1] == str(uid)
