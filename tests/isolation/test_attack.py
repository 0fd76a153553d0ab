"""A hostile app in the sandbox tries what issue 13 lists; every attempt must fail, and its own mounts must
work.

One probe run (module scope) collects every attempt; each test checks one of them. The launcher runs as root
here (as ``panoflow serve`` does on a device), so these are the real privilege boundaries.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from panoflow.isolation import DEFAULT_SANDBOX_UID, Mount, SandboxedProcess, SandboxSpec
from tests.isolation.probes import HostServer, require, run_probe

#: the host uid the sandbox runs as: 64000 under a root launcher (as on a device), the caller's own otherwise
UID = DEFAULT_SANDBOX_UID if os.geteuid() == 0 else os.getuid()
GID = DEFAULT_SANDBOX_UID if os.geteuid() == 0 else os.getgid()

ATTACK = r"""
import json, os, socket, sys

def attempt(fn):
    try:
        return {"ok": True, "value": fn()}
    except Exception as exc:
        return {"ok": False, "error": type(exc).__name__ + ": " + str(exc)}

def read(path):
    with open(path, "rb") as f:
        return f.read(200).decode(errors="replace")

def write(path):
    with open(path, "w") as f:
        f.write("pwned")
    return path

def connect(host, port):
    with socket.create_connection((host, port), timeout=1.5) as s:
        return s.recv(100).decode(errors="replace")

def unshare_user():
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(0x10000000) != 0:  # CLONE_NEWUSER
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))

def gateway():
    with open("/proc/net/route") as f:
        for line in f.read().splitlines()[1:]:
            fields = line.split()
            if fields[1] == "00000000":
                return socket.inet_ntoa(bytes.fromhex(fields[2])[::-1])
    return None

