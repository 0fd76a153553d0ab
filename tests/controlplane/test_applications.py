"""Application instances: create (manifest checks), describe, details, list filters and pages, node instances,
dependencies, signals, removal, replacement and the status a device reports."""

from __future__ import annotations

import hashlib
import io
import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from panoflow.controlplane import ControlPlane
from tests.support.control_plane import APP, deploy, error_of


def test_create_and_describe(pano: Any, device: str, graph_text: str, overrides_text: str) -> None:
    iid = deploy(pano, device, json.dumps(json.loads(graph_text)), Name="debug-app", Description="d",
                 ManifestOverridesPayload={"PayloadData": overrides_text},
                 RuntimeRoleArn="arn:aws:iam::123456789012:role/app", Tags={"k": "v"})
    d = pano.describe_application_instance(ApplicationInstanceId=iid)
    assert (d["Status"], d["HealthStatus"], d["Name"], d["DefaultRuntimeContextDeviceName"]) == (
        "DEPLOYMENT_PENDING", "NOT_AVAILABLE", "debug-app", "edge-1")
    assert d["Tags"] == {"k": "v"} and d["RuntimeRoleArn"].endswith(":role/app")
    details = pano.describe_application_instance_details(ApplicationInstanceId=iid)
    assert json.loads(details["ManifestPayload"]["PayloadData"]) == json.loads(graph_text)
    assert details["ManifestOverridesPayload"]["PayloadData"] == overrides_text
    nodes = pano.list_application_instance_node_instances(ApplicationInstanceId=iid)["NodeInstances"]
    # the overrides replace camera_node with camera_node_override: node instances are what the device runs
    assert {n["NodeInstanceId"] for n in nodes} == {"code_node", "model_node", "camera_node_override",
                                                    "output_node"}
    camera = next(n for n in nodes if n["NodeInstanceId"] == "camera_node_override")
    assert (camera["PackageName"], camera["PackageVersion"]) == ("MY_CAMERA", "1.0")
    assert {n["CurrentStatus"] for n in nodes} == {"NOT_AVAILABLE"}
    deps = pano.list_application_instance_dependencies(ApplicationInstanceId=iid)["PackageObjects"]
    assert {(p["Name"], p["PackageVersion"]) for p in deps} == {
        ("DEBUG_SERVER", "1.0"), ("SQUEEZENET_PYTORCH", "1.0"), ("abstract_rtsp_media_source", "1.0"),
        ("hdmi_data_sink", "1.0")}


def test_dependencies_report_registered_patches(pano: Any, plane: ControlPlane, device: str,
                                                graph_text: str) -> None:
    created = pano.create_package(PackageName="DEBUG_SERVER")
    manifest = (APP.parents[1] / "packages" / "123456789012-DEBUG_SERVER-1.0" / "package.json").read_bytes()
    patch = hashlib.sha256(manifest).hexdigest()  # RegisterPackageVersion reads the uploaded package.json
    plane.assets.put(f"{created['StorageLocation']['ManifestPrefixLocation']}/{patch}.json",
                     io.BytesIO(manifest))
    pano.register_package_version(PackageId=created["PackageId"], PackageVersion="1.0", PatchVersion=patch,
                                  MarkLatest=True)
    iid = deploy(pano, device, graph_text)
    deps = {p["Name"]: p["PatchVersion"]
            for p in pano.list_application_instance_dependencies(ApplicationInstanceId=iid)["PackageObjects"]}
    assert deps["DEBUG_SERVER"] == patch and deps["SQUEEZENET_PYTORCH"] == "unregistered"
    nodes = pano.list_application_instance_node_instances(ApplicationInstanceId=iid)["NodeInstances"]
    assert {n["NodeName"]: n.get("PackagePatchVersion") for n in nodes}["code_node"] == patch


