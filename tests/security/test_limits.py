"""Per-device rate limits and log quotas (issue #16): one device cannot flood the control plane or fill its
database (the review: ~2.5 GiB of log lines from one device). Beyond either: 429 ThrottlingException with
Retry-After, other devices unaffected. A real control plane on loopback, real claims, raw HTTP."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from panoflow.controlplane import ControlPlane, serve_in_thread
from panoflow.controlplane.limits import DailyQuota, DeviceLimits, RateLimiter
from panoflow.controlplane.store import Store
from tests.support.control_plane import make_client
from tests.support.device_protocol import claimed


def _post(endpoint: str, path: str, token: str, body: Any) -> tuple[int, dict[str, str], dict[str, Any]]:
    u = urlsplit(endpoint)
    conn = http.client.HTTPConnection(u.hostname or "127.0.0.1", u.port, timeout=10)
    try:
        conn.request("POST", path, body=json.dumps(body).encode(),
                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), json.loads(resp.read() or b"{}")
    finally:
        conn.close()


@pytest.fixture
def limited(store: Store, tmp_path: Path, key: Any) -> Iterator[tuple[str, Any]]:
    plane = ControlPlane(store, assets=tmp_path / "assets",
                         limits=DeviceLimits(rate=1, log_bytes_per_day=1000))
    with serve_in_thread(plane) as url:
        pano = make_client(url, key.access_key_id, key.secret_access_key)
        yield url, pano
        pano.close()


def test_a_flooding_device_gets_429_and_others_do_not(limited: tuple[str, Any]) -> None:
    endpoint, pano = limited
    _a, token_a = claimed(endpoint, pano, "edge-a")
    _b, token_b = claimed(endpoint, pano, "edge-b")
    answers = [_post(endpoint, "/_panoflow/device/v1/metrics", token_a, {"Text": "# x\n"}) for _ in range(40)]
    statuses = [a[0] for a in answers]
    assert statuses[0] == 200 and 429 in statuses, statuses
    throttled = next(a for a in answers if a[0] == 429)
    assert throttled[2]["Code"] == "ThrottlingException" and int(throttled[1]["Retry-After"]) >= 1
    assert _post(endpoint, "/_panoflow/device/v1/metrics", token_b, {"Text": "# y\n"})[0] == 200


def test_log_bytes_per_day_are_capped(limited: tuple[str, Any]) -> None:
    endpoint, pano = limited
    _a, token = claimed(endpoint, pano, "edge-a")
    line = {"Time": "2026-12-07T00:00:00Z", "Instance": None, "Node": None, "Line": "x" * 600}
    assert _post(endpoint, "/_panoflow/device/v1/logs", token, {"Lines": [line]})[0] == 200
    status, headers, doc = _post(endpoint, "/_panoflow/device/v1/logs", token, {"Lines": [line]})
    assert status == 429 and "for today" in doc["Message"]
    assert 1 <= int(headers["Retry-After"]) <= 86_400


def test_the_buckets() -> None:
    now = [0.0]
    bucket = RateLimiter(rate=2, burst=3, clock=lambda: now[0])
    assert [bucket.take("d") for _ in range(3)] == [None, None, None]
    assert bucket.take("d") == pytest.approx(0.5)
    assert bucket.take("other") is None
    now[0] += 0.5
    assert bucket.take("d") is None
    quota = DailyQuota(10, clock=lambda: 86_400 * 5 + 3_600)
    assert quota.take("d", 10) is None
    assert quota.take("d", 1) == pytest.approx(86_400 - 3_600)
