"""Helpers for the sandbox tests: skip (or fail under CI) where the host cannot sandbox, an interpreter the
sandbox can run, a TCP server on the host to reach (or not) from inside, and a probe runner that collects what
a script saw inside."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from panoflow.isolation import Mount, SandboxedProcess, SandboxSpec, host_problems, start


def require(spec: SandboxSpec) -> None:
    """Skip with the host's problems where it cannot run ``spec``; under CI a missing bwrap or pasta fails
    instead."""
    problems = host_problems(spec)
    if not problems:
        return
    text = "; ".join(problems)
    if os.environ.get("CI") and any("apt-get install bubblewrap passt" in p for p in problems):
        pytest.fail(f"sandbox helpers missing under CI: {text}")
    pytest.skip(f"this host cannot run the sandbox: {text}")


def require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip(
            "needs root (the launcher drops to the sandbox uid; network namespaces for the test peer)"
        )


def interpreter() -> tuple[str, list[Mount]]:
    """A Python the sandbox can run: the system's /usr/bin/python3, else this one with its prefix mounted."""
    if os.access("/usr/bin/python3", os.X_OK):
        return "/usr/bin/python3", []
    prefix = os.path.realpath(sys.base_prefix)
    return os.path.realpath(sys.executable), [Mount(Path(prefix), prefix)]


class HostServer:
    """A TCP server on the host that answers each connection with ``answer`` and counts them."""

    def __init__(self, host: str = "127.0.0.1", answer: bytes = b"host secret service"):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen()
        self.port: int = self.sock.getsockname()[1]
        self.answer = answer
        self.accepted = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            with conn:
                conn.sendall(self.answer)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() in the thread
        self.sock.close()
        self._thread.join(5)


def run_probe(
    code: str,
    scratch: Path,
    *,
    stdin_hold: Callable[[SandboxedProcess], None] | None = None,
    timeout: float = 20,
    **spec_fields: Any,
) -> tuple[int, dict[str, Any], SandboxedProcess]:
    """Run ``code`` (a Python script that prints one JSON object as its first stdout line) in a sandbox.

    The script is mounted read-only at /probe/probe.py. ``stdin_hold``, when given, is called once the probe
    has printed its result and before its stdin is closed (probes that ``sys.stdin.read()`` wait for that).
    """
    python, mounts = interpreter()
    probe_dir = scratch / "probe"
    probe_dir.mkdir(exist_ok=True)
    (probe_dir / "probe.py").write_text(code)
    (probe_dir / "probe.py").chmod(0o644)
    spec_fields.setdefault("env", {"PATH": "/usr/bin:/bin", "HOME": "/tmp"})
    spec = SandboxSpec(
        argv=[python, "/probe/probe.py"],
        mounts=[*mounts, Mount(probe_dir, "/probe"), *spec_fields.pop("mounts", [])],
        **spec_fields,
    )
    require(spec)
    proc = start(spec, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stderr is not None and proc.stdin is not None
        line = proc.stdout.readline()
        if stdin_hold is not None and line:
            stdin_hold(proc)
        proc.stdin.close()
        proc.stdout.read()
        rc = proc.wait(timeout)
        err = proc.stderr.read().decode(errors="replace")
        if not line.strip():
            pytest.fail(f"the probe printed nothing (exit {rc}); stderr:\n{err}")
        return rc, json.loads(line), proc
    finally:
        proc.close()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
