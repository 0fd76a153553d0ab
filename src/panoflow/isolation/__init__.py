"""Application sandboxes built from maintained tools: bubblewrap for namespaces and mounts, pasta for the
network, cgroups for limits.

A :class:`SandboxSpec` says what runs (argv, the whole environment, inherited fds), what it sees (system files
read-only, a filtered /etc, private /proc, /dev, /tmp, /dev/shm, plus its :class:`Mount` s), what it may reach
(outbound NAT or no network, confirmed inbound ports, chosen host loopback ports) and its :class:`Limits`.
:func:`start` runs it as an unprivileged uid and returns a :class:`SandboxedProcess`; :func:`host_problems`
says what this host lacks and how to fix it; :func:`unsafe_start` is the development-only escape hatch with no
isolation. docs/isolation.md is the policy in prose.
"""

from panoflow.isolation.host import host_problems, sandbox_ids
from panoflow.isolation.process import SandboxedProcess, start, unsafe_start
from panoflow.isolation.spec import DEFAULT_SANDBOX_UID, NETWORKS, Limits, Mount, SandboxSpec

__all__ = [
    "DEFAULT_SANDBOX_UID",
    "NETWORKS",
    "Limits",
    "Mount",
    "SandboxSpec",
    "SandboxedProcess",
    "host_problems",
    "sandbox_ids",
    "start",
    "unsafe_start",
]