@pytest.mark.parametrize(("payload", "pointer"), [
    ("{not json", "/"),
    (json.dumps({"nodeGraph": {"envelopeVersion": "2021-01-01", "packages": [], "nodes": [{"name": "x"}],
                               "edges": []}}), "/nodeGraph/nodes/0"),
    (json.dumps({"wrong": 1}), "/"),
])
def test_invalid_manifest_names_the_json_pointer(pano: Any, device: str, payload: str, pointer: str) -> None:
    with pytest.raises(ClientError) as err:
        deploy(pano, device, payload)
    code, status, message = error_of(err.value)
    assert (code, status) == ("ValidationException", 400)
    assert "ManifestPayload.PayloadData" in message and f"JSON pointer '{pointer}" in message
    assert err.value.response["Fields"][0]["Name"].startswith("ManifestPayload.PayloadData#")


def test_invalid_overrides_and_unknown_device(pano: Any, device: str, graph_text: str) -> None:
    with pytest.raises(ClientError) as err:
        deploy(pano, device, graph_text,
               ManifestOverridesPayload={"PayloadData": '{"nodeGraphOverrides": 3}'})
    assert "ManifestOverridesPayload.PayloadData" in error_of(err.value)[2]
    with pytest.raises(ClientError) as err:
        deploy(pano, "device-nope", graph_text)
    assert error_of(err.value)[:2] == ("ValidationException", 400)
    assert err.value.response["Fields"][0]["Name"] == "DefaultRuntimeContextDevice"


def test_list_filters_and_pages(pano: Any, graph_text: str) -> None:
    a = pano.provision_device(Name="a")["DeviceId"]
    b = pano.provision_device(Name="b")["DeviceId"]
    on_a = [deploy(pano, a, graph_text) for _ in range(4)]
    on_b = deploy(pano, b, graph_text)
    pano.remove_application_instance(ApplicationInstanceId=on_a[0])

    def ids(**kw: Any) -> list[str]:
        out, token = [], None
        while True:
            page = pano.list_application_instances(MaxResults=2, **kw,
                                                   **({"NextToken": token} if token else {}))
            assert len(page["ApplicationInstances"]) <= 2
            out += [i["ApplicationInstanceId"] for i in page["ApplicationInstances"]]
            token = page.get("NextToken")
            if not token:
                return out

    assert ids() == [*on_a, on_b]
    assert ids(DeviceId=b) == [on_b]
    assert ids(StatusFilter="PROCESSING_DEPLOYMENT") == [*on_a[1:], on_b]
    assert ids(StatusFilter="PROCESSING_REMOVAL") == [on_a[0]]
    assert ids(DeviceId=a, StatusFilter="DEPLOYMENT_SUCCEEDED") == []


def test_remove_and_report(pano: Any, plane: ControlPlane, device: str, graph_text: str) -> None:
    iid = deploy(pano, device, graph_text)
    plane.report_application_status(iid, "DEPLOYMENT_SUCCEEDED", health="RUNNING",
                                    runtime_states=[{"RuntimeContextName": "default",
                                                     "DesiredState": "RUNNING",
                                                     "DeviceReportedStatus": "RUNNING"}],
                                    node_statuses={"code_node": "RUNNING"})
    d = pano.describe_application_instance(ApplicationInstanceId=iid)
    assert (d["Status"], d["HealthStatus"]) == ("DEPLOYMENT_SUCCEEDED", "RUNNING")
    assert d["RuntimeContextStates"][0]["DeviceReportedStatus"] == "RUNNING"
    nodes = pano.list_application_instance_node_instances(ApplicationInstanceId=iid)["NodeInstances"]
    assert {n["NodeInstanceId"]: n["CurrentStatus"] for n in nodes}["code_node"] == "RUNNING"
    pano.remove_application_instance(ApplicationInstanceId=iid)
    assert pano.describe_application_instance(ApplicationInstanceId=iid)["Status"] == "REMOVAL_PENDING"
    with pytest.raises(ClientError) as err:
        pano.remove_application_instance(ApplicationInstanceId=iid)
    assert error_of(err.value)[:2] == ("ConflictException", 409)
    plane.report_application_status(iid, "REMOVAL_SUCCEEDED")
    d = pano.describe_application_instance(ApplicationInstanceId=iid)
    assert (d["Status"], d["HealthStatus"]) == ("REMOVAL_SUCCEEDED", "NOT_AVAILABLE")
    with pytest.raises(ValueError):
        plane.report_application_status(iid, "SOMETHING")


