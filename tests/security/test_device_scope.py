"""Device scope (issue #16): a device token downloads only the assets of packages in that device's own desired
state. Device A deployed with a package gets its asset; A's token gets 403 for another package's model, and
device B (nothing deployed) gets 403 for A's asset. A real control plane on loopback, real claims, raw
HTTP."""

from __future__ import annotations

import hashlib
import http.client
import io
import json
from typing import Any
from urllib.parse import urlsplit

from panoflow.controlplane import AccessKey, ControlPlane
from tests.support.control_plane import deploy, signed_headers
from tests.support.device_protocol import claimed, register_debug_server

OWN = "123456789012/pkg-a/binaries/model.tar.gz"
OTHER = "123456789012/pkg-b/binaries/model.tar.gz"


def _get(endpoint: str, key: str, token: str | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    u = urlsplit(endpoint)
    conn = http.client.HTTPConnection(u.hostname or "127.0.0.1", u.port, timeout=10)
    try:
        conn.request("GET", f"/_panoflow/assets/{key}",
                     headers=headers if headers is not None else {"Authorization": f"Bearer {token}"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def _register_with_asset(pano: Any, plane: ControlPlane, asset_key: str) -> None:
    """The debug-server app's code package, registered, its version holding ``asset_key`` as an asset."""
    package_id, _manifest, _patch = register_debug_server(pano, plane)
    # the version's assets, as RegisterPackageVersion records a code asset
    with plane.store.transaction() as tx:
        [row] = tx.select("package_versions", {"package_id": package_id})
        tx.update("package_versions", row.id, {**row.doc, "Assets": [
            {"FileName": "model.tar.gz", "Key": asset_key, "Sha256": hashlib.sha256(b"A").hexdigest(),
             "Size": 1}]})


def test_a_device_reads_only_its_own_assets(endpoint: str, pano: Any, plane: ControlPlane, key: AccessKey,
                                            graph_text: str) -> None:
    plane.assets.put(OWN, io.BytesIO(b"A"))
    plane.assets.put(OTHER, io.BytesIO(b"B: another package's model, never deployed to A"))
    device_a, token_a = claimed(endpoint, pano, "edge-a")
    _device_b, token_b = claimed(endpoint, pano, "edge-b")
    _register_with_asset(pano, plane, OWN)
    assert _get(endpoint, OWN, token_a)[0] == 403  # not deployed yet
    deploy(pano, device_a, graph_text)
    assert _get(endpoint, OWN, token_a) == (200, b"A")
    status, body = _get(endpoint, OTHER, token_a)  # the attack: A reads B's model
    assert status == 403 and json.loads(body)["Code"] == "AccessDeniedException"
    assert b"deployed to this device" in body
    assert _get(endpoint, OWN, token_b)[0] == 403  # B reads A's asset
    # the operator (SigV4) still reads anything
    path = f"/_panoflow/assets/{OTHER}"
    assert _get(endpoint, OTHER, headers=signed_headers(endpoint, key, "GET", path))[0] == 200
