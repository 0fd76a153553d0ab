"""``panoflow ...`` in a child process, as a user runs it (JSON logs on stderr), and a GET from the control
API of ``panoflow run --control unix:SOCK``."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

#: runs the ``panoflow`` CLI with the daemon's commands registered even where ``panoflow.cli.COMMANDS`` does
#: not list them yet
PANOFLOW = (
    "import sys, panoflow.cli as c\n"
    "c.COMMANDS = tuple(dict.fromkeys(c.COMMANDS + ('serve', 'device')))\n"
    "raise SystemExit(c.main())\n"
)


def panoflow_argv(*args: str) -> list[str]:
    """The argv of ``panoflow --log-format json ARGS`` (for ``subprocess.Popen`` and friends)."""
    return [sys.executable, "-c", PANOFLOW, "--log-format", "json", *args]


def run_panoflow(*args: str, timeout: float = 60,
                 cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``panoflow ARGS`` in a child process (the sandbox needs a process of its own), JSON logs on stderr."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "panoflow", "--log-format", "json", *args],
                          capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd, check=False)


def control_get(sock: Path, path: str) -> str:
    """GET ``path`` from the HTTP server on the unix socket ``sock`` (``panoflow run --control
    unix:SOCK``)."""
    conn = http.client.HTTPConnection("localhost", timeout=5)
    conn.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:  # closing the connection closes the socket, also when nothing listens yet
        conn.sock.connect(str(sock))
        conn.request("GET", path)
        return conn.getresponse().read().decode()
    finally:
        conn.close()


def log_records(text: str) -> list[dict[str, Any]]:
    """The JSON objects among ``text``'s lines (panoflow's ``--log-format json`` output, a daemon's log file);
    other lines are skipped."""
    out = []
    for line in text.splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict):
            out.append(doc)
    return out
