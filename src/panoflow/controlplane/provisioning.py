"""The provisioning bundle ProvisionDevice returns as ``Certificates``: a zip the device reads once to claim
itself.

Contents (``panoflow-device.json``)::

    {"Version": 1, "DeviceId": "device-...", "DeviceName": "...", "AccountId": "...", "Region": "...",
     "ClaimToken": "<one-time secret>", "ExpiresAt": "2026-...Z",
     "CaCertificate": "-----BEGIN CERTIFICATE-----..."}

``CaCertificate`` (also as ``ca.pem`` beside it, as Panorama's certificates zip carried its root CA) is the
TLS certificate authority the device pins: it trusts that and nothing else for the control plane
(docs/security.md). It is absent only for a control plane served over plain HTTP (development).

The token is valid for :data:`CLAIM_TTL` and only once; the store keeps its SHA-256, never the token. The
exchange of the token for device credentials is the device API (`device_api.py`, docs/device-protocol.md).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import secrets
import zipfile
from dataclasses import dataclass
from typing import Any

__all__ = ["BUNDLE_FILE", "CA_FILE", "CLAIM_TTL", "Bundle", "hash_token", "make_bundle", "read_bundle"]

CLAIM_TTL = dt.timedelta(minutes=5)
BUNDLE_FILE = "panoflow-device.json"
CA_FILE = "ca.pem"


@dataclass(frozen=True)
class Bundle:
    """A provisioning bundle: the zip bytes, the clear token (for the caller only) and its expiry."""

    data: bytes
    token: str
    expires_at: dt.datetime


def hash_token(token: str) -> str:
    """SHA-256 hex of a claim token (what the store keeps)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def make_bundle(*, device_id: str, device_name: str, account_id: str, region: str,
                now: dt.datetime, ca_pem: str | None = None) -> Bundle:
    """Build the zip for a newly provisioned device (``ca_pem``: the CA the device pins, see above)."""
    token = secrets.token_urlsafe(32)
    expires = now + CLAIM_TTL
    doc = {"Version": 1, "DeviceId": device_id, "DeviceName": device_name, "AccountId": account_id,
           "Region": region, "ClaimToken": token, "ExpiresAt": expires.strftime("%Y-%m-%dT%H:%M:%SZ")}
    if ca_pem:
        doc["CaCertificate"] = ca_pem
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        info = zipfile.ZipInfo(BUNDLE_FILE, date_time=now.timetuple()[:6])
        info.external_attr = 0o600 << 16
        zf.writestr(info, json.dumps(doc, indent=2) + "\n")
        if ca_pem:
            ca = zipfile.ZipInfo(CA_FILE, date_time=now.timetuple()[:6])
            ca.external_attr = 0o644 << 16
            zf.writestr(ca, ca_pem)
    return Bundle(buf.getvalue(), token, expires)


def read_bundle(data: bytes) -> dict[str, Any]:
    """The device document inside a bundle (what the device side reads)."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return dict(json.loads(zf.read(BUNDLE_FILE)))