args = json.loads(os.environ["PROBE_ARGS"])
gw = gateway()
result = {
    "uid": os.getuid(),
    "shadow": attempt(lambda: read("/etc/shadow")),
    "gshadow": attempt(lambda: read("/etc/gshadow")),
    "token": attempt(lambda: read(args["token"])),
    "etc_write": attempt(lambda: write("/etc/x")),
    "root_write": attempt(lambda: write("/x")),
    "tmp_write": attempt(lambda: write(args["tmp_file"])),
    "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
    "cmdlines": [attempt(lambda p=p: read("/proc/%s/cmdline" % p))
                 for p in os.listdir("/proc") if p.isdigit()],
    "env": dict(os.environ),
    "host_loopback": attempt(lambda: connect("127.0.0.1", args["port"])),
    "gateway": gw,
    "host_via_gateway": attempt(lambda: connect(gw, args["port"])) if gw else None,
    "rw_write": attempt(lambda: write("/opt/aws/panorama/storage/written")),
    "rw_read": attempt(lambda: read("/opt/aws/panorama/storage/seed")),
    "ro_read": attempt(lambda: read("/panorama/app.py")),
    "ro_write": attempt(lambda: write("/panorama/app.py")),
    "host_dirs": {d: os.path.exists(d) for d in ("/root", "/home", "/var", "/work", "/run", "/srv", "/mnt")},
    "fds": sorted(int(fd) for fd in os.listdir("/proc/self/fd")),
    "passed_fd": attempt(lambda: os.write(args["fd"], b"hello through the passed fd")),
    "userns": attempt(unshare_user),
}
print(json.dumps(result), flush=True)
sys.stdin.read()
"""


@pytest.fixture(scope="module")
def attack() -> Iterator[dict[str, Any]]:
    base = Path(tempfile.mkdtemp(prefix="pf-attack-", dir="/tmp"))
    try:
        base.chmod(0o755)
        state = (
            base / "state"
        )  # the daemon's state dir: world-readable on purpose, so only the mounts protect it
        state.mkdir()
        token = state / "daemon-token"
        token.write_text("daemon-bearer-" + secrets.token_hex(8))
        token.chmod(0o644)
        code = base / "code"
        code.mkdir()
        (code / "app.py").write_text("print('app')\n")
        storage = base / "storage"
        storage.mkdir()
        (storage / "seed").write_text("seeded by the host")
        os.chown(storage, UID, GID)
        secret = "s3cr3t-" + secrets.token_hex(8)
        os.environ["PANOFLOW_TEST_DAEMON_SECRET"] = secret
        server = HostServer("0.0.0.0")
        read_end, write_end = os.pipe()
        tmp_file = f"/tmp/pf-attack-{secrets.token_hex(6)}"
        seen: dict[str, Any] = {}

        def inspect(proc: SandboxedProcess) -> None:
            app = proc.app_pid()
            assert app is not None
            seen["status"] = Path(f"/proc/{app}/status").read_text()
            seen["host_cgroup_ns"] = os.readlink(f"/proc/{app}/ns/pid") != os.readlink("/proc/self/ns/pid")

        args = {"token": str(token), "tmp_file": tmp_file, "port": server.port, "fd": write_end}
        try:
            rc, result, _ = run_probe(
                ATTACK,
                base,
                stdin_hold=inspect,
                env={"PATH": "/usr/bin:/bin", "HOME": "/tmp", "PROBE_ARGS": json.dumps(args)},
                mounts=[Mount(code, "/panorama"), Mount(storage, "/opt/aws/panorama/storage", writable=True)],
                pass_fds=[write_end],
            )
            os.close(write_end)
            write_end = -1
            passed = os.read(read_end, 200)
        finally:
            server.close()
            os.environ.pop("PANOFLOW_TEST_DAEMON_SECRET", None)
            os.close(read_end)
            if write_end >= 0:
                os.close(write_end)
        yield {
            **result,
            "rc": rc,
            "secret": secret,
            "accepted": server.accepted,
            "tmp_file": tmp_file,
            "storage": storage,
            "code": code,
            "passed": passed,
            **seen,
        }
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_probe_ran_as_unprivileged_uid(attack: dict[str, Any]) -> None:
    assert attack["rc"] == 0
    assert attack["uid"] == UID != 0
    status = dict(line.split(":", 1) for line in attack["status"].splitlines())
    assert status["Uid"].split() == [str(UID)] * 4  # real, effective, saved, fs: on the host
    assert status["Gid"].split() == [str(GID)] * 4
    assert status["Groups"].split() == []
    assert (
        int(status["CapEff"], 16) == 0 and int(status["CapPrm"], 16) == 0 and int(status["CapBnd"], 16) == 0
    )
    assert status["NoNewPrivs"].strip() == "1"
    assert attack["host_cgroup_ns"]


def test_shadow_files_are_not_there(attack: dict[str, Any]) -> None:
    assert not attack["shadow"]["ok"] and "FileNotFoundError" in attack["shadow"]["error"]
    assert not attack["gshadow"]["ok"]


def test_daemon_token_outside_the_mounts_is_unreachable(attack: dict[str, Any]) -> None:
    assert not attack["token"]["ok"], attack["token"]
    assert "FileNotFoundError" in attack["token"]["error"]


def test_cannot_write_etc_or_root(attack: dict[str, Any]) -> None:
    assert not attack["etc_write"]["ok"] and "Read-only file system" in attack["etc_write"]["error"]
    assert not attack["root_write"]["ok"]
    assert not Path("/etc/x").exists()


def test_tmp_is_private(attack: dict[str, Any]) -> None:
    assert attack["tmp_write"]["ok"]  # its own /tmp works ...
    assert not Path(attack["tmp_file"]).exists()  # ... and is not the host's


def test_sees_only_its_own_processes(attack: dict[str, Any]) -> None:
    assert len(attack["pids"]) <= 3, attack[
        "pids"
    ]  # bubblewrap's reaper, the probe (and a short-lived child)
    assert all("pytest" not in c.get("value", "") for c in attack["cmdlines"])


def test_parent_environment_is_not_inherited(attack: dict[str, Any]) -> None:
    env = attack["env"]
    assert attack["secret"] not in "".join(f"{k}={v}" for k, v in env.items())
    assert "PANOFLOW_TEST_DAEMON_SECRET" not in env
    # exactly what the spec gave, plus what bubblewrap (PWD) and Python's locale coercion (LC_CTYPE) add
    assert set(env) - {"PWD", "LC_CTYPE"} == {"PATH", "HOME", "PROBE_ARGS"}


def test_host_loopback_and_gateway_are_unreachable(attack: dict[str, Any]) -> None:
    assert not attack["host_loopback"]["ok"], attack["host_loopback"]
    if attack["host_via_gateway"] is not None:
        assert not attack["host_via_gateway"]["ok"], attack["host_via_gateway"]
    assert attack["accepted"] == 0


def test_rw_mount_works_and_reaches_the_host(attack: dict[str, Any]) -> None:
    assert attack["rw_read"] == {"ok": True, "value": "seeded by the host"}
    assert attack["rw_write"]["ok"], attack["rw_write"]
    assert (attack["storage"] / "written").read_text() == "pwned"
    assert (attack["storage"] / "written").stat().st_uid == UID


def test_ro_mount_is_readable_not_writable(attack: dict[str, Any]) -> None:
    assert attack["ro_read"] == {"ok": True, "value": "print('app')\n"}
    assert not attack["ro_write"]["ok"] and "Read-only file system" in attack["ro_write"]["error"]
    assert (attack["code"] / "app.py").read_text() == "print('app')\n"


def test_nothing_else_of_the_host_filesystem(attack: dict[str, Any]) -> None:
    assert not any(attack["host_dirs"].values()), attack["host_dirs"]


def test_only_passed_descriptors_are_open(attack: dict[str, Any]) -> None:
    assert attack["passed_fd"]["ok"]
    assert attack["passed"] == b"hello through the passed fd"
    # stdin, stdout, stderr, the passed pipe, and the one os.listdir had open
    assert len(attack["fds"]) <= 5, attack["fds"]


def test_cannot_create_user_namespaces(attack: dict[str, Any]) -> None:
    assert not attack["userns"]["ok"], attack["userns"]


def test_the_launch_is_not_the_attack_surface() -> None:
    """The sandbox's helpers run unprivileged too: nothing of the sandbox runs as root on the host."""
    base = Path(tempfile.mkdtemp(prefix="pf-attack-", dir="/tmp"))
    base.chmod(0o755)
    try:
        owners: list[int] = []

        def owners_of_tree(proc: SandboxedProcess) -> None:
            pids = [proc.pid]
            while pids:
                pid = pids.pop()
                owners.append(Path(f"/proc/{pid}").stat().st_uid)
                pids += [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]

        rc, _, _ = run_probe(
            "import sys; print('{}', flush=True); sys.stdin.read()\n", base, stdin_hold=owners_of_tree
        )
        assert rc == 0
        assert len(owners) == 4  # pasta, bwrap, bwrap's pid 1, the app
        assert set(owners) == {UID}
    finally:
        shutil.rmtree(base, ignore_errors=True)


LAUNCHER = r"""
import subprocess, sys, time
from panoflow.isolation import SandboxSpec, start
proc = start(SandboxSpec(argv=["/usr/bin/sleep", "60"], network=sys.argv[1]), die_with_parent=True)
while proc.app_pid() is None:
    time.sleep(0.02)
print("app", proc.app_pid(), flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize("network", ["nat", "none"])
def test_die_with_parent_takes_the_sandbox_down(network: str) -> None:
    require(SandboxSpec(argv=["/usr/bin/sleep", "60"], network=network))
    launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER, network], stdout=subprocess.PIPE)
    try:
        assert launcher.stdout is not None
        line = b""
        while not line.startswith(b"app "):  # after the launcher's log line
            line = launcher.stdout.readline()
            assert line, "the launcher ended before it started the sandbox"
        app = int(line.split()[1])
        assert Path(f"/proc/{app}").exists()
        launcher.kill()  # no close(), no cleanup: the launcher just dies
        launcher.wait(10)
        deadline = time.monotonic() + 5
        while Path(f"/proc/{app}").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not Path(f"/proc/{app}").exists()
    finally:
        launcher.kill()
        launcher.wait(10)
        if launcher.stdout is not None:
            launcher.stdout.close()
