"""Devices: ProvisionDevice, ListDevices, DescribeDevice, UpdateDeviceMetadata, DeleteDevice.

A claimed device that syncs is ONLINE until its ``LeaseExpirationTime`` (3 heartbeats after its last contact);
after that it is shown OFFLINE, computed when read (:func:`effective`), so no timer runs. DeleteDevice revokes
the device's credentials (its token then gets 403) and drops its logs and metrics.
"""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

from panoflow.controlplane.errors import conflict, not_found
from panoflow.controlplane.provisioning import hash_token, make_bundle
from panoflow.controlplane.service.base import Context, new_id, now, operation, paginate, ts
from panoflow.controlplane.store import Row

__all__ = ["MISSED_HEARTBEATS", "effective", "get_device", "record_contact"]

#: heartbeats a device may miss before it is shown OFFLINE
MISSED_HEARTBEATS = 3

_SORT_KEYS = {
    "DEVICE_ID": lambda r: r.id,
    "CREATED_TIME": lambda r: r.columns["created_ns"],
    "NAME": lambda r: r.columns["name"],
    "DEVICE_AGGREGATED_STATUS": lambda r: r.columns["aggregated_status"],
}


def get_device(ctx: Context, device_id: str) -> Row:
    """The device row, or ResourceNotFoundException."""
    row = ctx.tx.get("devices", device_id)
    if row is None:
        raise not_found("device", device_id)
    return row


def effective(row: Row) -> Row:
    """``row`` as it reads now: an ONLINE device whose lease expired is OFFLINE (a copy; the store is
    unchanged)."""
    lease = ts(row.doc.get("LeaseExpirationTime"))
    if row.doc.get("ConnectionStatus") != "ONLINE" or lease is None or lease > now():
        return row
    out = copy.deepcopy(row)
    out.doc["ConnectionStatus"] = "OFFLINE"
    if out.columns["aggregated_status"] == "ONLINE":
        out.columns["aggregated_status"] = "OFFLINE"
    return out


def _network(interfaces: list[dict[str, str | None]], t: dt.datetime) -> dict[str, Any]:
    status: dict[str, Any] = {"LastUpdatedTime": t.isoformat()}
    for i, iface in enumerate(interfaces[:2]):
        status[f"Ethernet{i}Status"] = {"IpAddress": iface.get("IpAddress"),
                                        "HwAddress": iface.get("HwAddress"),
                                        "ConnectionStatus": "CONNECTED" if iface.get("IpAddress") else
                                        "NOT_CONNECTED"}
    return status


def _network_out(status: dict[str, Any] | None) -> dict[str, Any] | None:
    if status is None:
        return None
    return {**status, "LastUpdatedTime": ts(status.get("LastUpdatedTime"))}


def record_contact(ctx: Context, device_id: str, *, software: str | None,
                   interfaces: list[dict[str, str | None]] | None, heartbeat_s: float,
                   claimed: bool = False) -> None:
    """A claim or sync from the device: ONLINE, its software and network, a lease of 3 heartbeats."""
    row = get_device(ctx, device_id)
    t = now()
    doc = row.doc
    doc["ConnectionStatus"] = "ONLINE"
    doc["LeaseExpirationTime"] = (t + dt.timedelta(seconds=heartbeat_s * MISSED_HEARTBEATS)).isoformat()
    doc["LastContactTime"] = t.isoformat()
    if claimed:
        doc["ProvisioningStatus"] = "SUCCEEDED"
        doc["LastUpdatedTime"] = t.isoformat()
    if software:
        doc["CurrentSoftware"] = software
    if interfaces is not None:
        doc["CurrentNetworkingStatus"] = _network(interfaces, t)
    ctx.tx.update("devices", device_id, doc, aggregated_status="ONLINE")


def _tags(ctx: Context, arn: str) -> dict[str, str]:
    row = ctx.tx.get("tags", arn)
    return dict(row.doc) if row else {}


