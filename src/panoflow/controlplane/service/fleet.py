"""The control plane's side of the device protocol (docs/device-protocol.md sections 1, 2 and 4).

* :func:`claim` exchanges a provisioning bundle's one-time token for a device token (only its SHA-256 is
  kept).
* :func:`authenticate_device` maps a bearer token to a device id.
* :func:`sync` applies a device's full report (software, network, instances, jobs, acked signals) and answers
  its desired state; the body is checked by :func:`parse_sync_report` first.
* :func:`append_logs` / :func:`read_logs` keep the newest :data:`LOG_CAP` lines per device as a ring;
  :func:`put_metrics` / :func:`read_metrics` the latest metrics text.

Every function runs inside the caller's transaction (``ctx.tx``);
:class:`~panoflow.controlplane.service.ControlPlane` opens it. Client mistakes are
:class:`~panoflow.controlplane.errors.ApiError` (ValidationException naming the field, AccessDeniedException,
UnauthorizedException, PayloadTooLargeException).
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import Any

import structlog

from panoflow.controlplane.errors import ApiError, access_denied, not_found, validation
from panoflow.controlplane.provisioning import hash_token
from panoflow.controlplane.service import applications, devices, jobs, tokens
from panoflow.controlplane.service.base import Context, now

__all__ = [
    "LOG_CAP", "MAX_LOG_BYTES", "MAX_LOG_LINES", "ClaimRequest", "InstanceReport", "JobReport", "SyncReport",
    "append_logs", "authenticate_device", "claim", "parse_claim", "parse_log_lines", "parse_sync_report",
    "put_metrics", "read_logs", "read_metrics", "sync",
]

log = structlog.get_logger("panoflow.controlplane.fleet")

#: log lines kept per device (the newest win)
LOG_CAP = 10_000
#: most lines in one logs call (413 beyond)
MAX_LOG_LINES = 500
#: most bytes in one logs call (413 beyond)
MAX_LOG_BYTES = 256 * 1024
_MAX_TEXT = 4096
_MAX_ITEMS = 1000
_HEALTH = frozenset({"RUNNING", "ERROR", "NOT_AVAILABLE"})
_NODE_STATUSES = frozenset({"RUNNING", "ERROR", "NOT_AVAILABLE", "PAUSED"})
_DELETED = ("this device was deleted from the control plane: stop syncing (keep running what is deployed); "
            "to manage it again, provision it again and claim the new bundle")


# --- request bodies -----------------------------------------------------------------------------------------


def _obj(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise validation(f"{field} must be a JSON object", field)
    return value


def _list(value: Any, field: str, limit: int = _MAX_ITEMS) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise validation(f"{field} must be a JSON array", field)
    if len(value) > limit:
        raise validation(f"{field} has {len(value)} items; at most {limit} are allowed", field)
    return value


def _str(value: Any, field: str, *, required: bool = False, limit: int = _MAX_TEXT) -> str | None:
    if value is None:
        if required:
            raise validation(f"{field} is required", field)
        return None
    if not isinstance(value, str) or (required and not value):
        raise validation(f"{field} must be a {'non-empty ' if required else ''}string", field)
    if len(value) > limit:
        raise validation(f"{field} is longer than {limit} characters", field)
    return value


def _enum(value: Any, field: str, allowed: frozenset[str], *, required: bool = True) -> str | None:
    text = _str(value, field, required=required)
    if text is not None and text not in allowed:
        raise validation(f"{field} must be one of {', '.join(sorted(allowed))}; got {text[:64]!r}", field)
    return text


def _software(body: dict[str, Any]) -> str | None:
    software = body.get("Software")
    if software is None:
        return None
    return _str(_obj(software, "Software").get("Version"), "Software.Version", limit=64)


@dataclass(frozen=True)
class ClaimRequest:
    """A checked claim body."""

    device_id: str
    claim_token: str
    software: str | None
    hostname: str | None


def parse_claim(body: Any) -> ClaimRequest:
    """Check a claim body (400 ValidationException naming the field)."""
    body = _obj(body, "body")
    return ClaimRequest(device_id=_str(body.get("DeviceId"), "DeviceId", required=True, limit=255) or "",
                        claim_token=_str(body.get("ClaimToken"), "ClaimToken", required=True,
                                         limit=255) or "",
                        software=_software(body), hostname=_str(body.get("Hostname"), "Hostname", limit=255))


@dataclass(frozen=True)
class InstanceReport:
    """What the device says about one application instance."""

    instance_id: str
    status: str
    health: str | None
    description: str | None
    node_statuses: dict[str, str]


@dataclass(frozen=True)
class JobReport:
    """What the device says about one job."""

    job_id: str
    status: str
    reason: str | None


@dataclass(frozen=True)
class SyncReport:
    """A checked sync body: the device's full current state."""

    software: str | None
    interfaces: list[dict[str, str | None]]
    instances: list[InstanceReport]
    jobs: list[JobReport]
    acked_signals: list[str]


