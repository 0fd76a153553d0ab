"""SigV4 attacks on the Panorama API routes (issue #16): a signed body swapped in transit, UNSIGNED-PAYLOAD, a
credential scoped to another region, duplicated query keys, and a replayed non-idempotent call: each gets 403
and changes nothing. Requests are signed by botocore's own signer and sent raw to a real server."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any
from urllib.parse import urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from panoflow.controlplane import AccessKey
from tests.support.control_plane import raw_request


def _sign(endpoint: str, key: AccessKey, method: str, path: str, body: bytes = b"", *,
          content_sha256: str | None = None, region: str = "us-east-1") -> dict[str, str]:
    """Headers botocore's signer produces; with ``content_sha256`` the x-amz-content-sha256 header is
    signed."""
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    headers = {"X-Amz-Date": stamp, "Content-Type": "application/json"}
    if content_sha256 is not None:
        headers["X-Amz-Content-SHA256"] = content_sha256
    req = AWSRequest(method=method, url=endpoint + path, headers=headers, data=body)
    req.context["timestamp"] = stamp
    signer = SigV4Auth(Credentials(key.access_key_id, key.secret_access_key), "panorama", region)
    signer.add_auth(req)
    out = {k: str(v) for k, v in req.headers.items()}
    out["Host"] = urlsplit(endpoint).netloc
    return out


def _devices(pano: Any) -> list[str]:
    return sorted(d["Name"] for d in pano.list_devices()["Devices"])


def test_a_signed_body_cannot_be_swapped(endpoint: str, key: AccessKey, pano: Any) -> None:
    signed = json.dumps({"Name": "dev2"}).encode()
    headers = _sign(endpoint, key, "POST", "/devices", signed,
                    content_sha256=hashlib.sha256(signed).hexdigest())
    assert "x-amz-content-sha256" in headers["Authorization"]
    status, _h, doc = raw_request(endpoint, "POST", "/devices", headers,
                                  json.dumps({"Name": "attacker"}).encode())
    assert status == 403, doc
    assert "x-amz-content-sha256" in doc["Message"] or "x-amz-content-sha256" in doc.get("message", "")
    assert _devices(pano) == []
    # the same request with the body that was signed goes through
    status, _h, doc = raw_request(endpoint, "POST", "/devices", headers, signed)
    assert status == 200, doc
    assert _devices(pano) == ["dev2"]


def test_unsigned_payload_is_refused(endpoint: str, key: AccessKey, pano: Any) -> None:
    body = json.dumps({"Name": "dev3"}).encode()
    for claim in ("UNSIGNED-PAYLOAD", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"):
        headers = _sign(endpoint, key, "POST", "/devices", body, content_sha256=claim)
        status, _h, _doc = raw_request(endpoint, "POST", "/devices", headers, body)
        assert status == 403, claim
    assert _devices(pano) == []


def test_the_credential_scope_must_name_this_region(endpoint: str, key: AccessKey, pano: Any) -> None:
    body = json.dumps({"Name": "dev4"}).encode()
    headers = _sign(endpoint, key, "POST", "/devices", body, region="eu-west-1")
    status, _h, doc = raw_request(endpoint, "POST", "/devices", headers, body)
    assert status == 403 and "region" in json.dumps(doc)
    assert _devices(pano) == []


def test_duplicate_query_keys_are_refused(endpoint: str, key: AccessKey) -> None:
    """SigV4 sorts repeated values, so ``?MaxResults=1&MaxResults=2`` and ``?MaxResults=2&MaxResults=1`` carry
    one signature: a scalar parameter sent twice is refused rather than guessed."""
    path = "/devices?MaxResults=1&MaxResults=2"
    status, _h, doc = raw_request(endpoint, "GET", path, _sign(endpoint, key, "GET", path))
    assert status == 400 and "appears 2 times" in json.dumps(doc)
    path = "/devices?MaxResults=2"
    status, _h, _doc = raw_request(endpoint, "GET", path, _sign(endpoint, key, "GET", path))
    assert status == 200


def test_a_replayed_non_idempotent_call_is_refused(endpoint: str, key: AccessKey, pano: Any) -> None:
    """A captured call sent again from the attacker's host (127.0.0.2 plays it) is refused; the same client
    sending it again (an SDK retrying a call that timed out, on a new connection) is not refused as a
    replay."""
    body = json.dumps({"Name": "dev5"}).encode()
    headers = _sign(endpoint, key, "POST", "/devices", body)
    first, _h, _doc = raw_request(endpoint, "POST", "/devices", headers, body)
    assert first == 200
    pano.delete_device(DeviceId=pano.list_devices()["Devices"][0]["DeviceId"])
    again, _h, doc = raw_request(endpoint, "POST", "/devices", headers, body, source="127.0.0.2")  # captured
    assert again == 403 and "replay" in json.dumps(doc)
    assert _devices(pano) == []
    headers = _sign(endpoint, key, "POST", "/devices", body := json.dumps({"Name": "dev6"}).encode())
    assert raw_request(endpoint, "POST", "/devices", headers, body)[0] == 200
    # a retry: its own host, new connection
    retried, _h, doc = raw_request(endpoint, "POST", "/devices", headers, body)
    assert retried != 403 or "replay" not in json.dumps(doc), doc
    # the same client repeating a call on its own connection within the same second is not a replay
    first = pano.create_package(PackageName="same")["PackageId"]
    assert pano.create_package(PackageName="same")["PackageId"] == first  # CreatePackage is get-or-create
    # reads may be repeated
    status_a, _h, _d = raw_request(endpoint, "GET", "/devices", g := _sign(endpoint, key, "GET", "/devices"))
    status_b, _h, _d = raw_request(endpoint, "GET", "/devices", g)
    assert status_a == status_b == 200