def _summary(ctx: Context, row: Row) -> dict[str, Any]:
    d = row.doc
    return {
        "DeviceId": row.id, "Name": row.columns["name"], "Brand": d["Brand"], "Type": d["Type"],
        "CreatedTime": ts(d["CreatedTime"]), "LastUpdatedTime": ts(d["LastUpdatedTime"]),
        "Description": d.get("Description"), "ProvisioningStatus": d["ProvisioningStatus"],
        "DeviceAggregatedStatus": row.columns["aggregated_status"],
        "CurrentSoftware": d.get("CurrentSoftware"),
        "LeaseExpirationTime": ts(d.get("LeaseExpirationTime")), "LatestDeviceJob": d.get("LatestDeviceJob"),
        "Tags": _tags(ctx, d["Arn"]),
    }


@operation("ProvisionDevice")
def provision_device(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    if ctx.tx.select("devices", {"name": p["Name"]}):
        raise conflict(f"A device named {p['Name']} already exists", "device", p["Name"])
    device_id = new_id("device-")
    arn = ctx.arn("device", device_id)
    t = now()
    bundle = make_bundle(device_id=device_id, device_name=p["Name"], account_id=ctx.account_id,
                         region=ctx.region, now=t, ca_pem=ctx.ca_pem)
    doc = {"Arn": arn, "Brand": "AWS_PANORAMA", "Type": "PANORAMA_APPLIANCE",
           "Description": p.get("Description"),
           "CreatedTime": t.isoformat(), "LastUpdatedTime": t.isoformat(),
           "ProvisioningStatus": "AWAITING_PROVISIONING", "ConnectionStatus": "AWAITING_CREDENTIALS",
           "NetworkingConfiguration": p.get("NetworkingConfiguration")}
    ctx.tx.insert("devices", device_id, doc, name=p["Name"], aggregated_status="AWAITING_PROVISIONING")
    ctx.tx.insert("claim_tokens", hash_token(bundle.token), {}, device_id=device_id,
                  expires_ns=int(bundle.expires_at.timestamp() * 1e9))
    if p.get("Tags"):
        ctx.tx.insert("tags", arn, p["Tags"])
    return {"Arn": arn, "DeviceId": device_id, "IotThingName": device_id, "Status": "AWAITING_PROVISIONING",
            "Certificates": bundle.data}


@operation("ListDevices")
def list_devices(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    rows = [effective(r) for r in ctx.tx.select("devices")]
    if p.get("NameFilter"):
        rows = [r for r in rows if r.columns["name"].startswith(p["NameFilter"])]
    if p.get("DeviceAggregatedStatusFilter"):
        rows = [r for r in rows if r.columns["aggregated_status"] == p["DeviceAggregatedStatusFilter"]]
    rows.sort(key=_SORT_KEYS[p.get("SortBy", "CREATED_TIME")], reverse=p.get("SortOrder") == "DESCENDING")
    page, token = paginate(rows, p, "devices")
    return {"Devices": [_summary(ctx, r) for r in page], "NextToken": token}


@operation("DescribeDevice")
def describe_device(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    row = effective(get_device(ctx, p["DeviceId"]))
    out = _summary(ctx, row)
    out.update({"Arn": row.doc["Arn"], "DeviceConnectionStatus": row.doc["ConnectionStatus"],
                "NetworkingConfiguration": row.doc.get("NetworkingConfiguration"),
                "CurrentNetworkingStatus": _network_out(row.doc.get("CurrentNetworkingStatus")),
                "SerialNumber": row.doc.get("SerialNumber"), "LatestSoftware": row.doc.get("LatestSoftware")})
    return out


@operation("UpdateDeviceMetadata")
def update_device_metadata(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    row = get_device(ctx, p["DeviceId"])
    if "Description" in p:
        row.doc["Description"] = p["Description"]
    row.doc["LastUpdatedTime"] = now().isoformat()
    ctx.tx.update("devices", row.id, row.doc)
    return {"DeviceId": row.id}


@operation("DeleteDevice")
def delete_device(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    row = get_device(ctx, p["DeviceId"])
    ctx.tx.delete("devices", id=row.id)
    ctx.tx.delete("claim_tokens", device_id=row.id)
    ctx.tx.delete("tags", id=row.doc["Arn"])
    for cred in ctx.tx.select("device_credentials", {"device_id": row.id}):  # its token now gets 403
        ctx.tx.update("device_credentials", cred.id, revoked=1)
    ctx.tx.delete("device_logs", device_id=row.id)
    ctx.tx.delete("device_log_heads", id=row.id)
    ctx.tx.delete("device_metrics", id=row.id)
    return {"DeviceId": row.id}