def _instance(value: Any, at: str) -> InstanceReport:
    item = _obj(value, at)
    nodes = item.get("NodeStatuses") or {}
    _obj(nodes, f"{at}.NodeStatuses")
    if len(nodes) > _MAX_ITEMS:
        raise validation(f"{at}.NodeStatuses has more than {_MAX_ITEMS} nodes", f"{at}.NodeStatuses")
    node_statuses = {}
    for name, status in nodes.items():
        node_statuses[name] = _enum(status, f"{at}.NodeStatuses.{name[:64]}", _NODE_STATUSES) or ""
    description = _str(item.get("StatusDescription"), f"{at}.StatusDescription")
    return InstanceReport(
        instance_id=_str(item.get("ApplicationInstanceId"), f"{at}.ApplicationInstanceId", required=True,
                         limit=255) or "",
        status=_enum(item.get("Status"), f"{at}.Status", applications.STATUSES) or "",
        health=_enum(item.get("HealthStatus"), f"{at}.HealthStatus", _HEALTH, required=False),
        description=description[:255] if description else None, node_statuses=node_statuses)


def parse_sync_report(body: Any) -> SyncReport:
    """Check a sync body (400 ValidationException whose message and ``Fields`` name the first bad field).

    Unknown members are ignored (newer devices may send more); every list is bounded.
    """
    body = _obj(body, "body")
    interfaces = []
    for i, value in enumerate(_list(body.get("NetworkInterfaces"), "NetworkInterfaces", 16)):
        item = _obj(value, f"NetworkInterfaces.{i}")
        interfaces.append({k: _str(item.get(k), f"NetworkInterfaces.{i}.{k}", limit=255)
                           for k in ("Name", "IpAddress", "HwAddress")})
    instances = [_instance(v, f"Instances.{i}")
                 for i, v in enumerate(_list(body.get("Instances"), "Instances"))]
    reported_jobs = []
    for i, value in enumerate(_list(body.get("Jobs"), "Jobs")):
        item = _obj(value, f"Jobs.{i}")
        reported_jobs.append(JobReport(
            job_id=_str(item.get("JobId"), f"Jobs.{i}.JobId", required=True, limit=255) or "",
            status=_enum(item.get("Status"), f"Jobs.{i}.Status", frozenset(jobs.DEVICE_STATUSES)) or "",
            reason=_str(item.get("Reason"), f"Jobs.{i}.Reason")))
    acked = [_str(v, f"AckedSignals.{i}", required=True, limit=255) or ""
             for i, v in enumerate(_list(body.get("AckedSignals"), "AckedSignals"))]
    return SyncReport(software=_software(body), interfaces=interfaces, instances=instances,
                      jobs=reported_jobs, acked_signals=acked)


def parse_log_lines(body: Any) -> list[dict[str, str | None]]:
    """Check a logs body: at most :data:`MAX_LOG_LINES` lines (413 PayloadTooLargeException beyond)."""
    body = _obj(body, "body")
    lines = body.get("Lines")
    if not isinstance(lines, list):
        raise validation("Lines must be a JSON array of {Time, Instance, Node, Line} objects", "Lines")
    if len(lines) > MAX_LOG_LINES:
        raise ApiError("PayloadTooLargeException", f"{len(lines)} lines in one call; send at most "
                       f"{MAX_LOG_LINES} lines (and {MAX_LOG_BYTES // 1024} KiB) per call")
    out = []
    for i, value in enumerate(lines):
        item = _obj(value, f"Lines.{i}")
        out.append({"Time": _str(item.get("Time"), f"Lines.{i}.Time", limit=64),
                    "Instance": _str(item.get("Instance"), f"Lines.{i}.Instance", limit=255),
                    "Node": _str(item.get("Node"), f"Lines.{i}.Node", limit=255),
                    "Line": _str(item.get("Line"), f"Lines.{i}.Line", required=False,
                                 limit=MAX_LOG_BYTES) or ""})
    return out


# --- claim and authentication -------------------------------------------------------------------------------


def claim(ctx: Context, req: ClaimRequest, heartbeat_s: float,
          token_ttl_s: float = tokens.DEFAULT_TOKEN_TTL_S) -> dict[str, Any]:
    """Exchange a bundle's one-time claim token for device credentials (403 when it cannot be used)."""
    row = ctx.tx.get("claim_tokens", hash_token(req.claim_token))
    if row is None or row.columns["device_id"] != req.device_id:
        raise access_denied(f"This claim token is not valid for device {req.device_id}: use the bundle "
                            "ProvisionDevice returned for this device, or provision the device again")
    if row.columns["used_ns"] is not None:
        raise access_denied(f"The provisioning bundle of device {req.device_id} was already used (a bundle "
                            "claims once; the device keeps its credentials in STATE_DIR/cloud.json). To "
                            "start over, delete the device and provision it again")
    if row.columns["expires_ns"] <= time.time_ns():
        expired = dt.datetime.fromtimestamp(row.columns["expires_ns"] / 1e9, dt.timezone.utc)
        raise access_denied(f"The provisioning bundle of device {req.device_id} expired at "
                            f"{expired:%Y-%m-%dT%H:%M:%SZ}: delete the device and provision it again "
                            "(ProvisionDevice), then claim with the new bundle")
    device = ctx.tx.get("devices", req.device_id)
    if device is None:
        raise access_denied(_DELETED)
    ctx.tx.update("claim_tokens", row.id, used_ns=time.time_ns())
    issued = tokens.issue(ctx, device.id, token_ttl_s, ClaimedTime=now().isoformat(), Hostname=req.hostname)
    devices.record_contact(ctx, device.id, software=req.software, interfaces=None, heartbeat_s=heartbeat_s,
                           claimed=True)
    log.info("device_claimed", device_id=device.id, hostname=req.hostname, software=req.software)
    return {"DeviceId": device.id, "DeviceName": device.columns["name"], "AccountId": ctx.account_id,
            "Region": ctx.region, **issued}


