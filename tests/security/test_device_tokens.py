"""Device tokens (issue #16): short-lived, renewed by the device before they expire (the old one valid until
the new one is used), refused once expired, and revocable by the operator. A real control plane on loopback,
raw HTTP for the device API, the CLI for the revocation, and the device's own renewal step."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from panoflow.cloud_client.credentials import Credentials
from panoflow.cloud_client.sync import renewal_due
from panoflow.controlplane import ControlPlane, serve_in_thread
from panoflow.controlplane.store import Store
from tests.support.cli import panoflow_argv
from tests.support.control_plane import make_client
from tests.support.device_protocol import claim, post, provision

METRICS = "/_panoflow/device/v1/metrics"


def _ok(endpoint: str, token: str) -> int:
    return post(endpoint, METRICS, {"Text": "# x\n"}, token)[0]


@pytest.fixture
def short_lived(store: Store, tmp_path: Path, key: Any) -> Iterator[tuple[str, Any, ControlPlane]]:
    plane = ControlPlane(store, assets=tmp_path / "assets", token_ttl_s=2.0)
    with serve_in_thread(plane) as url:
        pano = make_client(url, key.access_key_id, key.secret_access_key)
        yield url, pano, plane
        pano.close()


def test_tokens_renew_and_expire(short_lived: tuple[str, Any, ControlPlane]) -> None:
    endpoint, pano, _plane = short_lived
    status, answer = claim(endpoint, provision(pano))
    assert status == 200 and answer["ExpiresAt"].endswith("Z")
    old = answer["Token"]
    status, renewed = post(endpoint, "/_panoflow/device/v1/token", {}, old)
    assert status == 200 and renewed["Token"] != old
    assert _ok(endpoint, old) == 200  # still valid: the device may not have received the new one
    assert _ok(endpoint, renewed["Token"]) == 200  # the new one is used: the old one is retired
    assert _ok(endpoint, old) == 401
    # a token nobody renews stops working when it expires
    deadline = dt.datetime.fromisoformat(renewed["ExpiresAt"].replace("Z", "+00:00"))  # whole seconds
    time.sleep(max(0.0, (deadline - dt.datetime.now(dt.timezone.utc)).total_seconds()) + 1.1)
    status, doc = post(endpoint, METRICS, {"Text": "# x\n"}, renewed["Token"])
    assert status == 401 and "expired" in doc["Message"]


def test_the_operator_revokes_a_device(endpoint: str, pano: Any, store: Store, tmp_path: Path) -> None:
    status, answer = claim(endpoint, provision(pano))
    assert status == 200 and _ok(endpoint, answer["Token"]) == 200
    r = subprocess.run(panoflow_argv("control-plane", "devices", "revoke-tokens", answer["DeviceId"], "--db",
                                     store.url), capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"DeviceId": answer["DeviceId"], "RevokedTokens": 1}
    status, doc = post(endpoint, METRICS, {"Text": "# x\n"}, answer["Token"])
    assert status == 403 and "revoked by the operator" in doc["Message"]


def test_the_device_renews_at_half_life() -> None:
    issued = dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc)
    creds = Credentials("https://cp", "device-1", "d", "1", "r", "t", token_issued=issued.isoformat(),
                        token_expires="2026-12-08T00:00:00Z")
    assert not renewal_due(creds, issued + dt.timedelta(days=3))
    assert renewal_due(creds, issued + dt.timedelta(days=3, hours=12))
    assert not renewal_due(Credentials("https://cp", "device-1", "d", "1", "r", "t"))  # never expires
