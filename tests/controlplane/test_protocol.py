"""The model drives routing, validation and errors; the store migrates by version."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from panoflow.controlplane import ControlPlane, load_model, open_store
from panoflow.controlplane.store import Store, migrations
from tests.support.control_plane import error_of


def test_every_model_operation_routes_to_itself() -> None:
    model = load_model()
    assert len(model.operations) == 34
    for op in model.operations.values():
        path = op.uri.split("?")[0]
        for label in ("DeviceId", "PackageId", "PackageVersion", "PatchVersion", "JobId", "NodeId",
                      "ApplicationInstanceId", "ResourceArn"):
            path = path.replace("{" + label + "}", "x1")
        routed, _labels, _ = model.route(op.method, path)
        assert routed is op, (op.name, path)


def test_arn_labels_are_percent_decoded() -> None:
    op, labels, _ = load_model().route("GET", "/tags/arn%3Aaws%3Apanorama%3Aus-east-1%3A1%3Adevice%2Fd")
    assert op is not None and op.name == "ListTagsForResource"
    assert labels == {"ResourceArn": "arn:aws:panorama:us-east-1:1:device/d"}


def test_implemented_operations() -> None:
    missing = set(load_model().operations) - ControlPlane.implemented()
    assert missing == {"CreatePackageImportJob", "DescribePackageImportJob", "ListPackageImportJobs"}


def test_unsupported_operation_is_a_model_error(pano: Any) -> None:
    with pytest.raises(ClientError) as err:
        pano.list_package_import_jobs()
    code, status, message = error_of(err.value)
    assert (code, status) == ("ValidationException", 400) and "not supported" in message


def test_unknown_operation_is_404(pano: Any) -> None:
    pano.meta.events.register("before-sign.panorama.ListDevices",
                              lambda request, **_: setattr(request, "url",
                                                           request.url.replace("/devices", "/gone")))
    with pytest.raises(ClientError) as err:
        pano.list_devices()
    assert error_of(err.value)[:2] == ("UnknownOperationException", 404)


def test_validation_of_query_types_and_ranges(pano: Any) -> None:
    with pytest.raises(ClientError) as err:
        pano.list_devices(MaxResults=26)
    code, _status, message = error_of(err.value)
    assert code == "ValidationException" and "'MaxResults'" in message and "25" in message
    with pytest.raises(ClientError) as err:
        pano.list_devices(SortBy="COLOUR")
    assert "enum" in error_of(err.value)[2]


def test_missing_required_member(pano: Any) -> None:
    raw: dict[str, Any] = {}

    def strip(request: Any, **_: Any) -> None:
        body = json.loads(request.body)
        del body["ManifestPayload"]
        request.data = json.dumps(body).encode()
        raw["sent"] = True

    pano.meta.events.register("before-sign.panorama.CreateApplicationInstance", strip)
    with pytest.raises(ClientError) as err:
        pano.create_application_instance(DefaultRuntimeContextDevice="device-x",
                                         ManifestPayload={"PayloadData": "{}"})
    assert raw["sent"]
    code, _status, message = error_of(err.value)
    assert code == "ValidationException" and "'ManifestPayload': Member must not be null" in message
    assert err.value.response["Fields"] == [{"Name": "ManifestPayload", "Message": "Member must not be null"}]


def test_migrations_are_versioned_and_idempotent(store: Store, tmp_path: Any) -> None:
    versions = [v for v, _, _ in migrations()]
    assert versions == sorted(versions) and versions[0] == 1
    assert store.schema_version() == versions[-1]
    again = open_store(store.url)
    assert again.schema_version() == versions[-1]
    again.close()
    with pytest.raises(Exception, match="unsupported database URL"):
        open_store("mysql://localhost/cp")
