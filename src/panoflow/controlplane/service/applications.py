"""Application instances: Create/Describe/DescribeDetails/List/Remove, node instances, dependencies, signals.

Without a device (part 1) an instance stays DEPLOYMENT_PENDING with HealthStatus NOT_AVAILABLE until the device
API reports through :func:`report_status`. Replacing an instance (ApplicationInstanceIdToReplace) creates the new
one and moves the old one to REMOVAL_PENDING with desired state REMOVED.
"""

from __future__ import annotations

from typing import Any

from panoflow.controlplane.errors import ApiError, conflict, not_found, validation
from panoflow.controlplane.service import Context, new_id, now, operation, paginate, ts
from panoflow.controlplane.service.packages import latest_patch
from panoflow.controlplane.store import Row
from panoflow.core.manifest import NodeGraph, parse_graph, parse_overrides
from panoflow.exceptions import Problem

__all__ = ["report_status"]

#: ListApplicationInstances' aggregate status filters
_AGGREGATES = {
    "PROCESSING_DEPLOYMENT": {"DEPLOYMENT_PENDING", "DEPLOYMENT_REQUESTED", "DEPLOYMENT_IN_PROGRESS"},
    "PROCESSING_REMOVAL": {"REMOVAL_PENDING", "REMOVAL_REQUESTED", "REMOVAL_IN_PROGRESS"},
}
_REMOVING = _AGGREGATES["PROCESSING_REMOVAL"] | {"REMOVAL_SUCCEEDED"}
_STATUSES = frozenset({"DEPLOYMENT_PENDING", "DEPLOYMENT_REQUESTED", "DEPLOYMENT_IN_PROGRESS", "DEPLOYMENT_ERROR",
                       "DEPLOYMENT_SUCCEEDED", "REMOVAL_PENDING", "REMOVAL_REQUESTED", "REMOVAL_IN_PROGRESS",
                       "REMOVAL_FAILED", "REMOVAL_SUCCEEDED", "DEPLOYMENT_FAILED"})


def _manifest_error(member: str, problems: tuple[Problem, ...]) -> ApiError:
    errors = [p for p in problems if p.severity == "error"]
    fields = [{"Name": f"{member}#{p.pointer}", "Message": p.message} for p in errors[:10]]
    first = errors[0]
    message = (f"{len(errors)} problem(s) in {member}; first at JSON pointer '{first.pointer or '/'}': "
               f"{first.message}" + (f" (hint: {first.hint})" if first.hint else ""))
    return ApiError("ValidationException", message, Reason="FIELD_VALIDATION_FAILED", Fields=fields)


def _check_manifests(p: dict[str, Any]) -> NodeGraph:
    graph = parse_graph(p["ManifestPayload"]["PayloadData"].encode("utf-8"), "ManifestPayload.PayloadData")
    if graph.model is None:
        raise _manifest_error("ManifestPayload.PayloadData", graph.problems)
    overrides = (p.get("ManifestOverridesPayload") or {}).get("PayloadData")
    if overrides:
        parsed = parse_overrides(overrides.encode("utf-8"), "ManifestOverridesPayload.PayloadData")
        if parsed.model is None:
            raise _manifest_error("ManifestOverridesPayload.PayloadData", parsed.problems)
    return graph.model


def _node_instances(ctx: Context, graph: NodeGraph) -> list[dict[str, Any]]:
    versions = {ref.qualified: ref.version for ref in graph.packages}
    out = []
    for node in graph.nodes:
        if node.is_parameter:
            continue
        package, _, _iface = node.interface.partition(".")
        account, _, name = package.partition("::")
        item = {"NodeInstanceId": node.name, "NodeName": node.name,
                "PackageName": name, "PackageVersion": versions.get(package), "CurrentStatus": "NOT_AVAILABLE"}
        pkg = ctx.tx.select("packages", {"owner": account, "name": name})
        if pkg and item["PackageVersion"]:
            ver = latest_patch(ctx, pkg[0].id, item["PackageVersion"])
            item["PackagePatchVersion"] = ver.columns["patch"] if ver else None
        out.append(item)
    return out


def _get(ctx: Context, instance_id: str) -> Row:
    row = ctx.tx.get("application_instances", instance_id)
    if row is None:
        raise not_found("applicationInstance", instance_id)
    return row


