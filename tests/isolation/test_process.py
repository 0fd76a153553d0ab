"""SandboxedProcess like Popen: the app's pid, exit status, terminate (reaches the app), kill and close."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from panoflow.isolation import SandboxedProcess, SandboxSpec, start
from tests.isolation.probes import interpreter, require


def _started(network: str, code: str, *, ready_line: bool = False) -> SandboxedProcess:
    python, mounts = interpreter()
    spec = SandboxSpec(argv=[python, "-c", code], mounts=mounts, network=network)
    require(spec)
    proc = start(spec, stdout=subprocess.PIPE if ready_line else None)
    if ready_line:
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        proc.stdout.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        app = proc.app_pid()
        if app is not None and Path(f"/proc/{app}/cmdline").read_bytes().split(b"\0")[1:2] == [b"-c"]:
            return proc
        time.sleep(0.02)
    proc.close()
    pytest.fail("the app did not start within 5 s")


def _tree(pid: int) -> list[int]:
    pids, found = [pid], []
    while pids:
        current = pids.pop()
        found.append(current)
        try:
            pids += [int(c) for c in Path(f"/proc/{current}/task/{current}/children").read_text().split()]
        except OSError:
            pass
    return found


@pytest.mark.parametrize("network", ["nat", "none"])
def test_exit_status_is_the_apps(network: str) -> None:
    with _started(network, "import time; time.sleep(0.3); raise SystemExit(7)") as proc:
        assert proc.wait(10) == 7


@pytest.mark.parametrize("network", ["nat", "none"])
def test_terminate_reaches_the_app(network: str) -> None:
    code = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *_: sys.exit(42))  # a graceful shutdown the app chose\n"
        "print('ready', flush=True)\n"
        "time.sleep(30)\n"
    )
    with _started(network, code, ready_line=True) as proc:
        proc.terminate()
        assert proc.wait(10) == 42


def test_a_signal_shows_as_128_plus_n() -> None:
    with _started("none", "import time; time.sleep(30)") as proc:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 128 + signal.SIGTERM


@pytest.mark.parametrize("network", ["nat", "none"])
def test_close_kills_the_whole_tree(network: str) -> None:
    proc = _started(network, "import time; time.sleep(30)")
    tree = _tree(proc.pid)
    assert len(tree) == (4 if network == "nat" else 3)
    proc.close()
    assert proc.returncode is not None
    deadline = time.monotonic() + 5
    while any(Path(f"/proc/{pid}").exists() for pid in tree) and time.monotonic() < deadline:
        time.sleep(0.02)
    left = [pid for pid in tree if Path(f"/proc/{pid}").exists()]
    assert not left or all(
        "(Z)" in Path(f"/proc/{p}/stat").read_text() for p in left if Path(f"/proc/{p}").exists()
    )
    proc.close()  # twice is fine
