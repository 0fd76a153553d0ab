"""The asset store (a folder, and S3 on a real moto server) and the /_panoflow/assets/ routes of a real
control plane (docs/device-protocol.md section 3)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import stat
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from panoflow.controlplane import AccessKey, ControlPlane
from panoflow.controlplane.assets import (
    AssetDigestMismatch,
    AssetKeyError,
    AssetNotFound,
    AssetStore,
    AssetTooLarge,
    LocalAssetStore,
    S3AssetStore,
    check_key,
    open_assets,
)
from tests.support.control_plane import raw_request

BUCKET = "pf-assets"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def s3_env(moto_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """boto3 pointed at moto through the environment, as `--assets s3://...` would find it; a fresh bucket."""
    import boto3

    for name, value in (("AWS_ENDPOINT_URL_S3", moto_url), ("AWS_ACCESS_KEY_ID", "testing"),
                        ("AWS_SECRET_ACCESS_KEY", "testing"), ("AWS_DEFAULT_REGION", "us-east-1"),
                        ("AWS_CONFIG_FILE", str(tmp_path / "none")),
                        ("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    bucket = f"{BUCKET}-{os.urandom(4).hex()}"
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=bucket)
    return bucket


@pytest.fixture(params=["folder", "s3"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> AssetStore:
    if request.param == "folder":
        return open_assets(tmp_path / "assets")
    bucket = request.getfixturevalue("s3_env")
    return open_assets(f"s3://{bucket}/some/prefix")


# -- keys ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "..", "a//b", "a/./b", "a/", "a b", "a\\b", "é",
                                 ".panoflow/sha256/x", "a/b?c", "x" * 1025])
def test_bad_keys_are_refused(key: str) -> None:
    with pytest.raises(AssetKeyError):
        check_key(key)


def test_good_keys() -> None:
    for key in ("123456789012/nodePackages/packageId-x/binaries/" + "a" * 64 + ".tar.gz", "a.b-c_d/.e", "x"):
        assert check_key(key) == key


# -- both stores ---------------------------------------------------------------------------------------------


def test_put_open_stat(any_store: AssetStore) -> None:
    data = os.urandom(300_000)
    key = f"acct/nodePackages/p/binaries/{_sha(data)}.bin"
    assert any_store.stat(key) is None and any_store.sha256(key) is None
    info = any_store.put(key, io.BytesIO(data), sha256=_sha(data))
    assert (info.key, info.size, info.sha256) == (key, len(data), _sha(data))
    stat_ = any_store.stat(key)
    assert stat_ is not None and (stat_.size, stat_.sha256) == (len(data), _sha(data))
    with any_store.open(key) as f:
        assert f.read() == data
    # no digest given: computed while streaming, and recorded
    other = any_store.put("acct/x.json", io.BytesIO(b"{}"))
    assert other.sha256 == _sha(b"{}") and any_store.sha256("acct/x.json") == _sha(b"{}")
    with pytest.raises(AssetNotFound):
        any_store.open("acct/missing")
    with pytest.raises(AssetKeyError):
        any_store.put("../escape", io.BytesIO(b"x"))


def test_a_wrong_digest_keeps_nothing(any_store: AssetStore) -> None:
    good = b"the real bytes"
    key = "acct/obj"
    any_store.put(key, io.BytesIO(good))
    with pytest.raises(AssetDigestMismatch, match="was not kept"):
        any_store.put(key, io.BytesIO(b"tampered"), sha256=_sha(b"something else"))
    with any_store.open(key) as f:
        assert f.read() == good  # the earlier object is untouched
    with pytest.raises(AssetDigestMismatch):
        any_store.put("acct/new", io.BytesIO(b"tampered"), sha256=_sha(b"something else"))
    assert any_store.stat("acct/new") is None
    with pytest.raises(AssetTooLarge):
        any_store.put("acct/big", io.BytesIO(b"x" * 100), max_size=10)
    assert any_store.stat("acct/big") is None


def test_s3_multipart_upload_and_digest_metadata(s3_env: str) -> None:
    import boto3

    store = open_assets(f"s3://{s3_env}/pre")
    assert isinstance(store, S3AssetStore) and store.bucket == s3_env
    data = os.urandom(9 * 1024 * 1024)  # above upload_fileobj's 8 MiB multipart threshold
    info = store.put("acct/big.bin", io.BytesIO(data), sha256=_sha(data))
    assert info.size == len(data)
    head = boto3.client("s3").head_object(Bucket=s3_env, Key="pre/acct/big.bin")
    assert head["Metadata"]["sha256"] == _sha(data) and head["ContentLength"] == len(data)
    with pytest.raises(AssetDigestMismatch):
        store.put("acct/big2.bin", io.BytesIO(data), sha256=_sha(b"other"))
    assert store.stat("acct/big2.bin") is None
    listed = boto3.client("s3").list_objects_v2(Bucket=s3_env).get("Contents", [])
    assert sorted(o["Key"] for o in listed) == ["pre/acct/big.bin"]  # no temporary objects left behind


def test_folder_store_files_and_records(tmp_path: Path) -> None:
    store = LocalAssetStore(tmp_path / "a")
    store.put("k/one", io.BytesIO(b"1"))
    path = tmp_path / "a" / "k" / "one"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert not list((tmp_path / "a" / ".panoflow" / "tmp").iterdir())  # temp files renamed away
    path.write_bytes(b"changed behind the store's back")
    stat_ = store.stat("k/one")
    assert stat_ is not None and stat_.sha256 is None  # the record no longer matches the file
    assert store.sha256("k/one") == _sha(b"changed behind the store's back")


def test_open_assets_specs(tmp_path: Path) -> None:
    from panoflow.controlplane.assets import AssetError

    assert isinstance(open_assets(tmp_path / "new" / "dir"), LocalAssetStore)
    assert (tmp_path / "new" / "dir").is_dir()
    for bad in ("s3://", "ftp://host/x", "s3://bucket/../x"):
        with pytest.raises(AssetError):
            open_assets(bad)


# -- the HTTP routes -----------------------------------------------------------------------------------------


def _signed(endpoint: str, key: AccessKey, method: str, path: str, sha: str | None = None,
            secret: str | None = None) -> dict[str, str]:
    headers = {"x-amz-content-sha256": sha} if sha else {}
    req = AWSRequest(method=method, url=endpoint + path, headers=headers, data=b"")
    SigV4Auth(Credentials(key.access_key_id, secret or key.secret_access_key), "panorama",
              "us-east-1").add_auth(req)
    return dict(req.headers.items())


def _http(endpoint: str, method: str, path: str, headers: dict[str, str],
          body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    import http.client

    u = urlsplit(endpoint)
    conn = http.client.HTTPConnection(u.hostname or "127.0.0.1", u.port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


PATH = "/_panoflow/assets/123456789012/nodePackages/p/binaries/obj.bin"


def test_put_head_get_over_http(endpoint: str, key: AccessKey, plane: ControlPlane) -> None:
    data = os.urandom(70_000)
    status, _, body = _http(endpoint, "PUT", PATH, _signed(endpoint, key, "PUT", PATH, _sha(data)), data)
    assert status == 200, body
    assert json.loads(body) == {"Key": PATH.removeprefix("/_panoflow/assets/"), "Sha256": _sha(data),
                                "Size": len(data)}
    status, headers, _ = _http(endpoint, "HEAD", PATH, _signed(endpoint, key, "HEAD", PATH))
    assert status == 200 and headers["content-length"] == str(len(data))
    assert headers["x-panoflow-sha256"] == _sha(data)
    status, headers, body = _http(endpoint, "GET", PATH, _signed(endpoint, key, "GET", PATH))
    assert status == 200 and body == data
    missing = PATH + ".nope"
    assert _http(endpoint, "HEAD", missing, _signed(endpoint, key, "HEAD", missing))[0] == 404
    status, _, body = _http(endpoint, "GET", missing, _signed(endpoint, key, "GET", missing))
    assert status == 404 and json.loads(body)["Code"] == "NotFoundException"
    # a small PUT signed over its body (no x-amz-content-sha256) works too
    small = PATH + ".small"
    status, _, body = _http(endpoint, "PUT", small, _signed_body(endpoint, key, small, b"tiny"), b"tiny")
    assert status == 200 and json.loads(body)["Sha256"] == _sha(b"tiny")


def _signed_body(endpoint: str, key: AccessKey, path: str, body: bytes) -> dict[str, str]:
    req = AWSRequest(method="PUT", url=endpoint + path, headers={}, data=body)
    SigV4Auth(Credentials(key.access_key_id, key.secret_access_key), "panorama", "us-east-1").add_auth(req)
    return dict(req.headers.items())


def test_a_wrong_hash_is_refused_and_not_kept(endpoint: str, key: AccessKey, plane: ControlPlane) -> None:
    data = b"bytes that do not match"
    status, _, body = _http(endpoint, "PUT", PATH, _signed(endpoint, key, "PUT", PATH, _sha(b"other")), data)
    assert status == 400
    err = json.loads(body)
    assert err["Code"] == "ValidationException" and "not kept" in err["Message"]
    assert plane.assets.stat(PATH.removeprefix("/_panoflow/assets/")) is None
    status, _, body = _http(endpoint, "PUT", PATH, _signed(endpoint, key, "PUT", PATH, "UNSIGNED-PAYLOAD"),
                            data)
    assert status == 403  # refused by the signature check itself (docs/security.md)


def test_unsigned_and_badly_signed_requests(endpoint: str, key: AccessKey, plane: ControlPlane) -> None:
    status, _, body = _http(endpoint, "PUT", PATH, {"x-amz-content-sha256": _sha(b"x")}, b"x")
    assert status == 403 and json.loads(body)["Code"] == "AccessDeniedException"
    assert "keys create" in json.loads(body)["Message"]
    bad = _signed(endpoint, key, "PUT", PATH, _sha(b"x"), secret="wrong" * 8)
    assert _http(endpoint, "PUT", PATH, bad, b"x")[0] == 403
    assert _http(endpoint, "HEAD", PATH, {})[0] == 403
    assert _http(endpoint, "GET", PATH, {})[0] == 403
    assert plane.assets.stat(PATH.removeprefix("/_panoflow/assets/")) is None


def test_limit_and_bad_keys_over_http(endpoint: str, key: AccessKey, plane: ControlPlane) -> None:
    plane.max_asset_size = 10
    data = b"x" * 11
    status, _, body = _http(endpoint, "PUT", PATH, _signed(endpoint, key, "PUT", PATH, _sha(data)), data)
    assert status == 400 and "limit" in json.loads(body)["Message"]
    for path in ("/_panoflow/assets/a/%2E%2E/b", "/_panoflow/assets/a%20b", "/_panoflow/assets/.panoflow/x"):
        status, _, body = _http(endpoint, "GET", path, _signed(endpoint, key, "GET", path))
        assert status == 400, path
        assert json.loads(body)["Code"] == "ValidationException"


def _device_token(endpoint: str, pano: Any) -> str:
    bundle = pano.provision_device(Name="edge-assets")["Certificates"]
    raw = bundle if isinstance(bundle, bytes) else base64.b64decode(bundle)
    with zipfile.ZipFile(io.BytesIO(raw)) as z:
        info = json.loads(z.read("panoflow-device.json"))
    status, _, doc = raw_request(endpoint, "POST", "/_panoflow/device/v1/claim",
                                 {"Content-Type": "application/json"},
                                 json.dumps({"DeviceId": info["DeviceId"], "ClaimToken": info["ClaimToken"],
                                             "Software": {"Version": "0"}}).encode())
    if status != 200:
        pytest.skip(f"the device claim route answered {status}: the device API is not there yet")
    return str(doc["Token"])


def test_get_with_a_device_token(endpoint: str, key: AccessKey, plane: ControlPlane, pano: Any) -> None:
    assert _http(endpoint, "GET", PATH, {"Authorization": "Bearer not-a-token"})[0] == 401
    if getattr(plane, "authenticate_device", None) is None:
        pytest.skip("ControlPlane.authenticate_device is not there yet (the device API adds it)")
    plane.assets.put(PATH.removeprefix("/_panoflow/assets/"), io.BytesIO(b"model bytes"))
    token = _device_token(endpoint, pano)
    status, _, body = _http(endpoint, "GET", PATH, {"Authorization": f"Bearer {token}"})
    # only assets of the device's own desired state (tests/security/test_device_scope.py has the allowed case)
    assert status == 403 and b"deployed to this device" in body
    # a device token is for reading only
    assert _http(endpoint, "HEAD", PATH, {"Authorization": f"Bearer {token}"})[0] == 403

