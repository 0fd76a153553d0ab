"""Devices over the wire: provision (with its bundle), list (filters, sort, pages), describe, update,
delete."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from botocore.exceptions import ClientError

from panoflow.controlplane.provisioning import CLAIM_TTL, hash_token, read_bundle
from panoflow.controlplane.store import Store
from tests.support.control_plane import error_of


def test_provision_returns_a_claim_bundle(pano: Any, store: Store) -> None:
    out = pano.provision_device(Name="edge-1", Description="lab", Tags={"site": "lab"})
    assert out["Status"] == "AWAITING_PROVISIONING"
    assert out["Arn"] == f"arn:aws:panorama:us-east-1:123456789012:device/{out['DeviceId']}"
    doc = read_bundle(out["Certificates"])
    assert doc["DeviceId"] == out["DeviceId"] and doc["DeviceName"] == "edge-1"
    expires = dt.datetime.strptime(doc["ExpiresAt"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
    left = expires - dt.datetime.now(dt.timezone.utc)
    assert CLAIM_TTL - dt.timedelta(seconds=10) < left <= CLAIM_TTL
    with store.transaction() as tx:  # only the token's hash is kept
        rows = tx.select("claim_tokens", {"device_id": out["DeviceId"]})
    assert [r.id for r in rows] == [hash_token(doc["ClaimToken"])]
    if store.url.startswith("sqlite:///"):
        with open(store.url.removeprefix("sqlite:///"), "rb") as f:
            assert doc["ClaimToken"].encode() not in f.read()
    else:  # PostgreSQL: no row of the tables it could land in holds it
        with store.transaction() as tx:
            assert doc["ClaimToken"] not in repr([tx.select(t) for t in ("devices", "claim_tokens")])


def test_describe_update_delete(pano: Any, device: str) -> None:
    d = pano.describe_device(DeviceId=device)
    assert (d["Name"], d["ProvisioningStatus"], d["DeviceConnectionStatus"]) == (
        "edge-1", "AWAITING_PROVISIONING", "AWAITING_CREDENTIALS")
    assert pano.update_device_metadata(DeviceId=device, Description="rack 3")["DeviceId"] == device
    assert pano.describe_device(DeviceId=device)["Description"] == "rack 3"
    assert pano.delete_device(DeviceId=device)["DeviceId"] == device
    with pytest.raises(ClientError) as err:
        pano.describe_device(DeviceId=device)
    assert error_of(err.value)[:2] == ("ResourceNotFoundException", 404)
    assert err.value.response["ResourceId"] == device


def test_duplicate_name_conflicts(pano: Any, device: str) -> None:
    with pytest.raises(ClientError) as err:
        pano.provision_device(Name="edge-1")
    assert error_of(err.value)[:2] == ("ConflictException", 409)


def test_list_filters_sort_and_pages(pano: Any) -> None:
    ids = [pano.provision_device(Name=f"cam-{i:02d}")["DeviceId"] for i in range(7)]
    pano.provision_device(Name="other")
    assert [d["Name"] for d in pano.list_devices(NameFilter="cam-")["Devices"]] == [
        f"cam-{i:02d}" for i in range(7)
    ]
    desc = pano.list_devices(SortBy="NAME", SortOrder="DESCENDING")["Devices"]
    assert [d["Name"] for d in desc][:2] == ["other", "cam-06"]
    seen, token = [], None
    while True:
        page = pano.list_devices(MaxResults=3, NameFilter="cam-", **({"NextToken": token} if token else {}))
        assert len(page["Devices"]) <= 3
        seen += [d["DeviceId"] for d in page["Devices"]]
        token = page.get("NextToken")
        if not token:
            break
    assert seen == ids
    assert pano.list_devices(DeviceAggregatedStatusFilter="ONLINE")["Devices"] == []


def test_bad_input_names_the_field(pano: Any) -> None:
    with pytest.raises(ClientError) as err:
        pano.provision_device(Name="has space")
    code, status, message = error_of(err.value)
    assert (code, status) == ("ValidationException", 400)
    assert "'Name'" in message and "pattern" in message
    assert err.value.response["Fields"][0]["Name"] == "Name"
    with pytest.raises(ClientError) as err:
        pano.list_devices(NextToken="garbage")
    assert error_of(err.value)[:2] == ("ValidationException", 400)
