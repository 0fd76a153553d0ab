"""Packages, versions, nodes and the RTSP camera template job."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.controlplane.conftest import error_of


def test_package_lifecycle(pano: Any) -> None:
    created = pano.create_package(PackageName="SQUEEZENET_PYTORCH", Tags={"team": "cv"})
    pid = created["PackageId"]
    loc = created["StorageLocation"]
    assert loc["Bucket"] and loc["ManifestPrefixLocation"].endswith(f"{pid}/manifests")
    assert pano.create_package(PackageName="SQUEEZENET_PYTORCH")["PackageId"] == pid  # idempotent by name
    described = pano.describe_package(PackageId=pid)
    assert (described["PackageName"], described["Tags"]) == ("SQUEEZENET_PYTORCH", {"team": "cv"})
    assert [p["PackageId"] for p in pano.list_packages()["Packages"]] == [pid]

    pano.register_package_version(PackageId=pid, PackageVersion="1.0", PatchVersion="abc123", MarkLatest=True)
    pano.register_package_version(PackageId=pid, PackageVersion="1.0", PatchVersion="def456")
    latest = pano.describe_package_version(PackageId=pid, PackageVersion="1.0")
    assert (latest["PatchVersion"], latest["IsLatestPatch"], latest["Status"]) == ("abc123", True,
                                                                                   "REGISTER_COMPLETED")
    other = pano.describe_package_version(PackageId=pid, PackageVersion="1.0", PatchVersion="def456")
    assert other["IsLatestPatch"] is False

    with pytest.raises(ClientError) as err:
        pano.delete_package(PackageId=pid)
    assert error_of(err.value)[:2] == ("ConflictException", 409)

    pano.deregister_package_version(PackageId=pid, PackageVersion="1.0", PatchVersion="abc123",
                                    UpdatedLatestPatchVersion="def456")
    assert pano.describe_package_version(PackageId=pid, PackageVersion="1.0")["PatchVersion"] == "def456"
    with pytest.raises(ClientError) as err:
        pano.describe_package_version(PackageId=pid, PackageVersion="1.0", PatchVersion="abc123")
    assert error_of(err.value)[:2] == ("ResourceNotFoundException", 404)

    pano.delete_package(PackageId=pid, ForceDelete=True)
    assert pano.list_packages()["Packages"] == []
    with pytest.raises(ClientError) as err:
        pano.describe_package(PackageId=pid)
    assert error_of(err.value)[:2] == ("ResourceNotFoundException", 404)


def test_camera_template_job_creates_a_media_source_node(pano: Any) -> None:
    job = pano.create_node_from_template_job(
        TemplateType="RTSP_CAMERA_STREAM", OutputPackageName="lobby_cam", OutputPackageVersion="1.0",
        NodeName="lobby", NodeDescription="Lobby camera",
        TemplateParameters={"Username": "admin", "Password": "hunter2", "StreamUrl": "rtsp://10.0.0.5/live"})
    described = pano.describe_node_from_template_job(JobId=job["JobId"])
    assert described["Status"] == "SUCCEEDED"
    assert described["TemplateParameters"] == {"Username": "SAVED_AS_SECRET", "Password": "SAVED_AS_SECRET",
                                               "StreamUrl": "rtsp://10.0.0.5/live"}
    assert [j["JobId"] for j in pano.list_node_from_template_jobs()["NodeFromTemplateJobs"]] == [job["JobId"]]

    nodes = pano.list_nodes(Category="MEDIA_SOURCE")["Nodes"]
    assert [(n["Name"], n["PackageName"], n["PackageVersion"]) for n in nodes] == [("lobby", "lobby_cam", "1.0")]
    node = pano.describe_node(NodeId=nodes[0]["NodeId"])
    assert node["NodeInterface"] == {"Inputs": [], "Outputs": [
        {"Name": "video_out", "Type": "MEDIA", "Description": "The camera's RTSP stream"}]}
    assert "hunter2" not in repr(node)
    assert pano.list_nodes(Category="ML_MODEL")["Nodes"] == []
    version = pano.describe_package_version(PackageId=nodes[0]["PackageId"], PackageVersion="1.0")
    assert version["PatchVersion"] == nodes[0]["PatchVersion"]


def test_camera_template_needs_a_stream_url(pano: Any) -> None:
    with pytest.raises(ClientError) as err:
        pano.create_node_from_template_job(
            TemplateType="RTSP_CAMERA_STREAM", OutputPackageName="cam", OutputPackageVersion="1.0", NodeName="n",
            TemplateParameters={"Username": "u"})
    code, status, message = error_of(err.value)
    assert (code, status) == ("ValidationException", 400) and "StreamUrl" in message
    with pytest.raises(ClientError) as err:
        pano.create_node_from_template_job(
            TemplateType="ONVIF", OutputPackageName="cam", OutputPackageVersion="1.0", NodeName="n",
            TemplateParameters={"StreamUrl": "rtsp://x"})
    assert "TemplateType" in error_of(err.value)[2]


def test_missing_node_and_job(pano: Any) -> None:
    for call, kwargs in ((pano.describe_node, {"NodeId": "nope"}),
                         (pano.describe_node_from_template_job, {"JobId": "nope"})):
        with pytest.raises(ClientError) as err:
            call(**kwargs)
        assert error_of(err.value)[:2] == ("ResourceNotFoundException", 404)
