"""Camera nodes from the RTSP template: CreateNodeFromTemplateJob, DescribeNodeFromTemplateJob,
ListNodeFromTemplateJobs.

A job completes at once: it creates (or reuses) the output package, registers the output version with a patch
derived from the job id, and adds one MEDIA_SOURCE node whose output is ``video_out``. Overrides then
reference it as ``<account>::<OutputPackageName>.<NodeName>``. Credentials in TemplateParameters are stored
for the device but every API answer masks them (``SAVED_AS_SECRET``), as Panorama does.
"""

from __future__ import annotations

import hashlib
from typing import Any

from panoflow.controlplane.errors import not_found, validation
from panoflow.controlplane.service.base import Context, new_id, now, operation, paginate, ts
from panoflow.controlplane.service.packages import ensure_package, register_version
from panoflow.core.redact import redact_url

__all__ = ["camera_manifest"]

#: template parameters whose values never leave the control plane through the API
SECRET_PARAMETERS = frozenset({"Username", "Password"})
_MASK = "SAVED_AS_SECRET"


def camera_manifest(package: str, version: str, node_name: str,
                    description: str | None = None) -> dict[str, Any]:
    """The package.json of a template-job camera: Panorama's RTSP camera package (as in its samples), with one
    ``media_source`` interface named after the node and output ``video_out``. The stream URL and credentials
    are not in it: the device API hands them to the device (``Cameras`` in desired state)."""
    inputs = [{"name": "username", "type": "string", "default": "", "description": "Camera username"},
              {"name": "password", "type": "string", "default": "", "description": "Camera password"},
              {"name": "streamUrl", "type": "string", "default": "", "description": "Camera streamUrl"}]
    return {"nodePackage": {
        "envelopeVersion": "2021-01-01", "name": package, "version": version,
        "description": description or "RTSP/ONVIF camera data source node package",
        "assets": [{"name": "rtsp_camera", "implementations": [
            {"type": "system", "assetUri": "source/video/camera/rtsp/source_rtsp"}]}],
        "interfaces": [{"name": node_name, "category": "media_source", "asset": "rtsp_camera",
                        "inputs": inputs,
                        "outputs": [{"name": "video_out", "type": "media",
                                     "description": "Video stream output"}]}]}}


def _masked(params: dict[str, str]) -> dict[str, str]:
    """What the API shows of template parameters: no credentials, not even inside the StreamUrl."""
    return {k: (_MASK if k in SECRET_PARAMETERS else redact_url(v) if k == "StreamUrl" else v)
            for k, v in params.items()}


@operation("CreateNodeFromTemplateJob")
def create_node_from_template_job(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    params: dict[str, str] = p["TemplateParameters"]
    if not params.get("StreamUrl"):
        raise validation("TemplateParameters must include StreamUrl for RTSP_CAMERA_STREAM",
                         "TemplateParameters.StreamUrl")
    job_id = new_id("nodeFromTemplateJob-")
    t = now()
    package = ensure_package(ctx, p["OutputPackageName"])
    patch = hashlib.sha256(job_id.encode()).hexdigest()
    manifest = camera_manifest(p["OutputPackageName"], p["OutputPackageVersion"], p["NodeName"],
                               p.get("NodeDescription"))
    register_version(ctx, package, p["OutputPackageVersion"], patch, mark_latest=True,
                     extra={"Manifest": manifest, "Assets": []})
    node_id = f"{package.columns['name']}-{p['OutputPackageVersion']}-{patch[:8]}-{p['NodeName']}"
    interface = {"Inputs": [], "Outputs": [{"Name": "video_out", "Type": "MEDIA",
                                            "Description": "The camera's RTSP stream"}]}
    ctx.tx.insert("nodes", node_id, {"Name": p["NodeName"], "Description": p.get("NodeDescription"),
                                     "PackageArn": package.doc["Arn"], "CreatedTime": t.isoformat(),
                                     "NodeInterface": interface, "TemplateParameters": params},
                  package_id=package.id, package_name=package.columns["name"],
                  package_version=p["OutputPackageVersion"], patch_version=patch, owner=ctx.account_id,
                  category="MEDIA_SOURCE")
    doc = {"NodeName": p["NodeName"], "NodeDescription": p.get("NodeDescription"),
           "OutputPackageName": p["OutputPackageName"], "OutputPackageVersion": p["OutputPackageVersion"],
           "TemplateType": p["TemplateType"], "TemplateParameters": params, "JobTags": p.get("JobTags", []),
           "Status": "SUCCEEDED", "StatusMessage": f"Created node {node_id}", "NodeId": node_id,
           "CreatedTime": t.isoformat(), "LastUpdatedTime": t.isoformat()}
    ctx.tx.insert("template_jobs", job_id, doc)
    return {"JobId": job_id}


@operation("DescribeNodeFromTemplateJob")
def describe_node_from_template_job(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    row = ctx.tx.get("template_jobs", p["JobId"])
    if row is None:
        raise not_found("nodeFromTemplateJob", p["JobId"])
    d = row.doc
    return {**{k: d.get(k) for k in ("NodeName", "NodeDescription", "OutputPackageName",
                                     "OutputPackageVersion", "TemplateType", "JobTags", "Status",
                                     "StatusMessage")},
            "JobId": row.id, "TemplateParameters": _masked(d["TemplateParameters"]),
            "CreatedTime": ts(d["CreatedTime"]), "LastUpdatedTime": ts(d["LastUpdatedTime"])}


@operation("ListNodeFromTemplateJobs")
def list_node_from_template_jobs(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    page, token = paginate(ctx.tx.select("template_jobs"), p, "template_jobs")
    return {"NodeFromTemplateJobs": [{"JobId": r.id, "NodeName": r.doc["NodeName"], "Status": r.doc["Status"],
                                      "StatusMessage": r.doc["StatusMessage"],
                                      "TemplateType": r.doc["TemplateType"],
                                      "CreatedTime": ts(r.doc["CreatedTime"])} for r in page],
            "NextToken": token}
