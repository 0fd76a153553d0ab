"""Device jobs (REBOOT, OTA) and tags on every taggable resource."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.support.control_plane import error_of


def test_reboot_and_ota_jobs(pano: Any, device: str) -> None:
    reboot = pano.create_job_for_devices(DeviceIds=[device], JobType="REBOOT")["Jobs"]
    assert [j["DeviceId"] for j in reboot] == [device]
    ota = pano.create_job_for_devices(DeviceIds=[device], JobType="OTA", DeviceJobConfig={
        # pinned (docs/security.md)
        "OTAJobConfig": {"ImageVersion": "4.3.93@sha256:" + "ab" * 32}})["Jobs"][0]
    job = pano.describe_device_job(JobId=ota["JobId"])
    assert (job["JobType"], job["Status"], job["ImageVersion"],
            job["DeviceName"]) == ("OTA", "PENDING", "4.3.93",
                                                                                       "edge-1")
    listed = pano.list_devices_jobs(DeviceId=device)["DeviceJobs"]
    assert [j["JobType"] for j in listed] == ["REBOOT", "OTA"]
    assert pano.describe_device(DeviceId=device)["LatestDeviceJob"] == {"JobType": "OTA", "Status": "PENDING",
                                                                        "ImageVersion": "4.3.93"}
    page = pano.list_devices_jobs(MaxResults=1)
    assert len(page["DeviceJobs"]) == 1 and page["NextToken"]
    rest = pano.list_devices_jobs(MaxResults=1, NextToken=page["NextToken"])
    assert rest["DeviceJobs"][0]["JobId"] == ota["JobId"] and "NextToken" not in rest


def test_job_errors(pano: Any, device: str) -> None:
    with pytest.raises(ClientError) as err:
        pano.create_job_for_devices(DeviceIds=[device], JobType="OTA")
    assert error_of(err.value)[:2] == ("ValidationException", 400)
    assert "ImageVersion" in error_of(err.value)[2]
    with pytest.raises(ClientError) as err:
        pano.create_job_for_devices(DeviceIds=["device-missing"], JobType="REBOOT")
    assert error_of(err.value)[:2] == ("ResourceNotFoundException", 404)
    with pytest.raises(ClientError) as err:
        pano.describe_device_job(JobId="job-missing")
    assert error_of(err.value)[:2] == ("ResourceNotFoundException", 404)


def test_tags_on_device_package_and_instance(pano: Any, device: str, graph_text: str) -> None:
    arns = [pano.describe_device(DeviceId=device)["Arn"], pano.create_package(PackageName="P1")["Arn"]]
    iid = pano.create_application_instance(
        DefaultRuntimeContextDevice=device, ManifestPayload={"PayloadData": graph_text}
    )["ApplicationInstanceId"]
    arns.append(pano.describe_application_instance(ApplicationInstanceId=iid)["Arn"])
    for arn in arns:
        pano.tag_resource(ResourceArn=arn, Tags={"a": "1", "b": "2"})
        pano.tag_resource(ResourceArn=arn, Tags={"b": "3"})
        assert pano.list_tags_for_resource(ResourceArn=arn)["Tags"] == {"a": "1", "b": "3"}
        pano.untag_resource(ResourceArn=arn, TagKeys=["a", "zzz"])
        assert pano.list_tags_for_resource(ResourceArn=arn)["Tags"] == {"b": "3"}
    assert pano.describe_device(DeviceId=device)["Tags"] == {"b": "3"}


def test_tags_on_unknown_resources(pano: Any) -> None:
    missing = "arn:aws:panorama:us-east-1:123456789012:device/device-nope"
    with pytest.raises(ClientError) as err:
        pano.list_tags_for_resource(ResourceArn=missing)
    assert error_of(err.value)[:2] == ("ResourceNotFoundException", 404)
    with pytest.raises(ClientError) as err:
        pano.tag_resource(ResourceArn="not-an-arn", Tags={"a": "b"})
    assert error_of(err.value)[:2] == ("ValidationException", 400)
