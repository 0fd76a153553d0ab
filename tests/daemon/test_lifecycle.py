"""The acceptance scenario: two applications on one daemon; ``kill -9`` of one restarts it with back-off while
the other keeps every frame; a broken new version keeps the old one running and reports DEPLOYMENT_FAILED with
the validation message; a good new version replaces the old; after the daemon restarts, the instances are
back, their storage intact and their earlier log lines readable."""

from __future__ import annotations

import itertools
import json
import os
import signal
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from panoflow.daemon.supervisor import process_alive
from tests.support.apps import broken_app, counter_app
from tests.support.daemons import Daemon, events, live, log_lines

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="needs Linux namespaces")


def console(d: Daemon, name: str) -> list[str]:
    return log_lines(d, name, node="code_node", tail="1000")


def starts(d: Daemon, name: str, count: int, timeout: float = 15) -> list[str]:
    """The app's "start N ..." lines, once there are ``count`` of them (it prints one when it starts)."""
    deadline = time.monotonic() + timeout
    while True:
        lines = [line for line in console(d, name) if line.startswith("start ")]
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.2)


def when(record: dict[str, Any]) -> float:
    return datetime.fromisoformat(record["timestamp"].replace("Z", "+00:00")).timestamp()


def steady_drops(d: Daemon, name: str, timeout: float = 40) -> int:
    """The app's dropped-frame count once its code takes every frame (a second of frames, 30, with no new
    drop). Its camera runs before the app's own process is up: the frames of those first moments are
    dropped."""
    deadline = time.monotonic() + timeout
    ref: tuple[int, int] | None = None
    while True:
        stream = d.instance(name)["streams"].get("camera_node", {})
        frames, drops = stream.get("frames", 0), stream.get("drops", 0)
        if ref is None or drops != ref[1] or not frames:
            ref = (frames, drops)
        elif frames - ref[0] >= 30:
            return drops
        assert time.monotonic() < deadline, f"{name} kept dropping frames: {stream}"
        time.sleep(0.1)


def deploy(d: Daemon, app: Path, name: str, clip: Path, *extra: str) -> str:
    r = d.cli("deploy", str(app), "--name", name, "--camera", f"camera_node={live(clip)}", *extra)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{name}: DEPLOYMENT_SUCCEEDED" in r.stdout
    return str(d.instance(name)["instance_id"])


