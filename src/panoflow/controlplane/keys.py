"""Access-key management and per-key policy (``panoflow control-plane keys ...``; docs/security.md).

A key is ``Admin`` (every operation) or ``ReadOnly`` (``keys create --read-only``: only operations that read,
i.e. ``List*``, ``Describe*``, ``Get*`` and the ``GET``/``HEAD`` routes of the asset and device-log APIs).
Keys are listed without their secrets, deactivated (refused at once, kept), deleted, or rotated: a new key
with the same policy, the old one deactivated (or kept active for a grace period with ``--keep-old``, then
deactivated by hand).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from panoflow.controlplane.auth import AccessKey, create_access_key
from panoflow.controlplane.errors import access_denied
from panoflow.controlplane.store import Store
from panoflow.exceptions import PanoflowError

__all__ = ["ADMIN", "READ_ONLY", "AccessKeyNotFound", "KeyInfo", "check_operation", "delete_key",
           "is_read_operation", "key_policy", "list_keys", "rotate_key", "set_status"]

ADMIN = "Admin"
READ_ONLY = "ReadOnly"
_READ_PREFIXES = ("List", "Describe", "Get")


class AccessKeyNotFound(PanoflowError, LookupError):
    """No such access key."""


@dataclass(frozen=True)
class KeyInfo:
    """What ``keys list`` shows of a key (never its secret)."""

    access_key_id: str
    status: str
    policy: str
    created: str

    def to_json(self) -> dict[str, str]:
        return {"AccessKeyId": self.access_key_id, "Status": self.status, "Policy": self.policy,
                "CreatedTime": self.created}


def is_read_operation(operation: str) -> bool:
    """Whether a Panorama operation (or an HTTP method of panoflow's own routes) only reads."""
    return operation.startswith(_READ_PREFIXES) or operation in ("GET", "HEAD")


def key_policy(store: Store, access_key_id: str) -> str:
    """The policy of a key (``Admin`` for keys made before policies existed)."""
    with store.transaction() as tx:
        row = tx.get("access_keys", access_key_id)
    return str((row.doc if row is not None else {}).get("Policy") or ADMIN)


def check_operation(store: Store, access_key_id: str, operation: str) -> None:
    """``AccessDeniedException`` when ``access_key_id`` may not call ``operation``."""
    if is_read_operation(operation):
        return
    if key_policy(store, access_key_id) == READ_ONLY:
        raise access_denied(f"The access key {access_key_id} is read-only (keys create --read-only): "
                            f"{operation} needs a key created without --read-only")


def _row(tx: Any, access_key_id: str) -> Any:
    row = tx.get("access_keys", access_key_id)
    if row is None:
        raise AccessKeyNotFound(f"no access key {access_key_id!r}; `panoflow control-plane keys list` shows "
                                "them")
    return row


def list_keys(store: Store) -> list[KeyInfo]:
    """Every key, oldest first, without secrets."""
    with store.transaction() as tx:
        rows = tx.select("access_keys")
    return [KeyInfo(r.id, str(r.columns["status"]), str(r.doc.get("Policy") or ADMIN),
                    str(r.doc.get("CreatedTime") or "")) for r in rows]


def set_status(store: Store, access_key_id: str, active: bool) -> None:
    """Activate or deactivate a key (a deactivated key is refused at once, like an unknown one)."""
    with store.transaction() as tx:
        _row(tx, access_key_id)
        tx.update("access_keys", access_key_id, status="Active" if active else "Inactive")


def delete_key(store: Store, access_key_id: str) -> None:
    """Delete a key for good."""
    with store.transaction() as tx:
        _row(tx, access_key_id)
        tx.delete("access_keys", id=access_key_id)


def rotate_key(store: Store, access_key_id: str, *, keep_old: bool = False) -> AccessKey:
    """A new key with the policy of ``access_key_id``, which is deactivated unless ``keep_old``."""
    with store.transaction() as tx:
        policy = str(_row(tx, access_key_id).doc.get("Policy") or ADMIN)
    new = create_access_key(store, read_only=policy == READ_ONLY)
    if not keep_old:
        set_status(store, access_key_id, active=False)
    return new
