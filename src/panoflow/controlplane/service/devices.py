"""Devices: ProvisionDevice, ListDevices, DescribeDevice, UpdateDeviceMetadata, DeleteDevice."""

from __future__ import annotations

from typing import Any

from panoflow.controlplane.errors import conflict, not_found
from panoflow.controlplane.provisioning import hash_token, make_bundle
from panoflow.controlplane.service import Context, new_id, now, operation, paginate, ts
from panoflow.controlplane.store import Row

__all__ = ["get_device"]

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


def _tags(ctx: Context, arn: str) -> dict[str, str]:
    row = ctx.tx.get("tags", arn)
    return dict(row.doc) if row else {}


def _summary(ctx: Context, row: Row) -> dict[str, Any]:
    d = row.doc
    return {
        "DeviceId": row.id, "Name": row.columns["name"], "Brand": d["Brand"], "Type": d["Type"],
        "CreatedTime": ts(d["CreatedTime"]), "LastUpdatedTime": ts(d["LastUpdatedTime"]),
        "Description": d.get("Description"), "ProvisioningStatus": d["ProvisioningStatus"],
        "DeviceAggregatedStatus": row.columns["aggregated_status"], "CurrentSoftware": d.get("CurrentSoftware"),
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
                         region=ctx.region, now=t)
    doc = {"Arn": arn, "Brand": "AWS_PANORAMA", "Type": "PANORAMA_APPLIANCE", "Description": p.get("Description"),
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
    rows = ctx.tx.select("devices")
    if p.get("NameFilter"):
        rows = [r for r in rows if r.columns["name"].startswith(p["NameFilter"])]
    if p.get("DeviceAggregatedStatusFilter"):
        rows = [r for r in rows if r.columns["aggregated_status"] == p["DeviceAggregatedStatusFilter"]]
    rows.sort(key=_SORT_KEYS[p.get("SortBy", "CREATED_TIME")], reverse=p.get("SortOrder") == "DESCENDING")
    page, token = paginate(rows, p, "devices")
    return {"Devices": [_summary(ctx, r) for r in page], "NextToken": token}


@operation("DescribeDevice")
def describe_device(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    row = get_device(ctx, p["DeviceId"])
    out = _summary(ctx, row)
    out.update({"Arn": row.doc["Arn"], "DeviceConnectionStatus": row.doc["ConnectionStatus"],
                "NetworkingConfiguration": row.doc.get("NetworkingConfiguration"),
                "CurrentNetworkingStatus": row.doc.get("CurrentNetworkingStatus"),
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
    return {"DeviceId": row.id}
