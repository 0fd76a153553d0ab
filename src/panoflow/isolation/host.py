"""What this host lacks to run a given sandbox, each problem with the command that fixes it.

:func:`host_problems` checks the helpers (bubblewrap, pasta), user namespaces (sysctls, then a real probe run
as the sandbox's uid), ``/dev/net/tun``, cgroups for the requested limits, every mount source (readable, and
writable where asked, by the sandbox's uid: the first directory in the way is named) and every inbound
hostPort (free, and bindable by an unprivileged process). :func:`sandbox_ids` says which host ids a sandbox
runs as.
"""

from __future__ import annotations

import errno
import functools
import os
import shutil
import socket
import subprocess
from pathlib import Path

from panoflow.isolation.cgroups import cgroup_problems
from panoflow.isolation.layout import Tools
from panoflow.isolation.perms import blocking_ancestor, can_access
from panoflow.isolation.spec import DEFAULT_SANDBOX_UID, SandboxSpec

__all__ = ["drop_privileges", "find_tools", "host_problems", "sandbox_ids"]

_INSTALL = "apt-get install bubblewrap passt"


def sandbox_ids(spec: SandboxSpec) -> tuple[int, int]:
    """The host uid and gid the sandbox runs as: ``spec.uid``/``gid`` (default 64000) when the launcher is
    root, otherwise the launcher's own ids."""
    if os.geteuid() != 0:
        return os.getuid(), os.getgid()
    uid = spec.uid if spec.uid is not None else DEFAULT_SANDBOX_UID
    return uid, spec.gid if spec.gid is not None else uid


def drop_privileges(uid: int, gid: int) -> None:
    """In the child, before exec: become ``uid``/``gid`` with no supplementary groups (only when root)."""
    if os.geteuid() == 0:
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)