def authenticate_device(ctx: Context, token: str) -> str | None:
    """The device id a bearer token belongs to; None when unknown; 403 when the device was deleted."""
    row = ctx.tx.get("device_credentials", hash_token(token))
    if row is None:
        return None
    device_id = str(row.columns["device_id"])
    if ctx.tx.get("devices", device_id) is None:
        raise access_denied(_DELETED)
    if row.columns["revoked"]:
        raise access_denied(tokens.REVOKED if row.doc.get("RevokedTime") else _DELETED)
    tokens.check(ctx, row)
    return device_id


# --- sync ---------------------------------------------------------------------------------------------------


def sync(ctx: Context, device_id: str, report: SyncReport, heartbeat_s: float) -> dict[str, Any]:
    """Apply ``report`` from ``device_id`` and answer its desired state (docs/device-protocol.md section
    2)."""
    if ctx.tx.get("devices", device_id) is None:
        raise access_denied(_DELETED)
    for item in report.instances:
        applications.device_report(ctx, device_id, item.instance_id, item.status, health=item.health,
                                   description=item.description, node_statuses=item.node_statuses)
    applications.ack_signals(ctx, device_id, report.acked_signals)
    for job in report.jobs:
        jobs.device_report(ctx, device_id, job.job_id, job.status, job.reason)
    devices.record_contact(ctx, device_id, software=report.software, interfaces=report.interfaces,
                           heartbeat_s=heartbeat_s)
    desired = applications.desired_state(ctx, device_id)
    running = [i["ApplicationInstanceId"] for i in desired if i["DesiredState"] == "RUNNING"]
    return {"DeviceId": device_id, "Now": now().isoformat(), "HeartbeatSeconds": heartbeat_s,
            "Instances": desired, "Signals": applications.open_signals(ctx, running),
            "Jobs": jobs.open_jobs(ctx, device_id)}


# --- logs and metrics ---------------------------------------------------------------------------------------


def append_logs(ctx: Context, device_id: str, lines: list[dict[str, str | None]]) -> int:
    """Append ``lines`` to the device's ring of the newest :data:`LOG_CAP` lines; returns how many were
    stored."""
    head = ctx.tx.get("device_log_heads", device_id)
    seq = int(head.columns["next_seq"]) if head else 0
    received = now().isoformat()
    for line in lines:
        slot, doc = f"{device_id}/{seq % LOG_CAP}", {**line, "ReceivedTime": received}
        if seq < LOG_CAP:  # the ring is filling up
            ctx.tx.insert("device_logs", slot, doc, device_id=device_id, seq=seq)
        else:  # overwrite the oldest line (every slot exists once seq has gone round)
            ctx.tx.update("device_logs", slot, doc, seq=seq)
        seq += 1
    if head is None:
        ctx.tx.insert("device_log_heads", device_id, {}, next_seq=seq)
    else:
        ctx.tx.update("device_log_heads", device_id, next_seq=seq)
    return len(lines)


def _known_device(ctx: Context, device_id: str) -> None:
    if ctx.tx.get("devices", device_id) is None:
        raise not_found("device", device_id)


def read_logs(ctx: Context, device_id: str, limit: int) -> list[dict[str, Any]]:
    """The newest ``limit`` lines of a device, oldest first (404 for an unknown device)."""
    _known_device(ctx, device_id)
    rows = ctx.tx.select("device_logs", {"device_id": device_id}, order_by="seq", descending=True)[:limit]
    return [r.doc for r in reversed(rows)]


def put_metrics(ctx: Context, device_id: str, text: str) -> None:
    """Keep ``text`` as the device's latest metrics."""
    doc = {"Text": text, "ReceivedTime": now().isoformat()}
    if ctx.tx.get("device_metrics", device_id) is None:
        ctx.tx.insert("device_metrics", device_id, doc)
    else:
        ctx.tx.update("device_metrics", device_id, doc, created_ns=time.time_ns())


def read_metrics(ctx: Context, device_id: str) -> dict[str, Any]:
    """``{"Text", "ReceivedTime"}`` (both None before the first metrics call); 404 for an unknown device."""
    _known_device(ctx, device_id)
    row = ctx.tx.get("device_metrics", device_id)
    return {"Text": row.doc["Text"] if row else None,
            "ReceivedTime": row.doc["ReceivedTime"] if row else None}
