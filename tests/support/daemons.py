"""Real ``panoflow serve`` processes on a free loopback port, their HTTP API and client commands (fixtures:
``make_daemon``, ``clips``).

Every daemon a test starts records its state directory, token and the passwords its tests used; once the whole
session is over, :func:`_no_secrets_in_logs` greps every log file those daemons (and their instances) wrote.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import panoflow_argv

__all__ = ["LOG_NAMES", "SECRETS", "STATE_DIRS", "Daemon", "events", "live", "log_files", "log_lines"]

SECRETS: list[str] = []
STATE_DIRS: list[Path] = []
LOG_NAMES = ("daemon.log", "instance.log", "console_output", "serve.stderr", "serve.stdout")


class Daemon:
    """One ``panoflow serve`` process over ``state_dir`` (restartable: :meth:`stop`, then :meth:`start`)."""

    def __init__(self, state_dir: Path, *extra: str):
        self.state_dir = state_dir
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.token = ""

    # ------------------------------------------------------------------ life
    def start(self, timeout: float = 30) -> Daemon:
        daemon_file = self.state_dir / "daemon.json"
        daemon_file.unlink(missing_ok=True)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        out = open(self.state_dir.parent / f"{self.state_dir.name}.serve.stdout", "ab")  # noqa: SIM115
        err = open(self.state_dir.parent / f"{self.state_dir.name}.serve.stderr", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            panoflow_argv("serve", "--state-dir", str(self.state_dir), "--listen", "127.0.0.1:0",
                          "--stop-grace", "5", "--start-timeout", "40",
                          "--cameras", str(self.state_dir / "cameras.json"), *self.extra),
            stdout=out, stderr=err, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        out.close()
        err.close()
        deadline = time.monotonic() + timeout
        while True:
            try:
                info = json.loads(daemon_file.read_text())
                if info["pid"] == self.proc.pid:
                    break
            except (OSError, ValueError, KeyError):
                pass
            assert self.proc.poll() is None, (
                f"panoflow serve exited with {self.proc.returncode}: {self.stderr()}")
            assert time.monotonic() < deadline, "panoflow serve did not start listening"
            time.sleep(0.05)
        self.url = info["url"]
        self.token = (self.state_dir / "token").read_text().strip()
        if self.token not in SECRETS:
            SECRETS.append(self.token)
        if self.state_dir not in STATE_DIRS:
            STATE_DIRS.append(self.state_dir)
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 40) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                raise AssertionError("panoflow serve did not stop within its grace") from None
        return self.proc.returncode

    def stderr(self) -> str:
        path = self.state_dir.parent / f"{self.state_dir.name}.serve.stderr"
        return path.read_text(errors="replace") if path.exists() else ""

    def instance_pids(self) -> list[int]:
        """Live processes (instances) whose command line mentions this daemon's state directory, by pid."""
        from panoflow.daemon.supervisor import (
            process_alive,  # this plugin loads for every test: import on use
        )

        pids = []
        needle = str(self.state_dir).encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if needle in cmdline and b"\0run\0" in cmdline and process_alive(int(entry.name)):
                pids.append(int(entry.name))
        return sorted(pids)

    # ------------------------------------------------------------------ HTTP
    def request(self, method: str, path: str, body: Any = None, *, token: str | None = "",
                raw: bytes | None = None, timeout: float = 30) -> tuple[int, Any]:
        """``(status, JSON body or text)``; ``token=None`` sends no Authorization header."""
        headers = {}
        if token is not None:
            headers["Authorization"] = f"Bearer {token or self.token}"
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                status, ctype, payload = resp.status, resp.headers.get_content_type(), resp.read()
        except urllib.error.HTTPError as exc:
            with exc:
                status, ctype, payload = exc.code, exc.headers.get_content_type(), exc.read()
        if ctype == "application/json":
            return status, json.loads(payload)
        return status, payload

    def get(self, path: str) -> Any:
        status, body = self.request("GET", path)
        assert status == 200, (path, status, body)
        return body

    def instance(self, ref: str) -> dict[str, Any]:
        return dict(self.get(f"/instances/{ref}"))

    def wait_for(self, ref: str, predicate: Callable[[dict[str, Any]], bool], timeout: float = 40,
                 what: str = "condition") -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            status, inst = self.request("GET", f"/instances/{ref}")
            if status == 200 and predicate(inst):
                return dict(inst)
            assert time.monotonic() < deadline, f"{ref}: timed out waiting for {what}; last: {inst}"
            time.sleep(0.1)

    # ------------------------------------------------------------------ CLI
    def cli(self, *args: str, timeout: float = 120, env: dict[str, str] | None = None,
            with_daemon_args: bool = True) -> subprocess.CompletedProcess[str]:
        argv = list(args)
        if with_daemon_args:
            argv += ["--daemon", self.url, "--token-file", str(self.state_dir / "token")]
        return subprocess.run(panoflow_argv(*argv), capture_output=True, text=True, timeout=timeout,
                              check=False, env={**os.environ, **(env or {})})


@pytest.fixture
def make_daemon(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    """Start daemons (``make_daemon("name", *serve_flags)``); each is stopped at the end, and must leave no
    instance process behind."""
    daemons: list[Daemon] = []

    def make(name: str = "state", *extra: str) -> Daemon:
        daemon = Daemon(tmp_path / name, *extra).start()
        daemons.append(daemon)
        return daemon

    yield make
    leftovers = []
    for daemon in daemons:
        daemon.stop()
        deadline = time.monotonic() + 5
        while daemon.instance_pids() and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in daemon.instance_pids():
            leftovers.append(pid)
            os.kill(pid, signal.SIGKILL)
    assert not leftovers, f"instance processes outlived their daemon: {leftovers}"


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two 30-frame clips for the daemons' cameras."""
    from tests.media import make_clip  # PyAV only where a test asks for clips

    d = tmp_path_factory.mktemp("daemon-clips")
    return {"a": make_clip(d / "a.mp4", frames=30, seed=1), "b": make_clip(d / "b.mp4", frames=30, seed=2)}


def live(clip: Path) -> str:
    """A camera URI that loops ``clip`` in real time (30 fps), like a live camera."""
    return f"file://{clip}?loop=1&realtime=1"


def log_lines(d: Daemon, name: str, **query: str) -> list[str]:
    """The instance's log, or a node's console_output, read through the API (the ``logs`` command prints the
    same; polling it would start a Python process per look, which is slow on a loaded machine)."""
    status, body = d.request("GET", f"/instances/{name}/logs?{urllib.parse.urlencode(query)}")
    assert status == 200, body
    return bytes(body).decode().splitlines()


def events(d: Daemon, name: str, event: str) -> list[dict[str, Any]]:
    """The records of ``event`` in the instance ``name``'s log, oldest first."""
    out = []
    for line in log_lines(d, name, tail="100000"):
        record = json.loads(line)  # the instance log is JSON lines, all of it
        if record.get("event") == event:
            out.append(record)
    return out


def log_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and any(p.name.startswith(n) for n in LOG_NAMES)]


@pytest.fixture(scope="session", autouse=True)
def _no_secrets_in_logs() -> Iterator[None]:
    """After the whole suite: no token or camera password in any log file a daemon or its instances wrote."""
    yield
    found = []
    for root in STATE_DIRS:
        for path in log_files(root.parent):  # the state directory and the daemon's captured output beside it
            text = path.read_text(errors="replace")
            found += [f"{path}: {secret[:4]}..." for secret in SECRETS if secret and secret in text]
    assert not found, f"secrets in log files: {found}"
