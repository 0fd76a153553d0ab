"""Application instances: Create/Describe/DescribeDetails/List/Remove, node instances, dependencies, signals.

An instance stays DEPLOYMENT_PENDING with HealthStatus NOT_AVAILABLE until its device reports through
:func:`report_status` (the sync of docs/device-protocol.md, via :func:`device_report`). Replacing an instance
(ApplicationInstanceIdToReplace) creates the new one and moves the old one to REMOVAL_PENDING with desired
state REMOVED; RemoveApplicationInstance does the same. The device is sent every instance whose desired state
is RUNNING and every REMOVED one it has not yet reported REMOVAL_SUCCEEDED (:func:`desired_state`); signals
are sent until the device acknowledges them (:func:`open_signals`, :func:`ack_signals`).
"""

from __future__ import annotations

import json
from typing import Any

import structlog

from panoflow.controlplane.errors import conflict, manifest_error, not_found, validation
from panoflow.controlplane.service.base import Context, new_id, now, operation, paginate, ts
from panoflow.controlplane.service.node_templates import camera_manifest
from panoflow.controlplane.service.packages import latest_patch
from panoflow.controlplane.store import Row
from panoflow.core.manifest import GraphOverrides, NodeGraph, parse_graph, parse_overrides

__all__ = ["STATUSES", "ack_signals", "desired_state", "device_report", "open_signals", "report_status"]

log = structlog.get_logger("panoflow.controlplane.applications")

#: ListApplicationInstances' aggregate status filters
_AGGREGATES = {
    "PROCESSING_DEPLOYMENT": {"DEPLOYMENT_PENDING", "DEPLOYMENT_REQUESTED", "DEPLOYMENT_IN_PROGRESS"},
    "PROCESSING_REMOVAL": {"REMOVAL_PENDING", "REMOVAL_REQUESTED", "REMOVAL_IN_PROGRESS"},
}
_REMOVING = _AGGREGATES["PROCESSING_REMOVAL"] | {"REMOVAL_SUCCEEDED"}
STATUSES = frozenset({"DEPLOYMENT_PENDING", "DEPLOYMENT_REQUESTED", "DEPLOYMENT_IN_PROGRESS",
                       "DEPLOYMENT_ERROR", "DEPLOYMENT_SUCCEEDED", "REMOVAL_PENDING", "REMOVAL_REQUESTED",
                       "REMOVAL_IN_PROGRESS", "REMOVAL_FAILED", "REMOVAL_SUCCEEDED", "DEPLOYMENT_FAILED"})


def _check_manifests(p: dict[str, Any]) -> tuple[NodeGraph, GraphOverrides | None]:
    graph = parse_graph(p["ManifestPayload"]["PayloadData"].encode("utf-8"), "ManifestPayload.PayloadData")
    if graph.model is None:
        raise manifest_error("ManifestPayload.PayloadData", graph.problems)
    overrides = (p.get("ManifestOverridesPayload") or {}).get("PayloadData")
    if overrides:
        parsed = parse_overrides(overrides.encode("utf-8"), "ManifestOverridesPayload.PayloadData")
        if parsed.model is None:
            raise manifest_error("ManifestOverridesPayload.PayloadData", parsed.problems)
        return graph.model, parsed.model
    return graph.model, None