@functools.lru_cache(maxsize=1)
def _bwrap_disables_userns(bwrap: str) -> bool:
    try:
        out = subprocess.run(
            [bwrap, "--help"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "--disable-userns" in out


def find_tools() -> Tools | None:
    """The helpers on PATH (bwrap is required; pasta only for network 'nat'), or None without bwrap."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return None
    bwrap = os.path.abspath(bwrap)
    pasta = shutil.which("pasta")  # not resolved: pasta is a link to passt, which looks at its argv[0]
    # optional (the device's address)
    nft = shutil.which("nft") or shutil.which("nft", path="/usr/sbin:/sbin")
    return Tools(bwrap, os.path.abspath(pasta) if pasta else None, _bwrap_disables_userns(bwrap),
                 os.path.abspath(nft) if nft else None)


def _read_int(path: str) -> int | None:
    try:
        return int(Path(path).read_text().strip())
    except (OSError, ValueError):
        return None


def _userns_sysctl_problems() -> list[str]:
    problems = []
    if _read_int("/proc/sys/user/max_user_namespaces") == 0:
        problems.append(
            "user namespaces are disabled (user.max_user_namespaces = 0): sysctl -w "
            "user.max_user_namespaces=15000"
        )
    if _read_int("/proc/sys/kernel/unprivileged_userns_clone") == 0:
        problems.append(
            "unprivileged user namespaces are disabled (kernel.unprivileged_userns_clone = 0): "
            "sysctl -w kernel.unprivileged_userns_clone=1"
        )
    if _read_int("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") == 1:
        problems.append(
            "AppArmor restricts unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns = "
            "1): sysctl -w kernel.apparmor_restrict_unprivileged_userns=0, or install an AppArmor profile "
            "that allows userns for bwrap and pasta"
        )
    return problems


_probed: set[tuple[str, int, int]] = set()


def _probe(what: str, argv: list[str], uid: int, gid: int) -> str | None:
    """Run ``argv`` as the sandbox's ids; None when it worked (remembered), else its error output."""
    key = (what, uid, gid)
    if key in _probed:
        return None
    true = shutil.which("true") or "/bin/true"
    try:
        result = subprocess.run(
            [*argv, os.path.realpath(true)],
            capture_output=True,
            text=True,
            timeout=15,
            env={},
            preexec_fn=lambda: drop_privileges(uid, gid),
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if result.returncode == 0:
        _probed.add(key)
        return None
    lines = [line for line in result.stderr.splitlines() if "syslog" not in line]
    return " / ".join(lines[-3:]) or f"exit status {result.returncode}"


def _tun_problems(uid: int, gid: int) -> list[str]:
    tun = Path("/dev/net/tun")
    if not tun.exists():
        return ["/dev/net/tun is missing (pasta needs it for the sandbox's network): modprobe tun"]
    if not can_access(tun, uid, gid, os.R_OK | os.W_OK):
        fix = ('chmod 0666 /dev/net/tun (Debian\'s udev default; a udev rule KERNEL=="tun", MODE="0666" '
               'keeps it)')
        return [f"/dev/net/tun is not usable by uid {uid} (pasta runs as the sandbox's uid): {fix}"]
    return []


def _port_problems(spec: SandboxSpec) -> list[str]:
    problems = []
    start = _read_int("/proc/sys/net/ipv4/ip_unprivileged_port_start")
    for _, host_port in spec.inbound:
        if start is not None and host_port < start:
            problems.append(
                f"hostPort {host_port} is below net.ipv4.ip_unprivileged_port_start ({start}) and the "
                "sandbox's network runs unprivileged: sysctl -w "
                f"net.ipv4.ip_unprivileged_port_start={host_port}, or confirm a hostPort of 1024 or above"
            )
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("0.0.0.0", host_port))
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    problems.append(
                        f"hostPort {host_port} is already in use on this host: stop what listens there "
                        f"(ss -ltnp 'sport = :{host_port}' shows it) or confirm another hostPort"
                    )
    return problems


def _mount_problems(spec: SandboxSpec, uid: int | None, gid: int | None) -> list[str]:
    problems = []
    who = f"uid {uid}" if uid is not None else "this user"
    for mount in spec.mounts:
        if not mount.source.exists():
            problems.append(f"mount source {mount.source} (for {mount.target}) does not exist: create it")
            continue
        blocker = blocking_ancestor(mount.source, uid, gid, write=mount.writable)
        if blocker is None:
            continue
        source = Path(os.path.realpath(mount.source))
        if blocker != source:
            problems.append(
                f"mount source {mount.source} (for {mount.target}) cannot be reached by the sandbox's {who}: "
                f"{blocker} does not let it through (chmod o+x {blocker}, or move the files)"
            )
        elif mount.writable and can_access(source, uid, gid, os.R_OK | (os.X_OK if source.is_dir() else 0)):
            fix = f"chown {uid}:{gid} {source}" if uid is not None else f"chmod u+w {source}"
            problems.append(
                f"mount source {mount.source} (for {mount.target}) is not writable by the sandbox's {who}: "
                f"{fix}"
            )
        else:
            problems.append(
                f"mount source {mount.source} (for {mount.target}) is not readable by the sandbox's {who}: "
                f"chmod o+r{'x' if source.is_dir() else ''} {source}"
            )
    return problems


def host_problems(spec: SandboxSpec) -> list[str]:
    """Everything that stops ``spec`` from starting here, one line each with its fix; empty when it can
    start."""
    tools = find_tools()
    problems = []
    if tools is None:
        problems.append(f"bubblewrap (bwrap) is not installed: {_INSTALL}")
    if spec.network == "nat" and (tools is None or tools.pasta is None):
        problems.append(f"pasta is not installed (the sandbox's user-mode network): {_INSTALL}")
    problems += _userns_sysctl_problems()
    uid, gid = sandbox_ids(spec)
    if spec.network == "nat":
        problems += _tun_problems(uid, gid)
    problems += cgroup_problems(spec.limits)
    root = os.geteuid() == 0
    problems += _mount_problems(spec, uid if root else None, gid if root else None)
    problems += _port_problems(spec)
    if problems or tools is None:
        return problems
    failure = _probe("bwrap", [tools.bwrap, "--unshare-all", "--ro-bind", "/", "/", "--"], uid, gid)
    if failure:
        problems.append(f"bubblewrap cannot create a sandbox as uid {uid}: {failure}")
    elif spec.network == "nat" and tools.pasta:
        failure = _probe("pasta", [tools.pasta, "--config-net", "--quiet", "--foreground", "--"], uid, gid)
        if failure:
            problems.append(f"pasta cannot create the sandbox's network as uid {uid}: {failure}")
    return problems
