"""The Panorama operations: one synchronous handler per operation, run inside one store transaction.

Handlers take the validated input dict and return the output dict (``datetime`` for timestamps, ``bytes`` for
blobs); the protocol layer renders them. They are registered by operation name with :func:`operation` in the
sub-modules ``devices``, ``packages``, ``applications``, ``jobs`` and ``tags``. :class:`ControlPlane` is also the
object the device API (`device_api.py`) calls (:meth:`ControlPlane.report_application_status`).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import secrets
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from panoflow.controlplane.assets import DEFAULT_MAX_ASSET_SIZE, AssetStore, LocalAssetStore
from panoflow.controlplane.auth import ReplayCache
from panoflow.controlplane.limits import DeviceLimits
from panoflow.controlplane.errors import ApiError, validation
from panoflow.controlplane.store import Row, Store, Transaction

__all__ = ["Context", "ControlPlane", "Handler", "operation", "paginate"]

Handler = Callable[["Context", dict[str, Any]], dict[str, Any]]
_HANDLERS: dict[str, Handler] = {}
F = TypeVar("F", bound=Handler)

#: the page size when a list call sends no (or a zero) MaxResults
DEFAULT_PAGE = 25
_ID_ALPHABET = string.ascii_lowercase + string.digits


def operation(name: str) -> Callable[[F], F]:
    """Register a handler for the model operation ``name``."""
    def register(fn: F) -> F:
        _HANDLERS[name] = fn
        return fn
    return register


@dataclass
class Context:
    """What a handler sees: the open transaction and the control plane's identity."""

    tx: Transaction
    account_id: str
    region: str
    assets: AssetStore
    ca_pem: str | None = None  # the TLS CA provisioning bundles carry (None: plain HTTP, development only)

    def arn(self, kind: str, id: str) -> str:
        """``arn:aws:panorama:<region>:<account>:<kind>/<id>``."""
        return f"arn:aws:panorama:{self.region}:{self.account_id}:{kind}/{id}"


def new_id(prefix: str) -> str:
    """A fresh resource id such as ``device-3k9...`` (26 random lowercase letters and digits)."""
    return prefix + "".join(secrets.choice(_ID_ALPHABET) for _ in range(26))


def now() -> dt.datetime:
    """The current UTC time (timestamps are stored as ISO strings in documents)."""
    return dt.datetime.now(dt.timezone.utc)


def ts(text: str | None) -> dt.datetime | None:
    """A stored ISO timestamp back to a datetime."""
    return None if text is None else dt.datetime.fromisoformat(text)


def paginate(rows: Sequence[Row], params: dict[str, Any], scope: str) -> tuple[list[Row], str | None]:
    """One page of ``rows`` and the NextToken for the next (None on the last page).

    Tokens are opaque (base64 JSON of the offset and the list they belong to); a token from another list or a
    malformed one is a ValidationException, not a 500.
    """
    size = params.get("MaxResults") or DEFAULT_PAGE
    start = 0
    token = params.get("NextToken")
    if token is not None:
        try:
            doc = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))
            if doc["s"] != scope or not isinstance(doc["o"], int) or doc["o"] < 0:
                raise ValueError(token)
            start = doc["o"]
        except (ValueError, KeyError, TypeError, UnicodeError):
            raise validation("Invalid NextToken", "NextToken") from None
    page = list(rows[start:start + size])
    end = start + size
    if end >= len(rows):
        return page, None
    nxt = base64.urlsafe_b64encode(json.dumps({"s": scope, "o": end}).encode()).decode("ascii")
    return page, nxt


def _load_handlers() -> None:
    """Import the modules whose :func:`operation` decorators fill the handler table."""
    from panoflow.controlplane.service import applications, cameras, devices, jobs, packages, tags  # noqa: F401


