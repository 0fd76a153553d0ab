"""No camera password, ``--param`` value or daemon token on any process's command line or in its environment
while an instance that uses them runs under ``panoflow serve``: every process of the daemon's tree (the
daemon, the instance's runtime, pasta, bubblewrap, the app) and, for good measure, every other process of the
host."""

from __future__ import annotations

import functools
import hashlib
import http.server
import secrets
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.apps import param_app, wait_json
from tests.support.daemons import SECRETS, Daemon

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="needs Linux namespaces")


def _tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            tasks = list(Path(f"/proc/{p}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                pass
    return out


def _read(pid: int, name: str) -> bytes:
    try:
        return Path(f"/proc/{pid}/{name}").read_bytes()
    except OSError:
        return b""  # gone meanwhile, or a kernel thread


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def camera_server(clips: dict[str, Path]) -> Iterator[int]:
    """An HTTP server on loopback serving the clips (a camera reached with credentials in its URI)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(
        clips["a"].parent)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


@pytest.mark.slow
def test_no_password_param_or_token_on_any_process(make_daemon: Any, clips: dict[str, Path],
                                                   camera_server: int, tmp_path: Path) -> None:
    password, param = f"pw-{secrets.token_hex(10)}", f"param-{secrets.token_hex(10)}"
    SECRETS.extend([password, param])
    d: Daemon = make_daemon()
    camera = f"http://viewer:{password}@127.0.0.1:{camera_server}/{clips['a'].name}?loop=1&realtime=1"
    r = d.cli("deploy", str(param_app(tmp_path / "app")), "--name", "secretive", "--camera",
              f"camera_node={camera}", "--param", f"p_str={param}")
    assert r.returncode == 0, r.stderr + d.stderr()[-3000:]
    storage = d.state_dir / "apps" / "secretive" / "storage" / "seen.json"
    seen = wait_json(storage, lambda s: s["frames"] >= 10, 40,
                     lambda s: f"no frames through the camera with credentials: {s}")
    # both secrets arrived where they are used: the camera gives frames, the app got the parameter's value
    assert seen["p_str_sha256"] == hashlib.sha256(param.encode()).hexdigest()

    assert d.proc is not None
    tree = _tree(d.proc.pid)
    commands = {pid: _read(pid, "cmdline").replace(b"\0", b" ") for pid in tree}
    kinds = {
        "instance runtime": [
            p for p, c in commands.items() if b" run " in c and str(d.state_dir).encode() in c
        ],
        "pasta": [p for p, c in commands.items() if c.split(b" ")[0].endswith(b"/pasta")],
        "bwrap": [p for p in tree if _read(p, "comm").strip() == b"bwrap"],
        "app": [p for p, c in commands.items() if b"panoramasdk._bootstrap" in c and b"bwrap" not in c],
    }
    assert all(kinds.values()), (kinds, commands)  # the whole tree is there to look at
    needles = [password.encode(), param.encode(), d.token.encode()]
    everyone = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]
    found = []
    for pid in sorted(set(tree) | set(everyone)):
        for name in ("cmdline", "environ"):
            data = _read(pid, name)
            found += [f"{pid} {name} {needle[:6]!r}" for needle in needles if needle in data]
    assert not found, found
    # the check could read what it looked at: each of those processes has an environment, and it was read
    for kind, pids in kinds.items():
        assert all(_read(pid, "environ") for pid in pids), kind
