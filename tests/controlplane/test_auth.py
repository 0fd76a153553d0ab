"""SigV4 over the wire: unsigned, wrongly signed, skewed and unknown-key requests get 403
AccessDeniedException."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from panoflow.controlplane import AccessKey, ControlPlane, open_store, serve_in_thread
from tests.support.control_plane import error_of, make_client, raw_request, signed_headers


def test_unsigned_request_is_denied(endpoint: str) -> None:
    status, headers, body = raw_request(endpoint, "GET", "/devices")
    assert status == 403
    assert headers["x-amzn-ErrorType"] == "AccessDeniedException"
    assert "Missing Authentication Token" in body["message"]


def test_unsigned_unknown_path_is_denied_too(endpoint: str) -> None:
    assert raw_request(endpoint, "GET", "/no/such/thing")[0] == 403


def test_wrong_secret_is_denied(endpoint: str, key: AccessKey) -> None:
    bad = make_client(endpoint, key.access_key_id, "x" * 40)
    with pytest.raises(ClientError) as err:
        bad.list_devices()
    code, status, message = error_of(err.value)
    assert (code, status) == ("AccessDeniedException", 403) and "signature" in message


def test_unknown_key_is_denied(endpoint: str) -> None:
    with pytest.raises(ClientError) as err:
        make_client(endpoint, "PFAKUNKNOWN000000000", "x" * 40).list_devices()
    assert error_of(err.value)[:2] == ("AccessDeniedException", 403)


def test_tampered_request_is_denied(endpoint: str, key: AccessKey) -> None:
    headers = signed_headers(endpoint, key, "GET", "/devices", dt.datetime.now(dt.timezone.utc))
    assert raw_request(endpoint, "GET", "/devices", headers)[0] == 200
    assert raw_request(endpoint, "GET", "/devices?MaxResults=1", headers)[0] == 403


@pytest.mark.parametrize("minutes", [-6, 6])
def test_clock_skew_over_five_minutes_is_denied(endpoint: str, key: AccessKey, minutes: int) -> None:
    when = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=minutes)
    status, headers, body = raw_request(endpoint, "GET", "/devices",
                                        signed_headers(endpoint, key, "GET", "/devices", when))
    assert status == 403 and headers["x-amzn-ErrorType"] == "AccessDeniedException"
    assert "5 minutes" in body["message"] and "clock" in body["message"]
    within = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=minutes * 4 / 6)
    assert raw_request(endpoint, "GET", "/devices",
                       signed_headers(endpoint, key, "GET", "/devices", within))[0] == 200


def test_keys_create_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                         capsys: pytest.CaptureFixture[str]) -> None:
    from panoflow import cli

    if "controlplane" not in cli.COMMANDS:  # until the lead registers the command
        monkeypatch.setattr(cli, "COMMANDS", (*cli.COMMANDS, "controlplane"))
    db = tmp_path / "keys.db"
    assert cli.main(["control-plane", "keys", "create", "--db", f"sqlite:///{db}"]) == 0
    key = json.loads(capsys.readouterr().out)
    assert key["AccessKeyId"].startswith("PFAK") and len(key["SecretAccessKey"]) == 40
    assert db.stat().st_mode & 0o777 == 0o600
    store = open_store(f"sqlite:///{db}")
    try:
        with serve_in_thread(ControlPlane(store)) as url:
            assert make_client(url, key["AccessKeyId"],
                               key["SecretAccessKey"]).list_devices()["Devices"] == []
    finally:
        store.close()
