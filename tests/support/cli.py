"""``panoflow ...`` in a child process, as a user runs it (JSON logs on stderr)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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
