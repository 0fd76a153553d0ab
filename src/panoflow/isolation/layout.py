"""The command line that builds a sandbox: pasta (user-mode network) around bubblewrap (namespaces and
mounts).

Nothing here starts a process. :func:`command` returns the argv for a
:class:`~panoflow.isolation.spec.SandboxSpec` and :func:`etc_files` the generated ``/etc`` files (hosts,
hostname, passwd, group, resolv.conf) that bubblewrap copies in from inherited file descriptors.
docs/isolation.md describes the resulting view; keep the two in step.
"""

from __future__ import annotations

import ipaddress
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from panoflow.isolation.perms import can_access
from panoflow.isolation.spec import SandboxSpec

__all__ = ["DNS_FORWARD_ADDRESS", "Tools", "command", "etc_files", "hidden_etc_entries", "levels_to_app",
           "self_nat_rules"]

DNS_FORWARD_ADDRESS = "169.254.1.53"
"""Where the sandbox sends DNS queries when the host's resolver is on its loopback (pasta forwards them)."""

# /etc entries never shown inside, whoever may read them on the host.
_HIDDEN_ETC = re.compile(r"(shadow|^sudo|^panoflow$|^\.pwd\.lock$|^security$)")
_GENERATED_ETC = ("hosts", "hostname", "passwd", "group", "resolv.conf")
_SYSTEM_DIRS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
_LOW_PORTS = 'echo 0 > /proc/sys/net/ipv4/ip_unprivileged_port_start; exec "$@"'
# the same, after loading the nftables ruleset "$1" with the nft at "$2"
_SELF_NAT = 'printf "%s\\n" "$1" | "$2" -f -; shift 2; ' + _LOW_PORTS


@dataclass(frozen=True)
class Tools:
    """Absolute paths of the helpers, and what this bubblewrap supports."""

    bwrap: str
    pasta: str | None
    disable_userns: bool  # bwrap >= 0.8: --disable-userns
    nft: str | None = None  # nftables: lets the app reach its own hostPort at the device's address


def levels_to_app(spec: SandboxSpec) -> int:
    """How many processes lie between the launched one and the app: pasta, bwrap's monitor, bwrap's pid 1."""
    return 3 if spec.network == "nat" else 2


def hidden_etc_entries(etc: Path, uid: int | None, gid: int | None) -> list[str]:
    """Names of ``etc``'s entries kept out of the sandbox: secrets by name, and anything ``uid`` could not
    read."""
    hidden = []
    for name in sorted(os.listdir(etc)):
        path = etc / name
        if _HIDDEN_ETC.search(name) or not path.is_symlink() and not can_access(path, uid, gid, os.R_OK):
            hidden.append(name)
    return hidden


def _nameservers(resolv: str) -> list[str]:
    servers = []
    for line in resolv.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            servers.append(parts[1])
    return servers


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%")[0]).is_loopback
    except ValueError:
        return False


def needs_dns_forward(spec: SandboxSpec, resolv_conf: Path = Path("/etc/resolv.conf")) -> bool:
    """Whether the host resolver is on loopback (systemd-resolved's 127.0.0.53): the sandbox cannot reach it
    there."""
    if spec.network != "nat":
        return False
    try:
        servers = _nameservers(resolv_conf.read_text())
    except OSError:
        return False
    return bool(servers) and any(_is_loopback(s) for s in servers)


def etc_files(
    spec: SandboxSpec,
    uid: int,
    gid: int,
    *,
    etc: Path = Path("/etc"),
    dns_forward: bool = False,
) -> dict[str, bytes]:
    """The generated files in the sandbox's /etc, by name: hosts (+ ``spec.hosts``), hostname, passwd and
    group (with an entry for the sandbox's uid/gid), resolv.conf (the host's, pointed at pasta's forwarder
    when needed)."""

    def read(name: str) -> str:
        try:
            return (etc / name).read_text(errors="replace")
        except OSError:
            return ""

    hosts = read("hosts")
    if hosts and not hosts.endswith("\n"):
        hosts += "\n"
    hosts += f"127.0.1.1\t{spec.hostname}\n"
    hosts += "".join(f"{address}\t{name}\n" for name, address in spec.hosts.items())
    passwd = read("passwd")
    if not any(line.split(":")[2:3] == [str(uid)] for line in passwd.splitlines()):
        passwd += f"panorama:x:{uid}:{gid}:Panorama application:/tmp:/usr/sbin/nologin\n"
    group = read("group")
    if not any(line.split(":")[2:3] == [str(gid)] for line in group.splitlines()):
        group += f"panorama:x:{gid}:\n"
    resolv = read("resolv.conf")
    if dns_forward:
        kept = [line for line in resolv.splitlines() if not line.strip().startswith("nameserver")]
        resolv = "\n".join([f"nameserver {DNS_FORWARD_ADDRESS}", *kept]) + "\n"
    return {
        "hosts": hosts.encode(),
        "hostname": f"{spec.hostname}\n".encode(),
        "passwd": passwd.encode(),
        "group": group.encode(),
        "resolv.conf": resolv.encode(),
    }