def test_replace(pano: Any, plane: ControlPlane, device: str, graph_text: str) -> None:
    old = deploy(pano, device, graph_text)
    plane.report_application_status(old, "DEPLOYMENT_SUCCEEDED", health="RUNNING")
    new = deploy(pano, device, graph_text, ApplicationInstanceIdToReplace=old)
    assert (
        pano.describe_application_instance(ApplicationInstanceId=new)["ApplicationInstanceIdToReplace"] == old
    )
    assert pano.describe_application_instance(ApplicationInstanceId=new)["Status"] == "DEPLOYMENT_PENDING"
    described_old = pano.describe_application_instance(ApplicationInstanceId=old)
    assert described_old["Status"] == "REMOVAL_PENDING" and new in described_old["StatusDescription"]
    plane.report_application_status(new, "DEPLOYMENT_SUCCEEDED", health="RUNNING")
    plane.report_application_status(old, "REMOVAL_SUCCEEDED")
    assert pano.describe_application_instance(ApplicationInstanceId=old)["Status"] == "REMOVAL_SUCCEEDED"
    with pytest.raises(ClientError) as err:  # a removed instance cannot be replaced again
        deploy(pano, device, graph_text, ApplicationInstanceIdToReplace=old)
    assert error_of(err.value)[:2] == ("ConflictException", 409)
    with pytest.raises(ClientError) as err:
        deploy(pano, device, graph_text, ApplicationInstanceIdToReplace="applicationInstance-nope")
    assert err.value.response["Fields"][0]["Name"] == "ApplicationInstanceIdToReplace"


def test_signals_are_stored_for_the_device(pano: Any, plane: ControlPlane, device: str,
                                           graph_text: str) -> None:
    iid = deploy(pano, device, graph_text)
    out = pano.signal_application_instance_node_instances(
        ApplicationInstanceId=iid, NodeSignals=[{"NodeInstanceId": "camera_node", "Signal": "PAUSE"}])
    assert out["ApplicationInstanceId"] == iid
    pano.signal_application_instance_node_instances(
        ApplicationInstanceId=iid, NodeSignals=[{"NodeInstanceId": "camera_node", "Signal": "RESUME"}])
    assert [(s["NodeInstanceId"], s["Signal"]) for s in plane.pending_signals(iid)] == [
        ("camera_node", "PAUSE"), ("camera_node", "RESUME")]
    assert len(plane.pending_signals(iid)) == 2  # until the device acknowledges them (test_device_api.py)
    with pytest.raises(ClientError) as err:
        pano.signal_application_instance_node_instances(
            ApplicationInstanceId=iid, NodeSignals=[{"NodeInstanceId": "nope", "Signal": "PAUSE"}])
    assert err.value.response["Fields"][0]["Name"] == "NodeSignals.1.NodeInstanceId"
    with pytest.raises(ClientError) as err:
        pano.signal_application_instance_node_instances(
            ApplicationInstanceId=iid, NodeSignals=[{"NodeInstanceId": "camera_node", "Signal": "STOP"}])
    assert "NodeSignals.1.Signal" in error_of(err.value)[2]


def test_missing_instance(pano: Any) -> None:
    for call in (pano.describe_application_instance, pano.describe_application_instance_details,
                 pano.remove_application_instance, pano.list_application_instance_node_instances):
        with pytest.raises(ClientError) as err:
            call(ApplicationInstanceId="applicationInstance-nope")
        assert error_of(err.value)[:2] == ("ResourceNotFoundException", 404)
