"""Device jobs: CreateJobForDevices (REBOOT, OTA), DescribeDeviceJob, ListDevicesJobs.

A job is PENDING until its device reports it. The device protocol reports IN_PROGRESS, SUCCEEDED or FAILED
(the Panorama progress values VERIFYING, REBOOTING, DOWNLOADING and COMPLETED are accepted too); the API
answers the model's UpdateProgress values, so SUCCEEDED reads COMPLETED. COMPLETED and FAILED are final: later
reports of a final job are ignored. A job is sent to its device (:func:`open_jobs`) until it is final.

OTA is pinned (docs/security.md): ``ImageVersion`` ``V`` names the wheel the operator uploaded to the asset
store at :func:`ota_wheel_key` (its SHA-256 is recorded with the job; the device downloads it, checks the
digest and installs it with ``--require-hashes``), or ``V@sha256:<hex>`` names a wheel of panoflow ``V`` on
the device's package index with that digest. A job with neither is refused.
"""

from __future__ import annotations

import re
from typing import Any

import structlog

from panoflow.controlplane.errors import not_found, validation
from panoflow.controlplane.service.base import Context, new_id, now, operation, paginate, ts
from panoflow.controlplane.service.devices import get_device

__all__ = ["DEVICE_STATUSES", "device_report", "open_jobs", "ota_wheel_key"]

log = structlog.get_logger("panoflow.controlplane.jobs")

#: what a device may report -> the UpdateProgress value the API shows
DEVICE_STATUSES = {"IN_PROGRESS": "IN_PROGRESS", "SUCCEEDED": "COMPLETED", "FAILED": "FAILED",
                   "VERIFYING": "VERIFYING", "REBOOTING": "REBOOTING", "DOWNLOADING": "DOWNLOADING",
                   "COMPLETED": "COMPLETED"}
_FINAL = frozenset({"COMPLETED", "FAILED"})
_VERSION = re.compile(r"[0-9A-Za-z][0-9A-Za-z.+!_-]{0,63}")
_HEX64 = re.compile(r"[0-9a-f]{64}")


def ota_wheel_key(account_id: str, version: str) -> str:
    """Where the operator uploads the wheel of panoflow ``version`` for OTA jobs."""
    return f"{account_id}/ota/panoflow-{version}-py3-none-any.whl"


def _ota_pin(ctx: Context, image: str) -> tuple[str, dict[str, Any]]:
    """``(version, pin)`` of an OTA ImageVersion; ValidationException when the wheel cannot be pinned."""
    field = "DeviceJobConfig.OTAJobConfig.ImageVersion"
    version, _, digest = image.partition("@sha256:")
    if not _VERSION.fullmatch(version):
        raise validation(f"ImageVersion {version[:64]!r} is not a panoflow version", field)
    if digest:
        if not _HEX64.fullmatch(digest):
            raise validation("ImageVersion V@sha256:HEX needs the 64 lower-case hex digits of the wheel's "
                             "SHA-256", field)
        return version, {"Version": version, "Sha256": digest}
    key = ota_wheel_key(ctx.account_id, version)
    info = ctx.assets.stat(key)
    if info is None or not info.sha256:
        raise validation(f"no wheel of panoflow {version} to install: upload it first "
                         f"(PUT /_panoflow/assets/{key}, signed) or name a wheel on the devices' package "
                         f"index with ImageVersion '{version}@sha256:<its SHA-256>'", field)
    return version, {"Version": version, "Sha256": info.sha256, "Key": key, "FileName": key.rsplit("/", 1)[1],
                     "Size": info.size}


def open_jobs(ctx: Context, device_id: str) -> list[dict[str, Any]]:
    """The device's jobs that are not final, oldest first, as the sync answer lists them."""
    return [{"JobId": r.id, "JobType": r.doc["JobType"], "ImageVersion": r.doc.get("ImageVersion"),
             **({"Ota": r.doc["Ota"]} if r.doc.get("Ota") else {})}
            for r in ctx.tx.select("device_jobs", {"device_id": device_id}) if r.doc["Status"] not in _FINAL]


