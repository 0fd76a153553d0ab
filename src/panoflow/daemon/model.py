"""What the daemon records about an application instance, with the Panorama API's status names."""

from __future__ import annotations

import dataclasses
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from panoflow.core.redact import redact_url

__all__ = [
    "ACTIVE_STATUSES",
    "DESIRED_STATES",
    "HEALTH",
    "STATUSES",
    "InstanceRecord",
    "new_instance_id",
    "now_iso",
]

#: DescribeApplicationInstance ``Status`` values panoflow uses
DEPLOYMENT_PENDING = "DEPLOYMENT_PENDING"
DEPLOYMENT_IN_PROGRESS = "DEPLOYMENT_IN_PROGRESS"
DEPLOYMENT_SUCCEEDED = "DEPLOYMENT_SUCCEEDED"
DEPLOYMENT_FAILED = "DEPLOYMENT_FAILED"
REMOVAL_PENDING = "REMOVAL_PENDING"
REMOVAL_IN_PROGRESS = "REMOVAL_IN_PROGRESS"
REMOVAL_SUCCEEDED = "REMOVAL_SUCCEEDED"
REMOVAL_FAILED = "REMOVAL_FAILED"
STATUSES = (
    DEPLOYMENT_PENDING, DEPLOYMENT_IN_PROGRESS, DEPLOYMENT_SUCCEEDED, DEPLOYMENT_FAILED,
    REMOVAL_PENDING, REMOVAL_IN_PROGRESS, REMOVAL_SUCCEEDED, REMOVAL_FAILED,
)
#: statuses of an instance that holds (or is about to hold) a slot, a process and its hostPorts
ACTIVE_STATUSES = (DEPLOYMENT_PENDING, DEPLOYMENT_IN_PROGRESS, DEPLOYMENT_SUCCEEDED)
#: ``HealthStatus``
RUNNING, ERROR, NOT_AVAILABLE = "RUNNING", "ERROR", "NOT_AVAILABLE"
HEALTH = (RUNNING, ERROR, NOT_AVAILABLE)
#: ``RuntimeContextStates[].DesiredState``
DESIRED_STATES = ("RUNNING", "STOPPED", "REMOVED")


def new_instance_id() -> str:
    """``applicationInstance-`` and 24 lower-case letters and digits, as Panorama's ids look."""
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return "applicationInstance-" + "".join(secrets.choice(alphabet) for _ in range(24))


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class InstanceRecord:
    """One deployment of an application (``instance.json``). Camera URIs may hold credentials: the file is
    0600 and :meth:`public` redacts them."""

    instance_id: str
    name: str
    archive: str
    created: str = field(default_factory=now_iso)
    description: str = ""
    graph: str | None = None
    cameras: dict[str, list[str]] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    has_overrides: bool = False
    replaces: str | None = None
    status: str = DEPLOYMENT_PENDING
    status_description: str = ""
    desired: str = "RUNNING"
    restarts: int = 0
    deployed_at: float | None = None
    signals: dict[str, str] = field(default_factory=dict)
    host_ports: list[int] = field(default_factory=list)
    #: the deployment's isolation flags: network ("nat"/"none"), memory_mib, cpus
    isolation: dict[str, Any] = field(default_factory=dict)
    #: the deployment's own AWS settings over the device's: role_arn (the instance's runtime role)
    aws: dict[str, Any] = field(default_factory=dict)
    #: model node -> backend (e.g. a KServe server shared by the fleet)
    model_backends: dict[str, str] = field(default_factory=dict)
    updated: str = field(default_factory=now_iso)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> InstanceRecord:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def public(self) -> dict[str, Any]:
        """The record as the API shows it (camera credentials redacted)."""
        return {
            "instance_id": self.instance_id,
            "name": self.name,
            "description": self.description,
            "archive": self.archive,
            "graph": self.graph,
            "created": self.created,
            "last_updated": self.updated,
            "status": self.status,
            "status_description": self.status_description,
            "desired_state": self.desired,
            "replaces": self.replaces,
            "cameras": {node: [redact_url(u) for u in uris] for node, uris in self.cameras.items()},
            "params": dict(self.params),
            "host_ports": list(self.host_ports),
            "signals": dict(self.signals),
        }