class ControlPlane:
    """The operations over one store, for one account and region."""

    def __init__(self, store: Store, *, account_id: str = "123456789012", region: str = "us-east-1",
                 heartbeat_s: float = 5.0,
                 assets: AssetStore | Path | str | None = None, max_asset_size: int = DEFAULT_MAX_ASSET_SIZE,
                 ca_pem: str | None = None, limits: DeviceLimits | None = None,
                 token_ttl_s: float | None = None):
        """``assets``: an :class:`AssetStore`, or a folder (a :class:`LocalAssetStore`; default ``./assets``).
        ``max_asset_size``: the largest asset a PUT may upload (4 GiB by default). ``ca_pem``: the TLS CA that
        provisioning bundles carry for the device to pin (``controlplane.tls``); None only over plain HTTP.
        ``limits``: the per-device rate limit and log quota of the device API (``controlplane.limits``).
        ``token_ttl_s``: how long a device token lives unless renewed (``service.tokens``, default 7 days)."""
        _load_handlers()

        self.store = store
        self.account_id = account_id
        self.region = region
        self.heartbeat_s = heartbeat_s  # how often devices sync; 3 missed heartbeats show a device OFFLINE
        if isinstance(assets, AssetStore):
            self.assets: AssetStore = assets
        else:
            self.assets = LocalAssetStore(Path(assets) if assets is not None else Path("assets"))
        self.max_asset_size = max_asset_size
        self.ca_pem = ca_pem
        self.replay = ReplayCache()  # non-idempotent signed requests seen lately (controlplane.auth)
        self.limits = limits or DeviceLimits()
        from panoflow.controlplane.service.tokens import DEFAULT_TOKEN_TTL_S

        self.token_ttl_s = token_ttl_s or DEFAULT_TOKEN_TTL_S

    @staticmethod
    def implemented() -> frozenset[str]:
        """Names of the operations this control plane implements."""
        _load_handlers()
        return frozenset(_HANDLERS)

    def call(self, name: str, params: dict[str, Any]) -> dict[str, Any]:
        """Run operation ``name`` with validated ``params`` in one transaction; ApiError for client errors."""
        handler = _HANDLERS.get(name)
        if handler is None:
            raise ApiError("ValidationException", f"{name} is not supported by the panoflow control plane",
                           Reason="OTHER")
        with self.store.transaction() as tx:
            return handler(self._context(tx), params)

    def report_application_status(self, instance_id: str, status: str, *, health: str | None = None,
                                  description: str | None = None,
                                  runtime_states: list[dict[str, Any]] | None = None,
                                  node_statuses: dict[str, str] | None = None) -> None:
        """What a device reports about an application instance (the device API calls this).

        ``status`` is an ApplicationInstanceStatus; ``node_statuses`` maps node instance ids to NodeInstanceStatus.
        A replacement that reaches DEPLOYMENT_SUCCEEDED asks the device to remove the instance it replaces.
        """
        from panoflow.controlplane.service.applications import report_status

        with self.store.transaction() as tx:
            report_status(Context(tx, self.account_id, self.region, self.assets), instance_id, status,
                          health=health, description=description, runtime_states=runtime_states,
                          node_statuses=node_statuses)

    def pending_signals(self, instance_id: str) -> list[dict[str, Any]]:
        """Signals of an instance the device has not acknowledged yet, oldest first (each sync resends them)."""
        from panoflow.controlplane.service.applications import open_signals

        with self.store.transaction() as tx:
            return open_signals(self._context(tx), [instance_id])

    # --- the device API (docs/device-protocol.md; routes in controlplane/device_api.py) ---------------------------

    def _context(self, tx: Transaction) -> Context:
        return Context(tx, self.account_id, self.region, self.assets, self.ca_pem)

    def claim_device(self, body: Any) -> dict[str, Any]:
        """Exchange a provisioning bundle's claim token for device credentials (403 when it cannot be used)."""
        from panoflow.controlplane.service import fleet

        request = fleet.parse_claim(body)
        with self.store.transaction() as tx:
            return fleet.claim(self._context(tx), request, self.heartbeat_s, self.token_ttl_s)

    def authenticate_device(self, token: str) -> str | None:
        """The device id a bearer token belongs to; None when unknown; 403 ApiError for a deleted device."""
        from panoflow.controlplane.service import fleet

        with self.store.transaction() as tx:
            return fleet.authenticate_device(self._context(tx), token)

    def device_may_read(self, device_id: str, key: str) -> bool:
        """Whether ``key`` is an asset of a package in the desired state of ``device_id``, or the wheel of one of
        its open OTA jobs (the only assets a device may download: docs/security.md)."""
        from panoflow.controlplane.service.applications import desired_state
        from panoflow.controlplane.service.jobs import open_jobs

        with self.store.transaction() as tx:
            ctx = self._context(tx)
            if any((job.get("Ota") or {}).get("Key") == key for job in open_jobs(ctx, device_id)):
                return True  # the wheel of an OTA job of this device
            for instance in desired_state(ctx, device_id):
                for package in instance.get("Packages") or ():
                    if any(asset.get("Key") == key for asset in package.get("Assets") or ()):
                        return True
        return False

    def renew_device_token(self, device_id: str, token: str) -> dict[str, str]:
        """A new token for a device, replacing ``token`` once used: ``{"Token", "ExpiresAt"}``."""
        from panoflow.controlplane.service import tokens

        with self.store.transaction() as tx:
            return tokens.renew(self._context(tx), device_id, token, self.token_ttl_s)

    def revoke_device_tokens(self, device_id: str) -> int:
        """Revoke every token of a device (it gets 403 and stops syncing); how many there were."""
        from panoflow.controlplane.service import tokens

        with self.store.transaction() as tx:
            if tx.get("devices", device_id) is None:
                raise ApiError("ResourceNotFoundException", f"device {device_id} not found")
            return tokens.revoke_all(tx, device_id)

    def device_sync(self, device_id: str, body: Any) -> dict[str, Any]:
        """Apply a device's sync report (checked first: 400 naming the field) and answer its desired state."""
        from panoflow.controlplane.service import fleet

        report = fleet.parse_sync_report(body)
        with self.store.transaction() as tx:
            return fleet.sync(self._context(tx), device_id, report, self.heartbeat_s)

    def append_device_logs(self, device_id: str, body: Any) -> int:
        """Store a batch of log lines (at most 500, else 413); the newest 10 000 per device are kept."""
        from panoflow.controlplane.service import fleet

        lines = fleet.parse_log_lines(body)
        with self.store.transaction() as tx:
            return fleet.append_logs(self._context(tx), device_id, lines)

    def put_device_metrics(self, device_id: str, text: str) -> None:
        """Keep ``text`` (Prometheus exposition) as the device's latest metrics."""
        from panoflow.controlplane.service import fleet

        with self.store.transaction() as tx:
            fleet.put_metrics(self._context(tx), device_id, text)

    def device_logs(self, device_id: str, limit: int = 100) -> list[dict[str, Any]]:
        """The newest ``limit`` log lines of a device, oldest first (404 ApiError for an unknown device)."""
        from panoflow.controlplane.service import fleet

        with self.store.transaction() as tx:
            return fleet.read_logs(self._context(tx), device_id, limit)

    def device_metrics(self, device_id: str) -> dict[str, Any]:
        """``{"Text", "ReceivedTime"}`` of the device's latest metrics (None before any)."""
        from panoflow.controlplane.service import fleet

        with self.store.transaction() as tx:
            return fleet.read_metrics(self._context(tx), device_id)
