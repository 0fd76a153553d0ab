"""The Panorama operations: one synchronous handler per operation, run inside one store transaction.

Handlers take the validated input dict and return the output dict (``datetime`` for timestamps, ``bytes``
for blobs); the protocol layer renders them. They are registered by operation name with
:func:`~panoflow.controlplane.service.base.operation` in the sub-modules ``devices``, ``packages``,
``applications``, ``node_templates`` (camera nodes: CreateNodeFromTemplateJob), ``jobs`` and ``tags``, which
this package imports; what they share (the :class:`~panoflow.controlplane.service.base.Context`, the
registry, ids, timestamps, pagination) is in :mod:`.base`, the errors they answer with in
:mod:`panoflow.controlplane.errors`. :class:`ControlPlane` runs them, and is also the object the device API
(`device_api.py`) calls (:meth:`ControlPlane.report_application_status`; the device side is in :mod:`.fleet`
and :mod:`.tokens`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from panoflow.controlplane.assets import DEFAULT_MAX_ASSET_SIZE, AssetStore, LocalAssetStore
from panoflow.controlplane.auth import ReplayCache
from panoflow.controlplane.errors import ApiError
from panoflow.controlplane.limits import DeviceLimits
from panoflow.controlplane.service import (
    applications,
    devices,
    fleet,
    jobs,
    node_templates,
    packages,
    tags,
    tokens,
)
from panoflow.controlplane.service.base import Context, Handler, handlers, operation, paginate
from panoflow.controlplane.store import Store, Transaction

__all__ = ["Context", "ControlPlane", "Handler", "operation", "paginate"]

#: the modules whose :func:`operation` decorators fill the handler table (imported above for that)
HANDLER_MODULES = (applications, devices, jobs, node_templates, packages, tags)


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
        self.token_ttl_s = token_ttl_s or tokens.DEFAULT_TOKEN_TTL_S

    @staticmethod
    def implemented() -> frozenset[str]:
        """Names of the operations this control plane implements."""
        return frozenset(handlers())

    def call(self, name: str, params: dict[str, Any]) -> dict[str, Any]:
        """Run operation ``name`` with validated ``params`` in one transaction; ApiError for client errors."""
        handler = handlers().get(name)
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

        ``status`` is an ApplicationInstanceStatus; ``node_statuses`` maps node instance ids to
        NodeInstanceStatus.
        A replacement that reaches DEPLOYMENT_SUCCEEDED asks the device to remove the instance it replaces.
        """
        with self.store.transaction() as tx:
            applications.report_status(Context(tx, self.account_id, self.region, self.assets), instance_id,
                                       status, health=health, description=description,
                                       runtime_states=runtime_states, node_statuses=node_statuses)

    def pending_signals(self, instance_id: str) -> list[dict[str, Any]]:
        """Signals of an instance the device has not acknowledged yet, oldest first (each sync resends
        them)."""
        with self.store.transaction() as tx:
            return applications.open_signals(self._context(tx), [instance_id])

    # --- the device API (docs/device-protocol.md; routes in controlplane/device_api.py) ---------------------

    def _context(self, tx: Transaction) -> Context:
        return Context(tx, self.account_id, self.region, self.assets, self.ca_pem)

    def claim_device(self, body: Any) -> dict[str, Any]:
        """Exchange a provisioning bundle's claim token for device credentials (403 when it cannot be
        used)."""
        request = fleet.parse_claim(body)
        with self.store.transaction() as tx:
            return fleet.claim(self._context(tx), request, self.heartbeat_s, self.token_ttl_s)

    def authenticate_device(self, token: str) -> str | None:
        """The device id a bearer token belongs to; None when unknown; 403 ApiError for a deleted device."""
        with self.store.transaction() as tx:
            return fleet.authenticate_device(self._context(tx), token)

    def device_may_read(self, device_id: str, key: str) -> bool:
        """Whether ``key`` is an asset of a package in the desired state of ``device_id``, or the wheel of one
        of its open OTA jobs (the only assets a device may download: docs/security.md)."""
        with self.store.transaction() as tx:
            ctx = self._context(tx)
            if any((job.get("Ota") or {}).get("Key") == key for job in jobs.open_jobs(ctx, device_id)):
                return True  # the wheel of an OTA job of this device
            for instance in applications.desired_state(ctx, device_id):
                for package in instance.get("Packages") or ():
                    if any(asset.get("Key") == key for asset in package.get("Assets") or ()):
                        return True
        return False

    def renew_device_token(self, device_id: str, token: str) -> dict[str, str]:
        """A new token for a device, replacing ``token`` once used: ``{"Token", "ExpiresAt"}``."""
        with self.store.transaction() as tx:
            return tokens.renew(self._context(tx), device_id, token, self.token_ttl_s)

    def revoke_device_tokens(self, device_id: str) -> int:
        """Revoke every token of a device (it gets 403 and stops syncing); how many there were."""
        with self.store.transaction() as tx:
            if tx.get("devices", device_id) is None:
                raise ApiError("ResourceNotFoundException", f"device {device_id} not found")
            return tokens.revoke_all(tx, device_id)

    def device_sync(self, device_id: str, body: Any) -> dict[str, Any]:
        """Apply a device's sync report (checked first: 400 naming the field) and answer its desired state."""
        report = fleet.parse_sync_report(body)
        with self.store.transaction() as tx:
            return fleet.sync(self._context(tx), device_id, report, self.heartbeat_s)

    def append_device_logs(self, device_id: str, body: Any) -> int:
        """Store a batch of log lines (at most 500, else 413); the newest 10 000 per device are kept."""
        lines = fleet.parse_log_lines(body)
        with self.store.transaction() as tx:
            return fleet.append_logs(self._context(tx), device_id, lines)

    def put_device_metrics(self, device_id: str, text: str) -> None:
        """Keep ``text`` (Prometheus exposition) as the device's latest metrics."""
        with self.store.transaction() as tx:
            fleet.put_metrics(self._context(tx), device_id, text)

    def device_logs(self, device_id: str, limit: int = 100) -> list[dict[str, Any]]:
        """The newest ``limit`` log lines of a device, oldest first (404 ApiError for an unknown device)."""
        with self.store.transaction() as tx:
            return fleet.read_logs(self._context(tx), device_id, limit)

    def device_metrics(self, device_id: str) -> dict[str, Any]:
        """``{"Text", "ReceivedTime"}`` of the device's latest metrics (None before any)."""
        with self.store.transaction() as tx:
            return fleet.read_metrics(self._context(tx), device_id)