def _node_instances(ctx: Context, graph: NodeGraph, overrides: GraphOverrides | None) -> list[dict[str, Any]]:
    """The instance's nodes as the device runs them: after the overrides replaced nodes (a camera bound by the
    overrides is listed under its override node's name, which is what signals address, as on Panorama)."""
    refs = (*graph.packages, *(overrides.packages if overrides else ()))
    versions = {ref.qualified: ref.version for ref in refs}
    out = []
    for node_name, interface in _effective_nodes(graph, overrides).items():
        package, _, _iface = interface.partition(".")
        account, _, name = package.partition("::")
        item = {"NodeInstanceId": node_name, "NodeName": node_name,
                "PackageName": name, "PackageVersion": versions.get(package),
                "CurrentStatus": "NOT_AVAILABLE"}
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
        raise validation(f"Device {p['DefaultRuntimeContextDevice']} does not exist",
                         "DefaultRuntimeContextDevice")
    graph, overrides = _check_manifests(p)
    old = None
    if p.get("ApplicationInstanceIdToReplace"):
        old = ctx.tx.get("application_instances", p["ApplicationInstanceIdToReplace"])
        if old is None:
            raise validation(f"Application instance {p['ApplicationInstanceIdToReplace']} does not exist",
                             "ApplicationInstanceIdToReplace")
        if old.columns["status"] in _REMOVING:
            raise conflict(f"Application instance {old.id} is already being removed", "applicationInstance",
                           old.id)
    instance_id = new_id("applicationInstance-")
    arn = ctx.arn("applicationInstance", instance_id)
    t = now().isoformat()
    doc = {"Arn": arn, "Name": p.get("Name"), "Description": p.get("Description"),
           "DefaultRuntimeContextDeviceName": device.columns["name"],
           "RuntimeRoleArn": p.get("RuntimeRoleArn"),
           "ApplicationInstanceIdToReplace": p.get("ApplicationInstanceIdToReplace"),
           "ManifestPayload": p["ManifestPayload"],
           "ManifestOverridesPayload": p.get("ManifestOverridesPayload"),
           "HealthStatus": "NOT_AVAILABLE", "StatusDescription": "Waiting for the device to deploy",
           "CreatedTime": t, "LastUpdatedTime": t, "RuntimeContextStates": [],
           "NodeInstances": _node_instances(ctx, graph, overrides),
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
            "DefaultRuntimeContextDeviceName": d["DefaultRuntimeContextDeviceName"],
            "Status": row.columns["status"],
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
            "ManifestPayload": d["ManifestPayload"],
            "ManifestOverridesPayload": d.get("ManifestOverridesPayload"),
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
        raise conflict(f"Application instance {row.id} is already {row.columns['status']}",
                       "applicationInstance", row.id)
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


#: ApplicationInstanceStatus -> the DeviceReportedStatus shown in RuntimeContextStates
_REPORTED = {"DEPLOYMENT_PENDING": "INSTALL_IN_PROGRESS", "DEPLOYMENT_REQUESTED": "INSTALL_IN_PROGRESS",
             "DEPLOYMENT_IN_PROGRESS": "INSTALL_IN_PROGRESS", "DEPLOYMENT_ERROR": "INSTALL_ERROR",
             "DEPLOYMENT_FAILED": "INSTALL_ERROR", "DEPLOYMENT_SUCCEEDED": "RUNNING",
             "REMOVAL_PENDING": "STOPPING",
             "REMOVAL_REQUESTED": "STOPPING", "REMOVAL_IN_PROGRESS": "REMOVAL_IN_PROGRESS",
             "REMOVAL_FAILED": "REMOVAL_FAILED", "REMOVAL_SUCCEEDED": "STOPPED"}


def report_status(ctx: Context, instance_id: str, status: str, *, health: str | None,
                  description: str | None, runtime_states: list[dict[str, Any]] | None,
                  node_statuses: dict[str, str] | None) -> None:
    """Apply a device's report to an instance (see :meth:`ControlPlane.report_application_status`).

    REMOVAL_SUCCEEDED is final (later reports are ignored). While the desired state is REMOVED, a deployment
    status does not undo the removal: the status stays where it is and only health and node statuses are
    taken. ``LastUpdatedTime`` moves only when something the API shows changed.
    """
    if status not in STATUSES:
        raise ValueError(f"not an ApplicationInstanceStatus: {status!r}")
    row = _get(ctx, instance_id)
    current = row.columns["status"]
    if current == "REMOVAL_SUCCEEDED":
        return
    if row.doc.get("DesiredState") == "REMOVED" and not status.startswith("REMOVAL_"):
        status = current
    before = (current, row.doc.get("HealthStatus"), row.doc.get("StatusDescription"),
              [n["CurrentStatus"] for n in row.doc["NodeInstances"]])
    t = now().isoformat()
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
        for node in row.doc["NodeInstances"]:
            node["CurrentStatus"] = "NOT_AVAILABLE"
    after = (status, row.doc.get("HealthStatus"), row.doc.get("StatusDescription"),
             [n["CurrentStatus"] for n in row.doc["NodeInstances"]])
    if after != before:
        row.doc["LastUpdatedTime"] = t
    ctx.tx.update("application_instances", row.id, row.doc, status=status)
    replaced = row.doc.get("ApplicationInstanceIdToReplace")
    if status == "DEPLOYMENT_SUCCEEDED" and replaced:
        old = ctx.tx.get("application_instances", replaced)
        if old is not None and old.columns["status"] not in _REMOVING:
            _request_removal(ctx, old, f"Replaced by {row.id}")


def device_report(ctx: Context, device_id: str, instance_id: str, status: str, *, health: str | None,
                  description: str | None, node_statuses: dict[str, str]) -> None:
    """One instance of a sync report; instances of other devices or unknown here (deployed locally) are
    ignored."""
    row = ctx.tx.get("application_instances", instance_id)
    if row is None or row.columns["device_id"] != device_id:
        log.debug("device_instance_unknown", device_id=device_id, instance_id=instance_id[:64])
        return
    shown = "LAUNCH_ERROR" if status == "DEPLOYMENT_SUCCEEDED" and health == "ERROR" else _REPORTED[status]
    state = {"DesiredState": row.doc.get("DesiredState", "RUNNING"), "DeviceReportedStatus": shown,
             "RuntimeContextName": row.doc["DefaultRuntimeContextDeviceName"]}
    report_status(ctx, instance_id, status, health=health, description=description, runtime_states=[state],
                  node_statuses=node_statuses)


# --- desired state (what a sync answers) --------------------------------------------------------------------

_CAMERA_KEYS = ("StreamUrl", "Username", "Password")


def desired_state(ctx: Context, device_id: str) -> list[dict[str, Any]]:
    """The sync answer's ``Instances``: desired RUNNING ones, and REMOVED ones not yet reported
    REMOVAL_SUCCEEDED.

    REMOVED entries carry no Packages and no Cameras (the device only removes them).
    """
    out = []
    for row in ctx.tx.select("application_instances", {"device_id": device_id}):
        desired = row.doc.get("DesiredState", "RUNNING")
        if desired == "REMOVED" and row.columns["status"] == "REMOVAL_SUCCEEDED":
            continue
        out.append(_desired(ctx, row, desired))
    return out


def _desired(ctx: Context, row: Row, desired: str) -> dict[str, Any]:
    d = row.doc
    graph_text = d["ManifestPayload"]["PayloadData"]
    overrides_text = (d.get("ManifestOverridesPayload") or {}).get("PayloadData") or None
    entry: dict[str, Any] = {
        "ApplicationInstanceId": row.id, "Name": d.get("Name") or row.id, "DesiredState": desired,
        "Replaces": d.get("ApplicationInstanceIdToReplace"), "ManifestPayload": graph_text,
        "ManifestOverridesPayload": overrides_text, "Packages": [], "Cameras": {},
        "RuntimeRoleArn": d.get("RuntimeRoleArn")}
    if desired != "RUNNING":
        return entry
    graph = parse_graph(graph_text.encode("utf-8"), "ManifestPayload.PayloadData").model
    overrides = (parse_overrides(overrides_text.encode("utf-8"), "ManifestOverridesPayload.PayloadData").model
                 if overrides_text else None)
    if graph is None:  # checked at create time; a parser that became stricter must not break the sync
        log.warning("desired_state_unparsable_graph", instance_id=row.id)
        return entry
    refs = (*graph.packages, *(overrides.packages if overrides else ()))
    versions = {ref.qualified: ref.version for ref in refs}
    entry["Packages"] = [_package_entry(ctx, qualified, version) for qualified, version in versions.items()
                         if not qualified.startswith("panorama::")]
    entry["Cameras"] = _cameras(ctx, graph, overrides, versions)
    return entry


def _package_entry(ctx: Context, qualified: str, version: str) -> dict[str, Any]:
    """One ``Packages`` item: the latest patch's Manifest and Assets (Manifest None when nobody recorded
    one)."""
    account, _, name = qualified.partition("::")
    entry: dict[str, Any] = {"Account": account, "Name": name, "Version": version, "PatchVersion": None,
                             "Manifest": None, "Assets": []}
    pkg = ctx.tx.select("packages", {"owner": account, "name": name})
    ver = latest_patch(ctx, pkg[0].id, version) if pkg else None
    if ver is None:
        return entry
    entry["PatchVersion"] = ver.columns["patch"]
    manifest = ver.doc.get("Manifest")
    if isinstance(manifest, str):
        try:
            manifest = json.loads(manifest)
        except ValueError:
            manifest = None
    if manifest is None:  # a template-job camera registered before template jobs recorded their manifest
        where = {"package_id": pkg[0].id, "package_version": version, "patch_version": ver.columns["patch"]}
        cameras = [n.doc["Name"] for n in ctx.tx.select("nodes", where)
                   if "TemplateParameters" in n.doc]
        manifest = camera_manifest(name, version, cameras[0]) if cameras else None
    entry["Manifest"] = manifest
    entry["Assets"] = list(ver.doc.get("Assets") or [])
    return entry


def _effective_nodes(graph: NodeGraph, overrides: GraphOverrides | None) -> dict[str, str]:
    """Interface node name -> interface, after the overrides replaced nodes."""
    nodes = {n.name: n.interface for n in graph.nodes if not n.is_parameter}
    extra = {n.name: n.interface for n in (overrides.nodes if overrides else ()) if not n.is_parameter}
    for rule in overrides.node_overrides if overrides else ():
        if rule.replace not in nodes:
            continue
        del nodes[rule.replace]
        nodes.update({name: extra[name] for name in rule.with_ if name in extra})
    return nodes


def _cameras(ctx: Context, graph: NodeGraph, overrides: GraphOverrides | None,
             versions: dict[str, str]) -> dict[str, dict[str, str]]:
    """Node name -> the TemplateParameters of the template-job camera its interface names."""
    out: dict[str, dict[str, str]] = {}
    for name, interface in _effective_nodes(graph, overrides).items():
        package, _, node_name = interface.rpartition(".")
        account, _, pkg_name = package.partition("::")
        if account == "panorama" or not pkg_name:
            continue
        pkg = ctx.tx.select("packages", {"owner": account, "name": pkg_name})
        if not pkg:
            continue
        version = versions.get(package)
        candidates = [r for r in ctx.tx.select("nodes", {"package_id": pkg[0].id})
                      if "TemplateParameters" in r.doc and r.doc["Name"] == node_name
                      and (version is None or r.columns["package_version"] == version)]
        if not candidates:
            continue
        ver = latest_patch(ctx, pkg[0].id, version) if version else None
        chosen = next((r for r in candidates if ver is not None and r.columns["patch_version"] ==
                       ver.columns["patch"]), candidates[-1])
        params = chosen.doc["TemplateParameters"]
        out[name] = {k: params[k] for k in _CAMERA_KEYS if params.get(k)}
    return out


# --- signals (at least once) --------------------------------------------------------------------------------


def open_signals(ctx: Context, instance_ids: list[str]) -> list[dict[str, Any]]:
    """Signals of these instances the device has not acknowledged, oldest first."""
    rows = [r for iid in instance_ids for r in ctx.tx.select("signals", {"instance_id": iid, "delivered": 0})]
    rows.sort(key=lambda r: r.columns["created_ns"])
    return [{"SignalId": r.id, "ApplicationInstanceId": r.columns["instance_id"],
             "NodeInstanceId": r.columns["node_instance_id"], "Signal": r.columns["signal"],
             "CreatedTime": r.doc["CreatedTime"]} for r in rows]


def ack_signals(ctx: Context, device_id: str, signal_ids: list[str]) -> None:
    """Mark signals acknowledged (``signals.delivered`` = 1); ids of other devices' signals are ignored."""
    for signal_id in signal_ids:
        row = ctx.tx.get("signals", signal_id)
        if row is None or row.columns["delivered"]:
            continue
        instance = ctx.tx.get("application_instances", row.columns["instance_id"])
        if instance is not None and instance.columns["device_id"] == device_id:
            ctx.tx.update("signals", row.id, delivered=1)
