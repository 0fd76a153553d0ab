"""Access keys (issue #16): a read-only key reads but cannot change anything; a deactivated, deleted or
rotated-out key is refused at once; the CLI lists keys without secrets. A real control plane on loopback,
boto3 signing."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from panoflow.controlplane import AccessKey, create_access_key
from panoflow.controlplane.keys import delete_key, list_keys, rotate_key, set_status
from panoflow.controlplane.store import Store
from tests.support.cli import panoflow_argv
from tests.support.control_plane import error_of, make_client, raw_request, signed_headers


def _client(endpoint: str, key: AccessKey) -> Any:
    return make_client(endpoint, key.access_key_id, key.secret_access_key)


def _denied(call: Any, **kwargs: Any) -> str:
    with pytest.raises(ClientError) as err:
        call(**kwargs)
    code, status, message = error_of(err.value)
    assert (code, status) == ("AccessDeniedException", 403), message
    return message


def test_a_read_only_key_only_reads(endpoint: str, store: Store, pano: Any) -> None:
    device = pano.provision_device(Name="edge-1")["DeviceId"]
    reader = _client(endpoint, create_access_key(store, read_only=True))
    assert [d["DeviceId"] for d in reader.list_devices()["Devices"]] == [device]
    assert reader.describe_device(DeviceId=device)["DeviceId"] == device
    assert "read-only" in _denied(reader.provision_device, Name="edge-2")
    _denied(reader.delete_device, DeviceId=device)
    _denied(reader.create_package, PackageName="p")
    assert [d["Name"] for d in pano.list_devices()["Devices"]] == ["edge-1"]


def test_a_read_only_key_cannot_upload_assets(endpoint: str, store: Store) -> None:
    reader = create_access_key(store, read_only=True)
    path = "/_panoflow/assets/123456789012/p/binaries/x.bin"
    status, _h, doc = raw_request(endpoint, "PUT", path,
                                  signed_headers(endpoint, reader, "PUT", path, body=b"x"), b"x")
    assert status == 403 and "read-only" in doc["Message"]


def test_deactivated_deleted_and_rotated_keys_are_refused(endpoint: str, store: Store) -> None:
    first = create_access_key(store)
    client = _client(endpoint, first)
    client.list_devices()
    set_status(store, first.access_key_id, active=False)
    _denied(client.list_devices)
    set_status(store, first.access_key_id, active=True)
    client.list_devices()
    new = rotate_key(store, first.access_key_id)  # the old one is deactivated
    _denied(client.list_devices)
    _client(endpoint, new).list_devices()
    assert {k.access_key_id: k.status for k in list_keys(store)}[first.access_key_id] == "Inactive"
    kept = rotate_key(store, new.access_key_id, keep_old=True)  # a grace period: both work
    _client(endpoint, new).list_devices()
    _client(endpoint, kept).list_devices()
    delete_key(store, new.access_key_id)
    _denied(_client(endpoint, new).list_devices)


def test_keys_cli_never_prints_a_secret_it_did_not_create(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'cp.db'}"

    def run(*args: str) -> str:
        r = subprocess.run(panoflow_argv("control-plane", "keys", *args, "--db", db), capture_output=True,
                           text=True, timeout=60, check=False)
        assert r.returncode == 0, r.stderr
        return r.stdout

    created = json.loads(run("create", "--read-only"))
    listed = [json.loads(line) for line in run("list").splitlines()]
    assert listed == [{"AccessKeyId": created["AccessKeyId"], "Status": "Active", "Policy": "ReadOnly",
                       "CreatedTime": listed[0]["CreatedTime"]}]
    rotated = json.loads(run("rotate", created["AccessKeyId"]))
    assert rotated["Replaces"] == created["AccessKeyId"]
    text = run("list")
    assert created["SecretAccessKey"] not in text and rotated["SecretAccessKey"] not in text
    assert '"Policy": "ReadOnly"' in text.splitlines()[1]
    run("deactivate", rotated["AccessKeyId"])
    run("delete", created["AccessKeyId"])
    assert [json.loads(line)["Status"] for line in run("list").splitlines()] == ["Inactive"]
    r = subprocess.run(panoflow_argv("control-plane", "keys", "delete", "PFAKNOSUCHKEY", "--db", db),
                       capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode != 0 and "no access key 'PFAKNOSUCHKEY'" in r.stderr and "Traceback" not in r.stderr
