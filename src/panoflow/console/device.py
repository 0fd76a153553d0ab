"""The device console of ``panoflow serve``: sign-in with the daemon's API token, then its instances, their
logs, pausing and resuming cameras, and each instance's live preview relayed by the daemon's own handler.

:class:`DeviceBackend` reads the daemon's :class:`~panoflow.daemon.api.Api` (its manager and state paths) in
process, as the HTTP API does. The daemon mounts it (``daemon.api``), handing over what it needs; this module
imports nothing from ``panoflow.daemon`` at run time, so the layers point one way (daemon -> console).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import anyio.to_thread
from aiohttp import web

from panoflow.console.sessions import Session
from panoflow.console.web import ROOT, Console, ConsoleError, InstanceView, NodeView
from panoflow.core.redact import redact_text
from panoflow.exceptions import PanoflowError

if TYPE_CHECKING:
    from panoflow.daemon.api import Api

#: reads the last ``n`` lines of a log file (the daemon's ``logfiles.tail_lines``)
Tail = Callable[[Path, int], list[str]]

__all__ = ["DeviceBackend", "mount_device_console"]


class DeviceBackend:
    """The console's view of one daemon."""

    kind = "device"
    nav: tuple[tuple[str, str], ...] = (("instances", "Application instances"),)

    def __init__(self, api: Api, token: bytes, tail: Tail):
        self.api = api
        self._token = token
        self._tail = tail

    def _preview_url(self, ref: str) -> str | None:
        rec = self.api.manager.find(ref)
        sup = self.api.manager.supervisors.get(rec.instance_id) if rec is not None else None
        return sup.preview_url if sup is not None else None

    async def sign_in(self, form: dict[str, str]) -> tuple[str, bool] | None:
        given = form.get("api_token", "").strip().encode()
        if not given or not hmac.compare_digest(given, self._token):
            return None
        return "device", False

    def _view(self, rec: Any) -> InstanceView:
        view = self.api.manager.view(rec)
        nodes = tuple(NodeView(str(n["node_id"]), str(n["node_id"]), str(n.get("kind") or ""),
                               str(n.get("current_status") or ""), n.get("kind") == "camera")
                      for n in view.get("nodes") or ())
        return InstanceView(id=rec.instance_id, name=rec.name, status=str(view.get("status") or ""),
                            health=str(view.get("health_status") or ""),
                            description=str(view.get("status_description") or ""),
                            created=str(view.get("created") or ""), nodes=nodes)

    async def instances(self) -> list[InstanceView]:
        records = sorted(self.api.manager.records.values(), key=lambda r: (r.name, r.created))
        return [self._view(r) for r in records]

    async def instance(self, instance_id: str) -> InstanceView:
        rec = self.api.manager.find(instance_id)
        if rec is None:
            raise ConsoleError(f"No application instance {instance_id[:80]} on this device", status=404)
        return self._view(rec)

    async def signal(self, session: Session, instance_id: str, node: str, signal: str) -> None:
        try:
            code, answer = await self.api.manager.signal(instance_id, node, signal)
        except PanoflowError as exc:  # the manager's NotFound or Conflict
            raise ConsoleError(redact_text(str(exc)), status=409) from None
        if code != 200:
            raise ConsoleError(redact_text(str(answer.get("error") or f"the instance refused the {signal}")),
                               status=409)

    async def logs(self, instance_id: str, node: str | None, limit: int) -> list[str]:
        rec = self.api.manager.find(instance_id)
        if rec is None:
            raise ConsoleError(f"No application instance {instance_id[:80]} on this device", status=404)
        folder = self.api.paths.app_logs(rec.name)
        path = folder / node / "console_output" if node else folder / "instance.log"
        lines = await anyio.to_thread.run_sync(self._tail, path, limit)
        return [redact_text(line) for line in lines]

    async def preview(self, request: web.Request, instance: InstanceView) -> dict[str, Any]:
        if self._preview_url(instance.id) is None:
            return {"stream_url": None, "device_links": [],
                    "unavailable": "This instance has no preview now: it is not running, or its graph has no "
                                   "display (HDMI) node."}
        stream = f"{ROOT}instances/{quote(instance.id, safe='')}/preview.mjpg"
        return {"stream_url": stream, "device_links": []}

    async def stream(self, request: web.Request, _session: Session) -> web.StreamResponse:
        """The instance's MJPEG preview, relayed part by part by the daemon's own handler."""
        if self.api.manager.find(request.match_info["ref"]) is None:
            raise ConsoleError("No such application instance on this device", status=404)
        return await self.api.instance_preview(request)  # its route has {ref}, as the API's own


def mount_device_console(app: web.Application, api: Api, token: str, *, tail: Tail,
                         session_ttl_s: float | None = None) -> Console:
    """Serve the device console for the daemon ``api`` at ``/console/`` on ``app`` (``token``: the daemon's
    API token, the console's sign-in; ``tail``: how to read a log file's last lines)."""
    backend = DeviceBackend(api, token.encode(), tail)
    console = Console(backend, session_ttl_s=session_ttl_s)
    console.mount(app)
    console.add(app, "GET", "instances/{ref}/preview.mjpg", backend.stream)
    return console