@operation("CreateApplicationInstance")
def create_application_instance(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    device = ctx.tx.get("devices", p["DefaultRuntimeContextDevice"])
    if device is None:
        raise validation(f"Device {p['DefaultRuntimeContextDevice']} does not exist", "DefaultRuntimeContextDevice")
    graph = _check_manifests(p)
    old = None
    if p.get("ApplicationInstanceIdToReplace"):
        old = ctx.tx.get("application_instances", p["ApplicationInstanceIdToReplace"])
        if old is None:
            raise validation(f"Application instance {p['ApplicationInstanceIdToReplace']} does not exist",
                             "ApplicationInstanceIdToReplace")
        if old.columns["status"] in _REMOVING:
            raise conflict(f"Application instance {old.id} is already being removed", "applicationInstance", old.id)
    instance_id = new_id("applicationInstance-")
    arn = ctx.arn("applicationInstance", instance_id)
    t = now().isoformat()
    doc = {"Arn": arn, "Name": p.get("Name"), "Description": p.get("Description"),
           "DefaultRuntimeContextDeviceName": device.columns["name"], "RuntimeRoleArn": p.get("RuntimeRoleArn"),
           "ApplicationInstanceIdToReplace": p.get("ApplicationInstanceIdToReplace"),
           "ManifestPayload": p["ManifestPayload"], "ManifestOverridesPayload": p.get("ManifestOverridesPayload"),
           "HealthStatus": "NOT_AVAILABLE", "StatusDescription": "Waiting for the device to deploy",
           "CreatedTime": t, "LastUpdatedTime": t, "RuntimeContextStates": [],
           "NodeInstances": _node_instances(ctx, graph),
           "Dependencies": [{"Name": ref.name, "PackageVersion": ref.version, "Owner": ref.account}
                            for ref in graph.packages]}
    ctx.tx.insert("application_instances", instance_id, doc, device_id=device.id, status="DEPLOYMENT_PENDING")
    if p.get("Tags"):
        ctx.tx.insert("tags", arn, p["Tags"])
    if old is not None:
        _request_removal(ctx, old, f"Replaced by {instance_id}")
    return {"ApplicationInstanceId": instance_id}


def _request_removal(ctx: Context, row: Row, description: str) -> None:
    row.doc.update({"StatusDescription": description, "DesiredState": "REMOVED",
                    "LastUpdatedTime": now().isoformat()})
    ctx.tx.update("application_instances", row.id, row.doc, status="REMOVAL_PENDING")


def _tags(ctx: Context, arn: str) -> dict[str, str]:
    tag_row = ctx.tx.get("tags", arn)
    return dict(tag_row.doc) if tag_row else {}


def _summary(ctx: Context, row: Row) -> dict[str, Any]:
    d = row.doc
    return {"ApplicationInstanceId": row.id, "Arn": d["Arn"], "Name": d.get("Name"),
            "Description": d.get("Description"), "DefaultRuntimeContextDevice": row.columns["device_id"],
            "DefaultRuntimeContextDeviceName": d["DefaultRuntimeContextDeviceName"], "Status": row.columns["status"],
            "HealthStatus": d["HealthStatus"], "StatusDescription": d.get("StatusDescription"),
            "CreatedTime": ts(d["CreatedTime"]), "LastUpdatedTime": ts(d["LastUpdatedTime"]),
            "RuntimeContextStates": [{**s, "DeviceReportedTime": ts(s["DeviceReportedTime"])}
                                     for s in d["RuntimeContextStates"]],
            "RuntimeRoleArn": d.get("RuntimeRoleArn"),
            "ApplicationInstanceIdToReplace": d.get("ApplicationInstanceIdToReplace"),
            "Tags": _tags(ctx, d["Arn"])}


@operation("DescribeApplicationInstance")
def describe_application_instance(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    return _summary(ctx, _get(ctx, p["ApplicationInstanceId"]))


@operation("DescribeApplicationInstanceDetails")
def describe_application_instance_details(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    row = _get(ctx, p["ApplicationInstanceId"])
    d = row.doc
    return {"ApplicationInstanceId": row.id, "Name": d.get("Name"), "Description": d.get("Description"),
            "DefaultRuntimeContextDevice": row.columns["device_id"], "CreatedTime": ts(d["CreatedTime"]),
            "ManifestPayload": d["ManifestPayload"], "ManifestOverridesPayload": d.get("ManifestOverridesPayload"),
            "ApplicationInstanceIdToReplace": d.get("ApplicationInstanceIdToReplace")}


@operation("ListApplicationInstances")
def list_application_instances(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    where = {"device_id": p["DeviceId"]} if p.get("DeviceId") else {}
    rows = ctx.tx.select("application_instances", where)
    wanted = p.get("StatusFilter")
    if wanted:
        allowed = _AGGREGATES.get(wanted, {wanted})
        rows = [r for r in rows if r.columns["status"] in allowed]
    page, token = paginate(rows, p, "application_instances")
    return {"ApplicationInstances": [_summary(ctx, r) for r in page], "NextToken": token}


@operation("ListApplicationInstanceNodeInstances")
def list_node_instances(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    row = _get(ctx, p["ApplicationInstanceId"])
    items = row.doc["NodeInstances"]
    page, token = paginate(items, p, f"nodes/{row.id}")
    return {"NodeInstances": page, "NextToken": token}


@operation("ListApplicationInstanceDependencies")
def list_dependencies(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    row = _get(ctx, p["ApplicationInstanceId"])
    objects = []
    for dep in row.doc["Dependencies"]:
        pkg = ctx.tx.select("packages", {"owner": dep["Owner"], "name": dep["Name"]})
        ver = latest_patch(ctx, pkg[0].id, dep["PackageVersion"]) if pkg else None
        # PatchVersion is required by the model: a package nobody registered here says so instead
        objects.append({"Name": dep["Name"], "PackageVersion": dep["PackageVersion"],
                        "PatchVersion": ver.columns["patch"] if ver else "unregistered"})
    page, token = paginate(objects, p, f"deps/{row.id}")
    return {"PackageObjects": page, "NextToken": token}


@operation("RemoveApplicationInstance")
def remove_application_instance(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    row = _get(ctx, p["ApplicationInstanceId"])
    if row.columns["status"] in _REMOVING:
        raise conflict(f"Application instance {row.id} is already {row.columns['status']}", "applicationInstance",
                       row.id)
    _request_removal(ctx, row, "Removal requested")
    return {}


@operation("SignalApplicationInstanceNodeInstances")
def signal_node_instances(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    row = _get(ctx, p["ApplicationInstanceId"])
    known = {n["NodeInstanceId"] for n in row.doc["NodeInstances"]}
    for i, signal in enumerate(p["NodeSignals"]):
        if signal["NodeInstanceId"] not in known:
            raise validation(f"Node instance {signal['NodeInstanceId']} is not part of {row.id}",
                             f"NodeSignals.{i + 1}.NodeInstanceId")
    t = now().isoformat()
    for signal in p["NodeSignals"]:
        ctx.tx.insert("signals", new_id("signal-"), {"CreatedTime": t}, instance_id=row.id,
                      node_instance_id=signal["NodeInstanceId"], signal=signal["Signal"], delivered=0)
    return {"ApplicationInstanceId": row.id}


def report_status(ctx: Context, instance_id: str, status: str, *, health: str | None,
                  description: str | None, runtime_states: list[dict[str, Any]] | None,
                  node_statuses: dict[str, str] | None) -> None:
    """Apply a device's report to an instance (see :meth:`ControlPlane.report_application_status`)."""
    if status not in _STATUSES:
        raise ValueError(f"not an ApplicationInstanceStatus: {status!r}")
    row = _get(ctx, instance_id)
    t = now().isoformat()
    row.doc["LastUpdatedTime"] = t
    if health is not None:
        row.doc["HealthStatus"] = health
    if description is not None:
        row.doc["StatusDescription"] = description
    if runtime_states is not None:
        row.doc["RuntimeContextStates"] = [{**s, "DeviceReportedTime": s.get("DeviceReportedTime", t)}
                                           for s in runtime_states]
    for node in row.doc["NodeInstances"]:
        if node_statuses and node["NodeInstanceId"] in node_statuses:
            node["CurrentStatus"] = node_statuses[node["NodeInstanceId"]]
    if status == "REMOVAL_SUCCEEDED":
        row.doc["HealthStatus"] = "NOT_AVAILABLE"
    ctx.tx.update("application_instances", row.id, row.doc, status=status)
    replaced = row.doc.get("ApplicationInstanceIdToReplace")
    if status == "DEPLOYMENT_SUCCEEDED" and replaced:
        old = ctx.tx.get("application_instances", replaced)
        if old is not None and old.columns["status"] not in _REMOVING:
            _request_removal(ctx, old, f"Replaced by {row.id}")
