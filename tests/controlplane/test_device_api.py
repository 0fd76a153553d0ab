"""The device protocol, server side (docs/device-protocol.md sections 1, 2 and 4): a real control plane over
loopback HTTP, devices speaking raw JSON, operators using boto3 and SigV4."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from panoflow.controlplane import AccessKey, ControlPlane, serve_in_thread
from panoflow.controlplane.errors import ApiError
from panoflow.controlplane.provisioning import hash_token
from panoflow.controlplane.service.fleet import LOG_CAP, parse_sync_report
from panoflow.controlplane.store import Store
from panoflow.core.manifest import parse_package
from tests.support.control_plane import deploy, make_client, raw_request, signed_headers
from tests.support.device_protocol import (
    SYNC,
    claim,
    claimed,
    post,
    provision,
    register_debug_server,
    running,
    sync,
)


@pytest.fixture
def fast_plane(store: Store, tmp_path: Path) -> ControlPlane:
    """A 1 s heartbeat: a device is OFFLINE 3 s after its last sync. Short enough to wait for, long enough
    that the calls checking it is ONLINE right after a sync fall inside the window on a loaded machine."""
    return ControlPlane(store, assets=tmp_path / "assets", heartbeat_s=1.0)


@pytest.fixture
def fast_endpoint(fast_plane: ControlPlane) -> Iterator[str]:
    with serve_in_thread(fast_plane) as url:
        yield url


# --- claim
# -------------------------------------------------------------------------------------------------------


def test_claim_works_once(endpoint: str, pano: Any) -> None:
    bundle = provision(pano)
    assert pano.describe_device(DeviceId=bundle["DeviceId"])["ProvisioningStatus"] == "AWAITING_PROVISIONING"
    status, doc = claim(endpoint, bundle)
    assert status == 200
    assert doc["DeviceId"] == bundle["DeviceId"] and doc["DeviceName"] == "edge-1"
    assert doc["AccountId"] == "123456789012" and doc["Region"] == "us-east-1" and len(doc["Token"]) >= 32
    described = pano.describe_device(DeviceId=bundle["DeviceId"])
    assert described["ProvisioningStatus"] == "SUCCEEDED" and described["CurrentSoftware"] == "0.4.0"
    status, again = claim(endpoint, bundle)
    assert (status, again["Code"]) == (403, "AccessDeniedException") and "already used" in again["Message"]
    assert sync(endpoint, doc["Token"])["DeviceId"] == bundle["DeviceId"]  # the first token still works


def test_claim_refuses_bad_requests(endpoint: str, pano: Any) -> None:
    bundle = provision(pano)
    status, doc = post(endpoint, "/_panoflow/device/v1/claim", {**bundle, "DeviceId": "device-other"})
    assert (status, doc["Code"]) == (403, "AccessDeniedException")
    status, doc = post(endpoint, "/_panoflow/device/v1/claim", {"DeviceId": bundle["DeviceId"]})
    assert (status, doc["Code"]) == (400, "ValidationException") and "ClaimToken" in doc["Message"]
    assert doc["Fields"][0]["Name"] == "ClaimToken"
    status, doc = post(endpoint, "/_panoflow/device/v1/claim", b"{not json")
    assert (status, doc["Code"]) == (400, "ValidationException")
    assert claim(endpoint, bundle)[0] == 200  # none of that used the bundle up


def test_expired_bundle_is_refused_with_the_expiry(endpoint: str, pano: Any, store: Store) -> None:
    bundle = provision(pano)
    with store.transaction() as tx:  # age the token: it expired a minute ago
        tx.update("claim_tokens", hash_token(bundle["ClaimToken"]), expires_ns=time.time_ns() - 60 * 10**9)
    status, doc = claim(endpoint, bundle)
    assert (status, doc["Code"]) == (403, "AccessDeniedException")
    assert "expired at 20" in doc["Message"] and "provision it again" in doc["Message"]


def test_deleted_device_is_locked_out(endpoint: str, pano: Any) -> None:
    device_id, token = claimed(endpoint, pano)
    assert sync(endpoint, token)["Instances"] == []
    pano.delete_device(DeviceId=device_id)
    status, doc = post(endpoint, SYNC, {}, token)
    assert (status, doc["Code"]) == (403, "AccessDeniedException") and "deleted" in doc["Message"]
    status, doc = post(endpoint, SYNC, {}, "not-a-token")
    assert (status, doc["Code"]) == (401, "UnauthorizedException")
    status, doc = post(endpoint, SYNC, {})
    assert (status, doc["Code"]) == (401, "UnauthorizedException") and "Bearer" in doc["Message"]


# --- sync: device status
# -----------------------------------------------------------------------------------------


def test_sync_shows_the_device_online_then_offline(fast_endpoint: str, key: AccessKey) -> None:
    pano = make_client(fast_endpoint, key.access_key_id, key.secret_access_key)
    device_id, token = claimed(fast_endpoint, pano)
    answer = sync(fast_endpoint, token, Software={"Version": "0.5.0"}, NetworkInterfaces=[
        {"Name": "eth0", "IpAddress": "10.0.0.7", "HwAddress": "02:00:00:00:00:07"}])
    assert answer["HeartbeatSeconds"] == 1.0 and answer["DeviceId"] == device_id
    d = pano.describe_device(DeviceId=device_id)
    assert d["DeviceConnectionStatus"] == "ONLINE" and d["DeviceAggregatedStatus"] == "ONLINE"
    assert d["CurrentSoftware"] == "0.5.0"
    assert d["CurrentNetworkingStatus"]["Ethernet0Status"] == {
        "IpAddress": "10.0.0.7", "HwAddress": "02:00:00:00:00:07", "ConnectionStatus": "CONNECTED"}
    assert d["LeaseExpirationTime"] > d["CreatedTime"]
    online = pano.list_devices(DeviceAggregatedStatusFilter="ONLINE")["Devices"]
    assert [x["DeviceId"] for x in online] == [device_id]
    time.sleep(3.2)  # 3 missed heartbeats of 1 s
    d = pano.describe_device(DeviceId=device_id)
    assert d["DeviceConnectionStatus"] == "OFFLINE" and d["DeviceAggregatedStatus"] == "OFFLINE"
    assert pano.list_devices(DeviceAggregatedStatusFilter="ONLINE")["Devices"] == []
    assert len(pano.list_devices(DeviceAggregatedStatusFilter="OFFLINE")["Devices"]) == 1
    sync(fast_endpoint, token)
    assert pano.describe_device(DeviceId=device_id)["DeviceAggregatedStatus"] == "ONLINE"


def test_sync_body_errors_name_the_field(endpoint: str, pano: Any) -> None:
    _, token = claimed(endpoint, pano)
    for body, field in (({"Instances": [{"ApplicationInstanceId": "x", "Status": "NOPE"}]},
                         "Instances.0.Status"),
                        ({"Jobs": [{"Status": "SUCCEEDED"}]}, "Jobs.0.JobId"),
                        ({"AckedSignals": "signal-1"}, "AckedSignals"),
                        ([], "body")):
        status, doc = post(endpoint, SYNC, body, token)
        assert (status, doc["Code"], doc["Fields"][0]["Name"]) == (400, "ValidationException", field)
        assert field in doc["Message"]


# --- sync: application instances
# ---------------------------------------------------------------------------------


def test_reported_statuses_reach_the_panorama_api(endpoint: str, pano: Any, graph_text: str) -> None:
    device_id, token = claimed(endpoint, pano)
    iid = deploy(pano, device_id, graph_text, Name="people")
    answer = sync(endpoint, token)
    [inst] = answer["Instances"]
    assert (
        inst["ApplicationInstanceId"] == iid
        and inst["Name"] == "people"
        and inst["DesiredState"] == "RUNNING"
    )
    assert inst["ManifestPayload"] == graph_text and inst["ManifestOverridesPayload"] is None
    assert inst["Replaces"] is None
    # unregistered packages come without a manifest; panorama:: packages are never listed
    assert sorted((p["Name"], p["Version"], p["Manifest"]) for p in inst["Packages"]) == [
        ("DEBUG_SERVER", "1.0", None), ("SQUEEZENET_PYTORCH", "1.0", None)]
    assert pano.list_application_instances(StatusFilter="PROCESSING_DEPLOYMENT")["ApplicationInstances"]

    sync(endpoint, token, Instances=[running(iid, NodeStatuses={"camera_node": "PAUSED",
                                                                "code_node": "RUNNING"}),
                                     running("applicationInstance-deployedlocally")])
    d = pano.describe_application_instance(ApplicationInstanceId=iid)
    assert (d["Status"], d["HealthStatus"], d["StatusDescription"]) == ("DEPLOYMENT_SUCCEEDED", "RUNNING",
                                                                        "running")
    [state] = d["RuntimeContextStates"]
    assert state["DeviceReportedStatus"] == "RUNNING" and state["RuntimeContextName"] == "edge-1"
    assert pano.list_application_instances(StatusFilter="PROCESSING_DEPLOYMENT")["ApplicationInstances"] == []
    listed = pano.list_application_instances(DeviceId=device_id, StatusFilter="DEPLOYMENT_SUCCEEDED")
    assert [i["ApplicationInstanceId"] for i in listed["ApplicationInstances"]] == [iid]
    nodes = {
        n["NodeInstanceId"]: n["CurrentStatus"]
        for n in pano.list_application_instance_node_instances(ApplicationInstanceId=iid)["NodeInstances"]
    }
    assert nodes["camera_node"] == "PAUSED" and nodes["code_node"] == "RUNNING"
    assert nodes["model_node"] == "NOT_AVAILABLE"


def test_desired_state_carries_registered_manifests_and_assets(endpoint: str, pano: Any, plane: ControlPlane,
                                                               graph_text: str) -> None:
    device_id, token = claimed(endpoint, pano)
    _package_id, manifest, patch = register_debug_server(pano, plane)
    deploy(pano, device_id, graph_text)
    [inst] = sync(endpoint, token)["Instances"]
    packages = {p["Name"]: p for p in inst["Packages"]}
    assert packages["DEBUG_SERVER"] == {"Account": "123456789012", "Name": "DEBUG_SERVER", "Version": "1.0",
                                        "PatchVersion": patch, "Manifest": json.loads(manifest), "Assets": []}
    # the device fails that deployment with a reason
    assert packages["SQUEEZENET_PYTORCH"]["Manifest"] is None


def test_replaced_instance_leaves_desired_state_once_removed(endpoint: str, pano: Any,
                                                             graph_text: str) -> None:
    device_id, token = claimed(endpoint, pano)
    old = deploy(pano, device_id, graph_text, Name="people")
    sync(endpoint, token, Instances=[running(old)])
    new = deploy(pano, device_id, graph_text, Name="people", ApplicationInstanceIdToReplace=old)
    desired = {i["ApplicationInstanceId"]: i for i in sync(endpoint, token,
                                                           Instances=[running(old)])["Instances"]}
    assert desired[old]["DesiredState"] == "REMOVED" and desired[old]["Packages"] == []
    assert desired[new]["DesiredState"] == "RUNNING" and desired[new]["Replaces"] == old
    # the device still reports the old one running until it swaps: the removal is not undone
    assert pano.describe_application_instance(ApplicationInstanceId=old)["Status"] == "REMOVAL_PENDING"
    answer = sync(endpoint, token, Instances=[running(new), running(old, "REMOVAL_SUCCEEDED")])
    assert [i["ApplicationInstanceId"] for i in answer["Instances"]] == [new]
    assert pano.describe_application_instance(ApplicationInstanceId=old)["Status"] == "REMOVAL_SUCCEEDED"
    pano.remove_application_instance(ApplicationInstanceId=new)
    [removed] = sync(endpoint, token, Instances=[running(new)])["Instances"]
    assert removed["DesiredState"] == "REMOVED"
    assert sync(endpoint, token, Instances=[running(new, "REMOVAL_SUCCEEDED")])["Instances"] == []


def test_signal_is_redelivered_until_acked(endpoint: str, pano: Any, plane: ControlPlane,
                                           graph_text: str) -> None:
    device_id, token = claimed(endpoint, pano)
    iid = deploy(pano, device_id, graph_text)
    pano.signal_application_instance_node_instances(
        ApplicationInstanceId=iid, NodeSignals=[{"NodeInstanceId": "camera_node", "Signal": "PAUSE"}])
    [signal] = sync(endpoint, token)["Signals"]
    assert (signal["ApplicationInstanceId"], signal["NodeInstanceId"],
            signal["Signal"]) == (iid, "camera_node",
                                                                                            "PAUSE")
    assert sync(endpoint, token)["Signals"] == [signal]  # not acked: sent again
    assert sync(endpoint, token, AckedSignals=[signal["SignalId"], "signal-unknown"])["Signals"] == []
    assert plane.pending_signals(iid) == []
    assert sync(endpoint, token)["Signals"] == []


def test_reboot_job_moves_through_its_statuses(endpoint: str, pano: Any) -> None:
    device_id, token = claimed(endpoint, pano)
    [job] = pano.create_job_for_devices(DeviceIds=[device_id], JobType="REBOOT")["Jobs"]
    job_id = job["JobId"]
    assert sync(endpoint, token)["Jobs"] == [{"JobId": job_id, "JobType": "REBOOT", "ImageVersion": None}]
    assert pano.describe_device_job(JobId=job_id)["Status"] == "PENDING"
    answer = sync(endpoint, token, Jobs=[{"JobId": job_id, "Status": "IN_PROGRESS"}])
    assert [j["JobId"] for j in answer["Jobs"]] == [job_id]  # not final yet
    assert pano.describe_device_job(JobId=job_id)["Status"] == "IN_PROGRESS"
    assert pano.describe_device(DeviceId=device_id)["LatestDeviceJob"]["Status"] == "IN_PROGRESS"
    answer = sync(endpoint, token, Jobs=[{"JobId": job_id, "Status": "SUCCEEDED"}])
    assert answer["Jobs"] == []
    # the Panorama API speaks the model's UpdateProgress: the device's SUCCEEDED reads COMPLETED
    assert pano.describe_device_job(JobId=job_id)["Status"] == "COMPLETED"
    assert pano.describe_device(DeviceId=device_id)["LatestDeviceJob"] == {"JobType": "REBOOT",
                                                                            "Status": "COMPLETED"}
    sync(endpoint, token, Jobs=[{"JobId": job_id, "Status": "FAILED"}])  # final stays final
    assert pano.describe_device_job(JobId=job_id)["Status"] == "COMPLETED"


def test_desired_state_carries_template_camera_credentials(endpoint: str, pano: Any, graph_text: str,
                                                          overrides_text: str) -> None:
    device_id, token = claimed(endpoint, pano)
    job = pano.create_node_from_template_job(
        TemplateType="RTSP_CAMERA_STREAM", OutputPackageName="MY_CAMERA", OutputPackageVersion="1.0",
        NodeName="MY_CAMERA", TemplateParameters={"StreamUrl": "rtsp://10.0.0.5/stream1", "Username": "admin",
                                                  "Password": "s3cret-pw"})
    iid = deploy(pano, device_id, graph_text, ManifestOverridesPayload={"PayloadData": overrides_text})
    [inst] = sync(endpoint, token)["Instances"]
    assert inst["ManifestOverridesPayload"] == overrides_text
    assert inst["Cameras"] == {"camera_node_override": {"StreamUrl": "rtsp://10.0.0.5/stream1",
                                                        "Username": "admin", "Password": "s3cret-pw"}}
    [camera_pkg] = [p for p in inst["Packages"] if p["Name"] == "MY_CAMERA"]
    assert camera_pkg["Assets"] == [] and len(camera_pkg["PatchVersion"]) == 64
    parsed = parse_package(json.dumps(camera_pkg["Manifest"]).encode())
    assert parsed.model is not None and parsed.model.interface("MY_CAMERA").category == "media_source"
    # the Panorama API still masks them
    params = pano.describe_node_from_template_job(JobId=job["JobId"])["TemplateParameters"]
    assert params == {"StreamUrl": "rtsp://10.0.0.5/stream1", "Username": "SAVED_AS_SECRET",
                      "Password": "SAVED_AS_SECRET"}
    details = pano.describe_application_instance_details(ApplicationInstanceId=iid)
    assert "s3cret-pw" not in json.dumps(details, default=str)


# --- logs and metrics
# --------------------------------------------------------------------------------------------


def _lines(n: int, start: int = 0) -> dict[str, Any]:
    return {"Lines": [{"Time": "2026-01-01T00:00:00Z", "Instance": "i", "Node": "code_node",
                       "Line": f"line {start + k}"} for k in range(n)]}


def test_logs_keep_the_newest_lines_and_refuse_big_batches(endpoint: str, pano: Any, key: AccessKey,
                                                           plane: ControlPlane) -> None:
    device_id, token = claimed(endpoint, pano)
    status, doc = post(endpoint, "/_panoflow/device/v1/logs", _lines(500), token)
    assert (status, doc) == (200, {"Stored": 500})
    status, doc = post(endpoint, "/_panoflow/device/v1/logs", _lines(501), token)
    assert (status, doc["Code"]) == (413, "PayloadTooLargeException") and "500" in doc["Message"]
    big = {"Lines": [{"Line": "x" * 1024} for _ in range(300)]}  # ~300 KiB
    status, doc = post(endpoint, "/_panoflow/device/v1/logs", big, token)
    assert (status, doc["Code"]) == (413, "PayloadTooLargeException")
    total = LOG_CAP + 1000
    for start in range(500, total, 500):  # past the cap, straight through the service
        plane.append_device_logs(device_id, _lines(500, start))
    path = f"/_panoflow/devices/{device_id}/logs?limit={LOG_CAP}"
    status, _, doc = raw_request(endpoint, "GET", path, signed_headers(endpoint, key, "GET", path))
    assert status == 200 and len(doc["Lines"]) == LOG_CAP
    assert (
        doc["Lines"][0]["Line"] == f"line {total - LOG_CAP}"
        and doc["Lines"][-1]["Line"] == f"line {total - 1}"
    )


def test_operator_reads_need_a_signature(endpoint: str, pano: Any, key: AccessKey) -> None:
    device_id, token = claimed(endpoint, pano)
    assert post(endpoint, "/_panoflow/device/v1/logs", _lines(3), token)[0] == 200
    assert post(endpoint, "/_panoflow/device/v1/metrics", {"Text": "panoflow_up 1\n"}, token)[0] == 200
    for what in ("logs?limit=2", "metrics"):
        path = f"/_panoflow/devices/{device_id}/{what}"
        status, _, doc = raw_request(endpoint, "GET", path)
        assert (status, doc["Code"]) == (403, "AccessDeniedException")
        status, _, doc = raw_request(endpoint, "GET", path, {"Authorization": f"Bearer {token}"})
        assert status == 403  # a device token is not an operator's signature
    path = f"/_panoflow/devices/{device_id}/logs?limit=2"
    status, _, doc = raw_request(endpoint, "GET", path, signed_headers(endpoint, key, "GET", path))
    assert status == 200 and [x["Line"] for x in doc["Lines"]] == ["line 1", "line 2"]
    # as docs/control-plane.md shows it: botocore signs, any HTTP client sends
    req = AWSRequest("GET", f"{endpoint}/_panoflow/devices/{device_id}/metrics")
    SigV4Auth(Credentials(key.access_key_id, key.secret_access_key), "panorama", "us-east-1").add_auth(req)
    with urllib.request.urlopen(urllib.request.Request(req.url, headers=dict(req.headers)),
                                timeout=10) as resp:
        doc = json.load(resp)
    assert doc["Text"] == "panoflow_up 1\n" and doc["DeviceId"] == device_id and doc["ReceivedTime"]
    path = f"/_panoflow/devices/{device_id}/logs?limit=0"
    status, _, doc = raw_request(endpoint, "GET", path, signed_headers(endpoint, key, "GET", path))
    assert (status, doc["Fields"][0]["Name"]) == (400, "limit")
    path = "/_panoflow/devices/device-nope/metrics"
    status, _, doc = raw_request(endpoint, "GET", path, signed_headers(endpoint, key, "GET", path))
    assert (status, doc["Code"]) == (404, "ResourceNotFoundException")
    pano.delete_device(DeviceId=device_id)
    assert post(endpoint, "/_panoflow/device/v1/metrics", {"Text": ""}, token)[0] == 403


# --- the sync body parser never fails with anything but a ValidationException
# ------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
_member = st.sampled_from(["Software", "NetworkInterfaces", "Instances", "Jobs", "AckedSignals"])
_bodies = _json | st.dictionaries(_member, _json, max_size=5) | st.fixed_dictionaries({
    "Instances": st.lists(st.dictionaries(st.sampled_from(["ApplicationInstanceId", "Status", "HealthStatus",
                                                           "StatusDescription", "NodeStatuses"]),
                                          _json | st.sampled_from(["DEPLOYMENT_SUCCEEDED", "RUNNING"])),
                          max_size=3)})


@settings(max_examples=150, deadline=None)
@given(_bodies)
def test_sync_parser_only_raises_validation(body: Any) -> None:
    try:
        parse_sync_report(body)
    except ApiError as exc:
        assert exc.code == "ValidationException" and exc.fields["Fields"][0]["Name"]


@pytest.fixture
def token(endpoint: str, pano: Any) -> str:
    return claimed(endpoint, pano)[1]


# the fixtures are made once per test, not per example: every example syncs the same claimed device
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=_bodies)
def test_sync_never_answers_5xx(endpoint: str, token: str, body: Any) -> None:
    status, doc = post(endpoint, SYNC, body, token)
    assert status in (200, 400), doc
