"""What a sandbox is asked to be: :class:`SandboxSpec` with its :class:`Mount` and :class:`Limits`.

Plain, immutable values checked on construction (a bad value raises ``ValueError`` naming the field and the
fix). The launcher (:mod:`panoflow.isolation.process`) turns a spec into a bubblewrap/pasta command line;
nothing here touches the host.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["DEFAULT_SANDBOX_UID", "NETWORKS", "Limits", "Mount", "SandboxSpec"]

DEFAULT_SANDBOX_UID = 64000
"""The host uid (and gid) a sandbox runs as when the launcher is root and the spec names none."""

NETWORKS = ("nat", "none")

# Targets the sandbox builds itself; a mount there would hide or break them.
_RESERVED_TARGETS = (
    "/proc",
    "/dev",
    "/sys",
    "/usr",
    "/etc",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_HOSTNAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


def _absolute_inside(value: str, what: str) -> str:
    if not isinstance(value, str) or not value.startswith("/"):
        raise ValueError(f"{what} {value!r} must be an absolute path inside the sandbox (starting with '/')")
    clean = posixpath.normpath(value)
    if clean.startswith("//"):
        clean = "/" + clean.lstrip("/")
    if clean != value.rstrip("/") and value != "/":
        raise ValueError(f"{what} {value!r} must be a normalised path (no '..', '.', or '//'): use {clean!r}")
    return clean


def _port(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ValueError(f"{what} {value!r} must be a TCP port number between 1 and 65535")
    return value


@dataclass(frozen=True)
class Mount:
    """A host path shown inside the sandbox at ``target``, read-only unless ``writable``."""

    source: Path
    target: str
    writable: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "source", Path(self.source))
        if not self.source.is_absolute():
            raise ValueError(f"mount source {str(self.source)!r} must be an absolute host path")
        target = _absolute_inside(self.target, "mount target")
        if target == "/":
            raise ValueError(
                "mount target '/' is not allowed: the sandbox builds its own root; mount a directory"
            )
        for reserved in _RESERVED_TARGETS:
            if target == reserved or target.startswith(reserved + "/"):
                raise ValueError(
                    f"mount target {target!r} is inside {reserved}, which the sandbox provides itself; "
                    "mount it somewhere else (for example under /opt or /panorama)"
                )
        object.__setattr__(self, "target", target)


@dataclass(frozen=True)
class Limits:
    """Resource limits for the whole sandboxed process tree (one cgroup). ``None`` means unlimited."""

    memory_bytes: int | None = None
    cpus: float | None = None

    def __post_init__(self) -> None:
        if self.memory_bytes is not None and (
            isinstance(self.memory_bytes, bool)
            or not isinstance(self.memory_bytes, int)
            or self.memory_bytes < 1 << 20
        ):
            raise ValueError(
                f"memory limit {self.memory_bytes!r} must be a whole number of bytes, at least 1 MiB"
            )
        if self.cpus is not None and (
            isinstance(self.cpus, bool)
            or not isinstance(self.cpus, (int, float))
            or not 0.01 <= self.cpus <= 4096
        ):
            raise ValueError(f"CPU limit {self.cpus!r} must be a number of cores between 0.01 and 4096")

    @property
    def any(self) -> bool:
        """Whether any limit is set (and so a cgroup is needed)."""
        return self.memory_bytes is not None or self.cpus is not None


@dataclass(frozen=True)
class SandboxSpec:
    """One sandboxed process: what it runs, what it sees, what it may reach, and its limits.

    ``env`` is the whole environment inside (nothing of the caller's is inherited). ``inbound`` holds
    confirmed ``(containerPort, hostPort)`` rules; ``loopback_ports`` are host ``127.0.0.1`` ports made
    reachable at the same port inside (a per-instance service such as the AWS credentials endpoint).
    ``uid``/``gid`` are the host ids used when the launcher is root (default :data:`DEFAULT_SANDBOX_UID`); a
    non-root launcher runs the sandbox as itself. ``pass_fds`` are inherited with the same numbers inside.
    ``name`` names the cgroup and the log lines.
    """

    argv: Sequence[str]
    mounts: Sequence[Mount] = ()
    cwd: str = "/"
    env: Mapping[str, str] = field(default_factory=dict)
    network: str = "nat"
    inbound: Sequence[tuple[int, int]] = ()
    loopback_ports: Sequence[int] = ()
    #: (port inside, host 127.0.0.1 port) pairs: like ``loopback_ports`` with another number inside (the AWS
    #: gateway's TLS listener answers on 443 inside)
    loopback_forwards: Sequence[tuple[int, int]] = ()
    hosts: Mapping[str, str] = field(default_factory=dict)
    uid: int | None = None
    gid: int | None = None
    limits: Limits = field(default_factory=Limits)
    pass_fds: Sequence[int] = ()
    hostname: str = "panorama"
    name: str = "app"

    def __post_init__(self) -> None:
        argv = tuple(self.argv)
        if not argv or not all(isinstance(a, str) and "\0" not in a for a in argv):
            raise ValueError("argv must be a non-empty list of strings (the command run inside the sandbox)")
        object.__setattr__(self, "argv", argv)
        object.__setattr__(self, "mounts", tuple(self.mounts))
        targets = [m.target for m in self.mounts]
        duplicates = sorted({t for t in targets if targets.count(t) > 1})
        if duplicates:
            raise ValueError(f"two mounts share the target {duplicates[0]!r}: give each mount its own target")
        object.__setattr__(self, "cwd", _absolute_inside(self.cwd, "cwd"))
        env = dict(self.env)
        for key, value in env.items():
            if not isinstance(key, str) or not key or "=" in key or "\0" in key or not isinstance(value, str):
                raise ValueError(
                    f"environment variable {key!r} must be a non-empty name without '=' and a str value"
                )
            if "\0" in value:
                raise ValueError(f"environment variable {key!r} contains a NUL byte")
        object.__setattr__(self, "env", env)
        if self.network not in NETWORKS:
            raise ValueError(f"network {self.network!r} is not one of {', '.join(NETWORKS)}")
        inbound = tuple((_port(c, "containerPort"), _port(h, "hostPort")) for c, h in self.inbound)
        host_ports = [h for _, h in inbound]
        if len(set(host_ports)) != len(host_ports):
            raise ValueError(
                "two inbound rules use the same hostPort: each hostPort may forward to one containerPort"
            )
        if inbound and self.network != "nat":
            raise ValueError(
                "inbound ports need network 'nat'; with network 'none' the sandbox has no network"
            )
        object.__setattr__(self, "inbound", inbound)
        loopback = tuple(sorted({_port(p, "loopback port") for p in self.loopback_ports}))
        if loopback and self.network != "nat":
            raise ValueError(
                "loopback_ports need network 'nat'; with network 'none' the sandbox has no network"
            )
        object.__setattr__(self, "loopback_ports", loopback)
        forwards = tuple(
            (_port(i, "loopback inside port"), _port(h, "loopback host port"))
            for i, h in self.loopback_forwards
        )
        if forwards and self.network != "nat":
            raise ValueError(
                "loopback_forwards need network 'nat'; with network 'none' the sandbox has no network"
            )
        inside = [i for i, _ in forwards] + list(loopback)
        if len(set(inside)) != len(inside):
            raise ValueError("two loopback forwards use the same port inside the sandbox")
        object.__setattr__(self, "loopback_forwards", forwards)
        hosts = dict(self.hosts)
        for host, address in hosts.items():
            if not isinstance(host, str) or not re.fullmatch(r"[A-Za-z0-9_.-]{1,253}", host):
                raise ValueError(f"hosts entry {host!r} is not a valid host name")
            if not isinstance(address, str) or not re.fullmatch(r"[0-9A-Fa-f.:]{2,45}", address):
                raise ValueError(f"hosts entry {host!r}: {address!r} is not an IPv4 or IPv6 address")
        object.__setattr__(self, "hosts", hosts)
        for what in ("uid", "gid"):
            value = getattr(self, what)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**32 - 1
            ):
                raise ValueError(
                    f"{what} {value!r} must be a positive host id (the sandbox never runs as root)"
                )
        fds = tuple(self.pass_fds)
        if not all(isinstance(fd, int) and not isinstance(fd, bool) and fd > 2 for fd in fds):
            raise ValueError(
                "pass_fds must be file descriptor numbers above 2 (0-2 are stdin, stdout, stderr)"
            )
        object.__setattr__(self, "pass_fds", fds)
        if not _HOSTNAME.fullmatch(self.hostname):
            raise ValueError(
                f"hostname {self.hostname!r} must be letters, digits and '-', at most 63 characters"
            )
        if not _NAME.fullmatch(self.name):
            raise ValueError(
                f"sandbox name {self.name!r} must start with a letter or digit and use only letters, digits, "
                "'_', '.', '-' (at most 63 characters)"
            )
        if not isinstance(self.limits, Limits):
            raise TypeError("limits must be a panoflow.isolation.Limits")