def device_report(ctx: Context, device_id: str, job_id: str, status: str, reason: str | None) -> None:
    """Apply a device's report on one of its jobs (unknown jobs, other devices' jobs and final jobs are
    ignored)."""
    row = ctx.tx.get("device_jobs", job_id)
    if row is None or row.columns["device_id"] != device_id:
        log.warning("device_job_unknown", device_id=device_id, job_id=job_id[:64])
        return
    if row.doc["Status"] in _FINAL:
        return
    shown = DEVICE_STATUSES[status]
    if shown == row.doc["Status"] and reason == row.doc.get("Reason"):
        return
    row.doc.update({"Status": shown, "Reason": reason, "LastUpdatedTime": now().isoformat()})
    ctx.tx.update("device_jobs", row.id, row.doc)
    log.info("device_job_status", device_id=device_id, job_id=job_id, status=shown)
    latest = ctx.tx.select("device_jobs", {"device_id": device_id}, descending=True)[0]
    if latest.id == row.id:
        device = get_device(ctx, device_id)
        device.doc["LatestDeviceJob"] = {"JobType": row.doc["JobType"], "Status": shown,
                                         "ImageVersion": row.doc.get("ImageVersion")}
        ctx.tx.update("devices", device_id, device.doc)


@operation("CreateJobForDevices")
def create_job_for_devices(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    image = None
    pin: dict[str, Any] | None = None
    if p["JobType"] == "OTA":
        image = ((p.get("DeviceJobConfig") or {}).get("OTAJobConfig") or {}).get("ImageVersion")
        if not image:
            raise validation("An OTA job needs DeviceJobConfig.OTAJobConfig.ImageVersion",
                             "DeviceJobConfig.OTAJobConfig.ImageVersion")
        image, pin = _ota_pin(ctx, image)
    jobs = []
    t = now().isoformat()
    for device_id in p["DeviceIds"]:
        device = get_device(ctx, device_id)
        job_id = new_id("job-")
        doc = {"JobType": p["JobType"], "Status": "PENDING", "ImageVersion": image, "CreatedTime": t,
               "DeviceName": device.columns["name"], "DeviceArn": device.doc["Arn"],
               "DeviceType": device.doc["Type"],
               "AllowMajorVersionUpdate": ((p.get("DeviceJobConfig") or {}).get("OTAJobConfig") or {})
               .get("AllowMajorVersionUpdate")}
        if pin is not None:
            doc["Ota"] = pin
        ctx.tx.insert("device_jobs", job_id, doc, device_id=device.id)
        device.doc["LatestDeviceJob"] = {"JobType": p["JobType"], "Status": "PENDING", "ImageVersion": image}
        ctx.tx.update("devices", device.id, device.doc)
        jobs.append({"DeviceId": device.id, "JobId": job_id})
    return {"Jobs": jobs}


@operation("DescribeDeviceJob")
def describe_device_job(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    row = ctx.tx.get("device_jobs", p["JobId"])
    if row is None:
        raise not_found("job", p["JobId"])
    d = row.doc
    return {"JobId": row.id, "DeviceId": row.columns["device_id"], "DeviceArn": d["DeviceArn"],
            "DeviceName": d["DeviceName"], "DeviceType": d["DeviceType"],
            "ImageVersion": d.get("ImageVersion"),
            "JobType": d["JobType"], "Status": d["Status"], "CreatedTime": ts(d["CreatedTime"])}


@operation("ListDevicesJobs")
def list_devices_jobs(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    where = {}
    if p.get("DeviceId"):
        where["device_id"] = get_device(ctx, p["DeviceId"]).id
    page, token = paginate(ctx.tx.select("device_jobs", where), p, "device_jobs")
    return {"DeviceJobs": [{"JobId": r.id, "DeviceId": r.columns["device_id"],
                            "DeviceName": r.doc["DeviceName"], "JobType": r.doc["JobType"],
                            "CreatedTime": ts(r.doc["CreatedTime"])} for r in page],
            "NextToken": token}
