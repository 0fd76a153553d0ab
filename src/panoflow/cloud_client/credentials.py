"""Device credentials: the provisioning bundle, claimed once, then ``STATE_DIR/cloud.json`` (mode 0600).

``ProvisionDevice`` hands the operator a zip (``panoflow-device.json``: DeviceId, name, account, region and a
one-time ``ClaimToken``). The device exchanges the token for its own secret once
(``POST /_panoflow/device/v1/claim``) and keeps that in ``cloud.json``; a restarted device uses ``cloud.json``
and never needs the bundle again. The bundle's ``CaCertificate`` is kept in ``cloud.json`` too: the device
pins it for every connection to the control plane (docs/security.md).
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from panoflow.controlplane.provisioning import read_bundle  # light: the package's exports load lazily
from panoflow.daemon.store import atomic_write_json
from panoflow.exceptions import CloudError

__all__ = ["CLOUD_FILE", "BundleError", "Credentials", "load_credentials", "read_bundle_file",
           "save_credentials"]

CLOUD_FILE = "cloud.json"


class BundleError(CloudError):
    """The provisioning bundle cannot be read."""


@dataclass(frozen=True)
class Credentials:
    """What ``cloud.json`` holds. ``token`` is the device's secret: never log it (``repr`` leaves it out)."""

    control_plane: str
    device_id: str
    device_name: str
    account_id: str
    region: str
    token: str
    ca_pem: str = ""  # the CA the device pins (from the provisioning bundle); "" only for a plain-HTTP plane
    token_issued: str = ""  # when this device received its token (ISO); "" for tokens that never expire
    token_expires: str = ""  # when the control plane stops accepting it (renewed once half of it is left)

    def to_json(self) -> dict[str, str]:
        doc = {"ControlPlane": self.control_plane, "DeviceId": self.device_id, "DeviceName": self.device_name,
               "AccountId": self.account_id, "Region": self.region, "Token": self.token}
        if self.ca_pem:
            doc["CaCertificate"] = self.ca_pem
        if self.token_expires:
            doc["TokenIssuedAt"], doc["TokenExpiresAt"] = self.token_issued, self.token_expires
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Credentials:
        return cls(control_plane=str(doc["ControlPlane"]), device_id=str(doc["DeviceId"]),
                   device_name=str(doc.get("DeviceName", "")), account_id=str(doc.get("AccountId", "")),
                   region=str(doc.get("Region", "")), token=str(doc["Token"]),
                   ca_pem=str(doc.get("CaCertificate") or ""),
                   token_issued=str(doc.get("TokenIssuedAt") or ""),
                   token_expires=str(doc.get("TokenExpiresAt") or ""))

    def __repr__(self) -> str:
        return f"Credentials(device_id={self.device_id!r}, control_plane={self.control_plane!r})"


def read_bundle_file(path: Path) -> dict[str, Any]:
    """The device document inside a provisioning bundle, checked for the fields a claim needs."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BundleError(f"cannot read the provisioning bundle {path}: {exc.strerror or exc}") from None
    try:
        doc = read_bundle(data)
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise BundleError(f"{path} is not a panoflow provisioning bundle ({exc}); use the Certificates zip "
                          "that ProvisionDevice returned") from None
    missing = [k for k in ("DeviceId", "ClaimToken") if not isinstance(doc.get(k), str) or not doc.get(k)]
    if missing:
        raise BundleError(f"{path} is not a panoflow provisioning bundle: it lacks {', '.join(missing)}")
    return doc


def load_credentials(state_dir: Path) -> Credentials | None:
    """The stored credentials, or ``None`` when this device has not claimed itself yet."""
    path = state_dir / CLOUD_FILE
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        return Credentials.from_json(doc)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CloudError(f"{path} is unreadable ({exc}); delete it and start with --provision BUNDLE.zip "
                         "again (a new bundle from ProvisionDevice)") from None


def save_credentials(state_dir: Path, creds: Credentials) -> None:
    """Write ``cloud.json`` atomically, readable by the owner only."""
    atomic_write_json(state_dir / CLOUD_FILE, creds.to_json(), mode=0o600)
