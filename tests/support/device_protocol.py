"""A device speaking the control plane's device protocol (docs/device-protocol.md) in raw JSON over loopback:
provision, claim and sync (:func:`claimed` for a device ready to sync), and the debug-server app's code
package registered by an operator (:func:`register_debug_server`)."""

from __future__ import annotations

import hashlib
import io
import json
from typing import Any

from panoflow.controlplane import ControlPlane
from panoflow.controlplane.provisioning import read_bundle
from tests.support.control_plane import APP, raw_request

SYNC = "/_panoflow/device/v1/sync"


def post(endpoint: str, path: str, body: Any, token: str | None = None) -> tuple[int, dict[str, Any]]:
    """POST a JSON body (``bytes`` are sent as they are) with an optional bearer token."""
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    status, _, doc = raw_request(endpoint, "POST", path, headers, data)
    return status, doc


def provision(pano: Any, name: str = "edge-1") -> dict[str, Any]:
    """ProvisionDevice, returning the bundle's document (DeviceId, ClaimToken...)."""
    return read_bundle(pano.provision_device(Name=name)["Certificates"])


def claim(endpoint: str, bundle: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    return post(endpoint, "/_panoflow/device/v1/claim", {
        "DeviceId": bundle["DeviceId"], "ClaimToken": bundle["ClaimToken"], "Software": {"Version": "0.4.0"},
        "Hostname": "edge-01"})


def claimed(endpoint: str, pano: Any, name: str = "edge-1") -> tuple[str, str]:
    """A provisioned and claimed device: (device id, token)."""
    status, doc = claim(endpoint, provision(pano, name))
    assert status == 200, doc
    return doc["DeviceId"], doc["Token"]


def sync(endpoint: str, token: str, **report: Any) -> dict[str, Any]:
    status, doc = post(endpoint, SYNC, {"Software": {"Version": "0.4.0"}, **report}, token)
    assert status == 200, doc
    return doc


def running(iid: str, status: str = "DEPLOYMENT_SUCCEEDED", **extra: Any) -> dict[str, Any]:
    return {"ApplicationInstanceId": iid, "Status": status, "HealthStatus": "RUNNING",
            "StatusDescription": "running", **extra}


def register_debug_server(pano: Any, plane: ControlPlane) -> tuple[str, bytes, str]:
    """CreatePackage + RegisterPackageVersion of the debug-server app's code package (its package.json
    uploaded first): (package id, package.json bytes, patch version)."""
    created = pano.create_package(PackageName="DEBUG_SERVER")
    manifest = (APP.parents[1] / "packages" / "123456789012-DEBUG_SERVER-1.0" / "package.json").read_bytes()
    patch = hashlib.sha256(manifest).hexdigest()
    plane.assets.put(f"{created['StorageLocation']['ManifestPrefixLocation']}/{patch}.json",
                     io.BytesIO(manifest))
    pano.register_package_version(PackageId=created["PackageId"], PackageVersion="1.0", PatchVersion=patch,
                                  MarkLatest=True)
    return str(created["PackageId"]), manifest, patch
