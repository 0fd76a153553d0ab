"""Device tokens: issued at the claim, short-lived (:data:`DEFAULT_TOKEN_TTL_S`), renewed by the device over
TLS before they expire (``POST /_panoflow/device/v1/token``), revocable by the operator (docs/security.md).

Rows of ``device_credentials`` (id: SHA-256 of the token) carry ``{"ExpiresAt"}``, and after a renewal
``{"Previous"}``: the token it replaces stays valid until the new one is first used (an answer lost on the way
cannot lock the device out), then it is deleted. Tokens from before expiry existed never expire. A revoked
token (every token of a device, ``control-plane devices revoke-tokens``) gets 403 and the device stops
syncing.
"""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

from panoflow.controlplane.errors import ApiError
from panoflow.controlplane.provisioning import hash_token
from panoflow.controlplane.service.base import Context, now
from panoflow.controlplane.store import Transaction

__all__ = ["DEFAULT_TOKEN_TTL_S", "REVOKED", "check", "issue", "renew", "revoke_all"]

#: how long a device token lives unless renewed (renewed when half of it is left)
DEFAULT_TOKEN_TTL_S = 7 * 86_400.0
REVOKED = ("this device's credentials were revoked by the operator: stop syncing (keep running what is "
           "deployed); to manage it again, provision it again and claim the new bundle")


def issue(ctx: Context, device_id: str, ttl_s: float, **doc: Any) -> dict[str, str]:
    """A new token of ``device_id``: ``{"Token", "ExpiresAt"}`` (the store keeps only its hash)."""
    token = secrets.token_urlsafe(32)
    expires = now() + dt.timedelta(seconds=ttl_s)
    ctx.tx.insert("device_credentials", hash_token(token), {**doc, "ExpiresAt": expires.isoformat()},
                  device_id=device_id, revoked=0)
    return {"Token": token, "ExpiresAt": expires.strftime("%Y-%m-%dT%H:%M:%SZ")}


def check(ctx: Context, row: Any) -> None:
    """Refuse an expired token (401: the device must renew before); retire the token a renewal replaced once
    the new one is used."""
    expires = row.doc.get("ExpiresAt")
    if expires and dt.datetime.fromisoformat(expires) <= now():
        raise ApiError("UnauthorizedException", f"this device token expired at {expires}: devices renew "
                       "their token before it expires; provision the device again")
    previous = row.doc.get("Previous")
    if previous:
        ctx.tx.delete("device_credentials", id=previous)
        ctx.tx.update("device_credentials", row.id, {k: v for k, v in row.doc.items() if k != "Previous"})


def renew(ctx: Context, device_id: str, token: str, ttl_s: float) -> dict[str, str]:
    """A new token replacing ``token`` (which stays valid until the new one is used)."""
    return issue(ctx, device_id, ttl_s, RenewedTime=now().isoformat(), Previous=hash_token(token))


def revoke_all(tx: Transaction, device_id: str) -> int:
    """Revoke every token of ``device_id``; how many there were."""
    rows = tx.select("device_credentials", {"device_id": device_id})
    for row in rows:
        tx.update("device_credentials", row.id, {**row.doc, "RevokedTime": now().isoformat()}, revoked=1)
    return len(rows)