def test_kill_restart_broken_replace_and_daemon_restart(make_daemon: Any, clips: dict[str, Path],
                                                       tmp_path: Path) -> None:
    d: Daemon = make_daemon()
    app = counter_app(tmp_path / "counter")
    alpha_id = deploy(d, app, "alpha", clips["a"], "--param", "p_str=v1")
    beta_id = deploy(d, app, "beta", clips["b"], "--param", "p_str=v1")

    r = d.cli("ps")
    assert r.returncode == 0, r.stderr
    header, *rows = r.stdout.splitlines()
    assert header.split() == ["NAME", "INSTANCE", "ID", "STATUS", "HEALTH", "PID", "RESTARTS"]
    assert [row.split()[:4] for row in rows] == [["alpha", alpha_id, "DEPLOYMENT_SUCCEEDED", "RUNNING"],
                                                 ["beta", beta_id, "DEPLOYMENT_SUCCEEDED", "RUNNING"]]
    listed = {i["name"]: i for i in json.loads(d.cli("ps", "--json").stdout)}
    beta_pid = listed["beta"]["process"]["pid"]
    assert listed["alpha"]["process"]["pid"] != beta_pid and listed["alpha"]["process"]["restarts"] == 0

    # ---- kill -9 alpha twice: restarted after 1 s, then 2 s; beta keeps producing every frame
    beta_drops = steady_drops(d, "beta")
    samples: list[tuple[float, int, int, int]] = []

    def sample() -> None:
        beta = d.instance("beta")
        stream = beta["streams"]["camera_node"]
        samples.append((time.monotonic(), stream["frames"], stream["drops"], beta["process"]["pid"]))

    for _ in range(2):
        victim = d.instance("alpha")["process"]["pid"]
        os.kill(victim, signal.SIGKILL)
        saw_error = False
        deadline = time.monotonic() + 30
        while True:
            alpha = d.instance("alpha")
            sample()
            saw_error |= alpha["health_status"] == "ERROR"
            if alpha["health_status"] == "RUNNING" and alpha["process"]["pid"] not in (None, victim):
                break
            assert time.monotonic() < deadline, alpha
            time.sleep(0.1)
        assert saw_error, "alpha's HealthStatus never said ERROR while it was down"
    time.sleep(1.2)
    sample()

    alpha = d.instance("alpha")
    assert alpha["instance_id"] == alpha_id and alpha["process"]["restarts"] == 2
    restarting = events(d, "alpha", "instance_restarting")
    assert [e["backoff_s"] for e in restarting] == [1.0, 2.0]
    assert all(e["exit_code"] == -9 for e in restarting)
    exited, started = events(d, "alpha", "instance_exited"), events(d, "alpha", "instance_started")
    assert len(started) == 3 and len(exited) == 2
    for backoff, gone, back in zip((1.0, 2.0), exited, started[1:]):
        assert when(back) - when(gone) >= backoff - 0.05

    # beta: the same process throughout, never a dropped frame, frames counted steadily at about 30 fps
    assert {pid for *_, pid in samples} == {beta_pid}
    assert all(drops == beta_drops for _, _, drops, _ in samples), (
        beta_drops, [(round(t - samples[0][0], 2), frames, drops) for t, frames, drops, _ in samples])
    assert all(b[1] >= a[1] for a, b in itertools.pairwise(samples))
    for i, (t0, f0, _, _) in enumerate(samples):
        later = [f for t, f, _, _ in samples[i:] if t - t0 >= 1.6]
        assert not later or later[0] > f0, "beta's frame counter stalled while alpha restarted"
    (t0, f0, *_), (t1, f1, *_) = samples[0], samples[-1]
    assert (f1 - f0) / (t1 - t0) > 20, samples
    assert d.instance("beta")["process"]["restarts"] == 0

    # ---- a broken new version: DEPLOYMENT_FAILED with the validation message, the old one keeps running
    alpha_pid = d.instance("alpha")["process"]["pid"]
    r = d.cli("deploy", str(broken_app(tmp_path / "broken")), "--name", "alpha",
              "--camera", f"camera_node={live(clips['a'])}")
    assert r.returncode == 1
    assert "alpha: DEPLOYMENT_FAILED" in r.stderr
    assert (
        "graph.json:/nodeGraph/edges/0/consumer: error:" in r.stderr and "no input port 'nope_in'" in r.stderr
    )
    alpha = d.instance("alpha")
    assert (alpha["instance_id"], alpha["status"], alpha["health_status"], alpha["process"]["pid"]) == (
        alpha_id, "DEPLOYMENT_SUCCEEDED", "RUNNING", alpha_pid)
    failed = [i for i in d.get("/instances")["instances"] if i["status"] == "DEPLOYMENT_FAILED"]
    assert len(failed) == 1 and failed[0]["name"] == "alpha" and failed[0]["health_status"] == "NOT_AVAILABLE"
    assert "no input port 'nope_in'" in failed[0]["status_description"]

    # ---- a good new version replaces the old one (which stops only once the new one runs, and is gone by the
    # time deploy returns: tests/daemon/test_replace.py)
    new_id = deploy(d, app, "alpha", clips["a"], "--param", "p_str=v2")
    assert new_id != alpha_id
    new = d.instance("alpha")
    assert new["replaces"] == alpha_id and new["health_status"] == "RUNNING"
    assert d.request("GET", f"/instances/{alpha_id}")[0] == 404
    assert [i["status"] for i in d.get("/instances")["instances"] if i["name"] == "alpha"] == [
        "DEPLOYMENT_SUCCEEDED"
    ]
    assert not process_alive(alpha_pid), "the replaced instance's process is still there"
    assert starts(d, "alpha", 4) == ["start 1 version v1 tmp clean", "start 2 version v1 tmp clean",
                                     "start 3 version v1 tmp clean", "start 4 version v2 tmp clean"]

    # ---- the daemon restarts: instances stop, come back, storage intact, earlier log lines still there
    pids = [d.instance(n)["process"]["pid"] for n in ("alpha", "beta")]
    assert d.stop() == 0
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids) and not d.instance_pids()
    d.start()
    for name in ("alpha", "beta"):
        inst = d.wait_for(name, lambda i: i["health_status"] == "RUNNING", what="RUNNING after the restart")
        assert inst["process"]["pid"] not in pids
    assert d.instance("alpha")["instance_id"] == new_id and d.instance("beta")["instance_id"] == beta_id
    alpha_starts = starts(d, "alpha", 5)
    assert (
        alpha_starts[0] == "start 1 version v1 tmp clean"
        and alpha_starts[-1] == "start 5 version v2 tmp clean"
    )
    assert (d.state_dir / "apps" / "alpha" / "storage" / "counter.txt").read_text() == "5"
    assert starts(d, "beta", 2) == ["start 1 version v1 tmp clean", "start 2 version v1 tmp clean"]
    assert len(events(d, "alpha", "instance_restarting")) == 2  # written before the restart, read after it


def test_a_daemon_killed_outright_leaves_no_stray_instance(make_daemon: Any, clips: dict[str, Path],
                                                          tmp_path: Path) -> None:
    d: Daemon = make_daemon()
    deploy(d, counter_app(tmp_path / "app"), "solo", clips["a"])
    stray = d.instance("solo")["process"]["pid"]
    assert d.stop(signal.SIGKILL) == -signal.SIGKILL  # no chance to stop its instances
    d.start()
    inst = d.wait_for("solo", lambda i: i["health_status"] == "RUNNING", what="RUNNING after the restart")
    assert inst["process"]["pid"] != stray and not process_alive(stray)
    assert [pid for pid in d.instance_pids() if process_alive(pid)] == [inst["process"]["pid"]]
