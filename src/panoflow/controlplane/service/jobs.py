"""Device jobs: CreateJobForDevices (REBOOT, OTA), DescribeDeviceJob, ListDevicesJobs.

Jobs stay PENDING until the device picks them up (the device API, part 2, updates them).
"""

from __future__ import annotations

from typing import Any

from panoflow.controlplane.errors import not_found, validation
from panoflow.controlplane.service import Context, new_id, now, operation, paginate, ts
from panoflow.controlplane.service.devices import get_device

__all__: list[str] = []


@operation("CreateJobForDevices")
def create_job_for_devices(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    image = None
    if p["JobType"] == "OTA":
        image = ((p.get("DeviceJobConfig") or {}).get("OTAJobConfig") or {}).get("ImageVersion")
        if not image:
            raise validation("An OTA job needs DeviceJobConfig.OTAJobConfig.ImageVersion",
                             "DeviceJobConfig.OTAJobConfig.ImageVersion")
    jobs = []
    t = now().isoformat()
    for device_id in p["DeviceIds"]:
        device = get_device(ctx, device_id)
        job_id = new_id("job-")
        doc = {"JobType": p["JobType"], "Status": "PENDING", "ImageVersion": image, "CreatedTime": t,
               "DeviceName": device.columns["name"], "DeviceArn": device.doc["Arn"], "DeviceType": device.doc["Type"],
               "AllowMajorVersionUpdate": ((p.get("DeviceJobConfig") or {}).get("OTAJobConfig") or {})
               .get("AllowMajorVersionUpdate")}
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
            "DeviceName": d["DeviceName"], "DeviceType": d["DeviceType"], "ImageVersion": d.get("ImageVersion"),
            "JobType": d["JobType"], "Status": d["Status"], "CreatedTime": ts(d["CreatedTime"])}


@operation("ListDevicesJobs")
def list_devices_jobs(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    where = {}
    if p.get("DeviceId"):
        where["device_id"] = get_device(ctx, p["DeviceId"]).id
    page, token = paginate(ctx.tx.select("device_jobs", where), p, "device_jobs")
    return {"DeviceJobs": [{"JobId": r.id, "DeviceId": r.columns["device_id"], "DeviceName": r.doc["DeviceName"],
                            "JobType": r.doc["JobType"], "CreatedTime": ts(r.doc["CreatedTime"])} for r in page],
            "NextToken": token}