def _system_args(root: Path) -> list[str]:
    args = ["--ro-bind", str(root / "usr"), "/usr"]
    for name in _SYSTEM_DIRS:
        path = root / name
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), f"/{name}"]
        elif path.is_dir():
            args += ["--ro-bind", str(path), f"/{name}"]
    return args


def _etc_args(etc: Path, uid: int | None, gid: int | None, data_fds: Mapping[str, int]) -> list[str]:
    args = ["--perms", "0755", "--tmpfs", "/etc"]
    hidden = set(hidden_etc_entries(etc, uid, gid))
    for name in sorted(os.listdir(etc)):
        if name in hidden or name in data_fds:
            continue
        path = etc / name
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), f"/etc/{name}"]
            continue
        try:
            mode = path.stat().st_mode
        except OSError:
            continue
        if stat.S_ISDIR(mode) or stat.S_ISREG(mode):
            args += ["--ro-bind", str(path), f"/etc/{name}"]
    for name, fd in sorted(data_fds.items()):
        args += ["--perms", "0644", "--ro-bind-data", str(fd), f"/etc/{name}"]
    return args


def _mount_args(spec: SandboxSpec) -> list[str]:
    args = []
    for mount in sorted(spec.mounts, key=lambda m: m.target.count("/")):
        args += ["--bind" if mount.writable else "--ro-bind", str(mount.source), mount.target]
    return args


def self_nat_rules(spec: SandboxSpec) -> str | None:
    """An nftables ruleset for the sandbox's network namespace: a connection to one of its own non-loopback
    addresses (the device's address, which pasta copies in) on a ``hostPort`` goes to the app's
    ``containerPort``, as on the appliance. None where every ``hostPort`` is its ``containerPort`` (the app's
    listener answers)."""
    pairs = sorted((host, container) for container, host in spec.inbound if container != host)
    if not pairs:
        return None
    rules = [f"  ip daddr != 127.0.0.0/8 fib daddr type local tcp dport {host} redirect to :{container}"
             for host, container in pairs]
    return "\n".join(["table ip panoflow {", " chain output {",
                      "  type nat hook output priority -100; policy accept;", *rules, " }", "}"])


def _pasta_args(spec: SandboxSpec, pasta: str, nft: str | None, dns_forward: bool) -> list[str]:
    inbound = ",".join(f"{host}:{container}" for container, host in spec.inbound) or "none"
    # Inside, 127.0.0.1:hostPort reaches the host's hostPort (and so, through -t, the app's own
    # containerPort), except where hostPort == containerPort: the app's own listener already answers there.
    to_host = [str(p) for p in sorted({*spec.loopback_ports, *(h for c, h in spec.inbound if c != h)})]
    to_host += [f"{inside}:{host}" for inside, host in spec.loopback_forwards]
    args = [pasta, "--config-net", "--quiet", "--foreground", "--no-map-gw"]
    args += ["-t", inbound, "-u", "none", "-T", ",".join(to_host) or "none", "-U", "none"]
    if dns_forward:
        args += ["--dns-forward", DNS_FORWARD_ADDRESS]
    # pasta's command holds CAP_NET_ADMIN in the sandbox's own network namespace: there, let the app bind any
    # port (a containerPort of 80, as Panorama's containers ran as root) and reach its hostPorts at the
    # device's address (nftables, where installed), then become bubblewrap (same pid)
    rules = self_nat_rules(spec) if nft else None
    if rules is not None and nft is not None:
        return [*args, "--", "/bin/sh", "-c", _SELF_NAT, "sh", rules, nft]
    return [*args, "--", "/bin/sh", "-c", _LOW_PORTS, "sh"]


def command(
    spec: SandboxSpec,
    tools: Tools,
    *,
    uid: int,
    gid: int,
    data_fds: Mapping[str, int],
    dns_forward: bool = False,
    root: Path = Path("/"),
) -> list[str]:
    """The full argv that starts ``spec``: ``[pasta ... -- sh -c SCRIPT sh [RULES NFT]] bwrap ... --
    spec.argv``.

    ``uid``/``gid`` are the ids the sandbox runs as (its host ids); ``data_fds`` maps generated /etc file
    names to inherited descriptors holding their contents.
    """
    bwrap = [tools.bwrap, *_system_args(root), *_etc_args(root / "etc", uid, gid, data_fds)]
    bwrap += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/dev/shm", "--tmpfs", "/tmp"]
    bwrap += _mount_args(spec)
    bwrap += ["--remount-ro", "/etc", "--remount-ro", "/", "--chdir", spec.cwd]
    bwrap += ["--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    if spec.network == "none":
        bwrap += ["--unshare-net"]
    if tools.disable_userns:
        bwrap += ["--disable-userns"]
    bwrap += ["--hostname", spec.hostname, "--uid", str(uid), "--gid", str(gid)]
    bwrap += ["--die-with-parent", "--new-session", "--cap-drop", "ALL", "--", *spec.argv]
    if spec.network == "nat":
        if tools.pasta is None:
            raise ValueError("network 'nat' needs pasta")
        return [*_pasta_args(spec, tools.pasta, tools.nft, dns_forward), *bwrap]
    return bwrap
