"""The instance control API: how the daemon (or a person with ``curl --unix-socket``) sees inside a running
application instance.

Served by ``panoflow run --control unix:PATH`` on a unix socket (never a TCP port: it is reachable only by
users who can open that file):

- ``GET /status``: instance id, state, node statuses (Panorama's CurrentStatus names), stream counters,
  the preview URL, errors;
- ``GET /metrics``: Prometheus text, every sample labelled with ``instance_id``;
- ``POST /nodes/{node}/signal`` with ``{"signal": "PAUSE"|"RESUME"}``: pause or resume a camera node.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from aiohttp import web

from panoflow.core.metrics import render
from panoflow.core.runtime import Runtime

__all__ = ["ControlServer", "parse_control_address"]


def parse_control_address(text: str) -> Path:
    """``unix:/run/x.sock`` -> Path. Only unix sockets are accepted."""
    if not text.startswith("unix:") or len(text) <= 5:
        raise ValueError(f"--control {text!r}: expected unix:/path/to/control.sock")
    return Path(text[5:])


class ControlServer:
    def __init__(self, runtime: Runtime, path: Path):
        self.runtime = runtime
        self.path = path
        self._runner: web.AppRunner | None = None

    def _status(self) -> dict[str, Any]:
        rt = self.runtime
        preview = None
        for sink in rt._sinks.values():
            url = getattr(sink, "url", None)
            if url:
                preview = url
        status = rt.status()
        return {
            "instance_id": rt.options.instance_id,
            "state": rt.public_state,
            "nodes": rt.nodes(),
            "streams": status["streams"],
            "latency_ms_p50": status["latency_ms_p50"],
            "latency_ms_p95": status["latency_ms_p95"],
            "preview_url": preview,
            "errors": list(rt.errors),
        }

    async def _get_status(self, _request: web.Request) -> web.Response:
        return web.json_response(self._status())

    async def _get_metrics(self, _request: web.Request) -> web.Response:
        text = render(self.runtime.metrics(), {"instance_id": self.runtime.options.instance_id})
        return web.Response(text=text, content_type="text/plain", charset="utf-8",
                            headers={"X-Prometheus-Format": "0.0.4"})

    async def _post_signal(self, request: web.Request) -> web.Response:
        node = request.match_info["node"]
        try:
            body = await request.json()
            signal = body["signal"]
        except (ValueError, KeyError, TypeError):
            return web.json_response({"error": 'body must be {"signal": "PAUSE"|"RESUME"}'}, status=400)
        try:
            status = self.runtime.signal(node, signal)
        except KeyError:
            return web.json_response({"error": f"no camera node {node!r}"}, status=404)
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response({"node": node, "status": status})

    async def start(self) -> None:
        app = web.Application()
        app.add_routes([
            web.get("/status", self._get_status),
            web.get("/metrics", self._get_metrics),
            web.post("/nodes/{node}/signal", self._post_signal),
        ])
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            self.path.unlink()
        site = web.UnixSite(self._runner, str(self.path))
        await site.start()
        os.chmod(self.path, 0o600)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self.path.exists():
            self.path.unlink()
