"""Runs an app script of ``tests/aws/apps`` with only the AWS gateway's environment, optionally inside a
bubblewrap sandbox with its own network namespace and /etc/hosts, its loopback ports relayed to the host's
gateway as pasta does for the real sandbox (:func:`run_app`); and the gateway on a loop of its own thread
(:func:`running`)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest

from panoflow.aws import AwsGateway, SandboxAws
from tests.aws.netns_relay import pump

ROOT = Path(__file__).parents[2]
APPS = Path(__file__).parent / "apps"
RELAY = Path(__file__).parent / "netns_relay.py"


@contextmanager
def host_relay(sockdir: Path, ports: Mapping[int, int]) -> Iterator[None]:
    """For each sandbox port -> host port: a unix socket SOCKDIR/PORT.sock relayed to 127.0.0.1:HOST_PORT."""
    listeners = []

    def serve(listener: socket.socket, port: int) -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=_connection, args=(conn, port), daemon=True).start()

    for inside, host_port in ports.items():
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(sockdir / f"{inside}.sock"))
        listener.listen(16)
        listeners.append(listener)
        threading.Thread(target=serve, args=(listener, host_port), daemon=True).start()
    try:
        yield
    finally:
        for listener in listeners:
            listener.close()
        for inside in ports:
            (sockdir / f"{inside}.sock").unlink(missing_ok=True)


def _connection(conn: socket.socket, port: int) -> None:
    with conn, socket.create_connection(("127.0.0.1", port)) as upstream:
        back = threading.Thread(target=pump, args=(upstream, conn), daemon=True)
        back.start()
        pump(conn, upstream)
        back.join(60)


def bwrap_works() -> str:
    """'' when bubblewrap can make a network namespace here, else why not."""
    if not shutil.which("bwrap"):
        return "bubblewrap is not installed (apt-get install bubblewrap)"
    probe = subprocess.run(["bwrap", "--ro-bind", "/", "/", "--unshare-net", *_userns(), "true"],
                           capture_output=True, text=True, check=False)
    return "" if probe.returncode == 0 else f"bwrap cannot unshare the network here: {probe.stderr.strip()}"


def need_bwrap() -> None:
    """Skip the test where bubblewrap cannot make a network namespace; under CI (``CI`` set) fail it
    instead."""
    why = bwrap_works()
    if why and os.environ.get("CI"):
        pytest.fail(why)
    if why:
        pytest.skip(why)


def _userns() -> list[str]:
    return [] if os.geteuid() == 0 else ["--unshare-user", "--uid", "0", "--cap-add", "CAP_NET_BIND_SERVICE"]


def run_app(script: str, env: Mapping[str, str], *args: str, pythonpath: Path | None = None,
            timeout: float = 90, sandbox: SandboxAws | None = None, work: Path | None = None) -> dict:
    """Run ``apps/SCRIPT`` with exactly ``env`` (plus PATH/HOME; boto3 from ``pythonpath`` when given, with
    ``python -S`` so .venv's packages stay out) and return the JSON it prints last.

    ``sandbox`` (what :meth:`AwsGateway.sandbox` says to map): run inside bubblewrap with its own network
    namespace, its ports relayed to the gateway, its hostnames in /etc/hosts and its files bound read-only, as
    the application sandbox does; ``work`` is a scratch folder for the relay sockets."""
    home = Path(env.get("HOME", "/nonexistent"))
    full = {"PATH": "/usr/bin:/bin", **env}
    if pythonpath is not None:
        full["PYTHONPATH"] = str(pythonpath)
    command = [sys.executable, *(["-S"] if pythonpath is not None else []), str(APPS / script), *args]
    if sandbox is None:
        done = subprocess.run(command, env=full, capture_output=True, text=True, timeout=timeout, check=False)
    else:
        assert work is not None
        ports = dict(sandbox.ports)
        hosts = work / "hosts"
        hosts.write_text("127.0.0.1 localhost\n" + "".join(f"127.0.0.1 {h}\n" for h in sandbox.hosts))
        sockdir = work / "sock"
        sockdir.mkdir(exist_ok=True)
        binds: list[str] = []
        extra = [pythonpath] if pythonpath else []
        for path in {ROOT, Path(sys.prefix), Path(sys.base_prefix), home, *extra}:
            binds += ["--ro-bind", str(path), str(path)]
        for source, inside in sandbox.files:
            binds += ["--ro-bind", str(source), inside]
        bwrap = ["bwrap", "--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc",
                 "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
                 "--symlink", "usr/bin", "/bin", "--proc", "/proc",
                 "--dev", "/dev", "--tmpfs", "/tmp", *binds, "--bind", str(sockdir), str(sockdir),
                 "--ro-bind", str(hosts), "/etc/hosts", "--unshare-net", "--unshare-pid", "--die-with-parent",
                 *_userns(), sys.executable, "-S", str(RELAY), str(sockdir), ",".join(map(str, ports)), "--",
                 *command]
        with host_relay(sockdir, ports):
            done = subprocess.run(bwrap, env=full, capture_output=True, text=True, timeout=timeout,
                                  check=False)
    assert done.returncode == 0, (
        f"{script} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


@contextmanager
def running(gateway: AwsGateway) -> Iterator[AwsGateway]:
    """``gateway`` started on an event loop of its own thread (the test body blocks on subprocesses)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(gateway.start(), loop).result(60)
        yield gateway
    finally:
        asyncio.run_coroutine_threadsafe(gateway.stop(), loop).result(60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def base_env(home: Path) -> dict[str, str]:
    """What every test app gets besides the gateway's variables: a HOME of its own (no ~/.aws)."""
    home.mkdir(parents=True, exist_ok=True)
    return {"HOME": str(home)}
