"""Replacing an application (deploying a name that already runs): ``panoflow deploy`` returns only once the
replaced version is gone, from the API, from ``panoflow ps`` and from the process table; a daemon killed
halfway through the removal of the replaced version comes back with the new version running and the old one
gone.

The old version's process is stopped (SIGSTOP) before the replacement, as a hung instance would be: it cannot
act on the daemon's SIGTERM, so the removal of the replaced version lasts the daemon's whole ``--stop-grace``
until its SIGKILL. A ``deploy`` that returned before that removal finished could not miss it."""

from __future__ import annotations

import json
import os
import re
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from panoflow.daemon.supervisor import process_alive
from tests.support.apps import counter_app
from tests.support.daemons import Daemon, live

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="needs Linux namespaces")


def deploy(d: Daemon, app: Path, clip: Path, *extra: str) -> str:
    r = d.cli("deploy", str(app), "--name", "alpha", "--camera", f"camera_node={live(clip)}", *extra)
    assert r.returncode == 0, r.stdout + r.stderr
    found = re.fullmatch(r"alpha: (\w+) \((applicationInstance-\w+)\)\n", r.stdout)
    assert found is not None, r.stdout
    return found[2]


def hang(d: Daemon, instance_id: str) -> int:
    """Stop the instance's process (SIGSTOP), as if it hung: only SIGKILL ends it now. Returns its pid."""
    pid = int(d.instance(instance_id)["process"]["pid"])
    os.kill(pid, signal.SIGSTOP)
    return pid


def ps_rows(d: Daemon) -> list[list[str]]:
    r = d.cli("ps")
    assert r.returncode == 0, r.stderr
    return [row.split()[:4] for row in r.stdout.splitlines()[1:]]


def exit_codes(d: Daemon) -> dict[int, int]:
    """pid -> exit code, from every ``instance_exited`` event in the application's log."""
    r = d.cli("logs", "alpha", "--tail", "100000")
    assert r.returncode == 0, r.stderr
    records = [json.loads(line) for line in r.stdout.splitlines()]
    return {rec["pid"]: rec["exit_code"] for rec in records if rec.get("event") == "instance_exited"}


def test_deploy_of_a_replacement_returns_once_the_replaced_instance_is_gone(
        make_daemon: Any, clips: dict[str, Path], tmp_path: Path) -> None:
    d: Daemon = make_daemon()  # --stop-grace 5
    app = counter_app(tmp_path / "app")
    old_id = deploy(d, app, clips["a"], "--param", "p_str=v1")
    old_pid = hang(d, old_id)

    new_id = deploy(d, app, clips["a"], "--param", "p_str=v2")
    # the moment deploy returned, with nothing waited for: only the new version, in the API, in ps and in
    # /proc
    assert d.request("GET", f"/instances/{old_id}")[0] == 404
    assert not process_alive(old_pid)
    assert [(i["instance_id"], i["status"], i["replaces"]) for i in d.get("/instances")["instances"]] == [
        (new_id, "DEPLOYMENT_SUCCEEDED", old_id)]
    assert ps_rows(d) == [["alpha", new_id, "DEPLOYMENT_SUCCEEDED", "RUNNING"]]
    # the old process went only with the SIGKILL at the end of the grace: deploy did wait all that time
    assert exit_codes(d)[old_pid] == -signal.SIGKILL


def test_a_daemon_killed_while_removing_the_replaced_version_keeps_the_new_one(
        make_daemon: Any, clips: dict[str, Path], tmp_path: Path) -> None:
    # the removal of the hung version outlasts the test
    d: Daemon = make_daemon("state", "--stop-grace", "600")
    app = counter_app(tmp_path / "app")
    old_id = deploy(d, app, clips["a"], "--param", "p_str=v1")
    old_pid = hang(d, old_id)

    new_id = deploy(d, app, clips["a"], "--param", "p_str=v2", "--no-wait")
    new = d.wait_for(new_id, lambda i: i["status_description"].startswith("running; removing the replaced"),
                     what="the removal of the replaced version")
    assert new["status"] == "DEPLOYMENT_IN_PROGRESS"  # not done: the old version is still there
    assert d.instance(old_id)["status"] == "REMOVAL_IN_PROGRESS"
    assert d.stop(signal.SIGKILL) == -signal.SIGKILL

    d.start()  # kills what the killed daemon left behind, brings the new version back, finishes the removal
    inst = d.wait_for("alpha", lambda i: i["health_status"] == "RUNNING", what="RUNNING after the restart")
    assert (inst["instance_id"], inst["status"]) == (new_id, "DEPLOYMENT_SUCCEEDED")
    assert d.request("GET", f"/instances/{old_id}")[0] == 404
    assert ps_rows(d) == [["alpha", new_id, "DEPLOYMENT_SUCCEEDED", "RUNNING"]]
    assert not process_alive(old_pid)
    assert [pid for pid in d.instance_pids() if process_alive(pid)] == [inst["process"]["pid"]]
