"""Fixtures for the device side of the device protocol: a small real HTTP server for asset downloads (until a
test needs the whole control plane, which the integration tests start for real)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest
from aiohttp import web


class AssetServer:
    """Serves ``files[key]`` at ``/_panoflow/assets/<key>`` (404 otherwise), ``status`` overrides every answer."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.status: int | None = None
        self.url = ""
        self.requests: list[str] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        key = request.match_info["key"]
        self.requests.append(key)
        if self.status is not None:
            return web.json_response({"Code": "AccessDeniedException", "Message": "go away"}, status=self.status)
        if key not in self.files:
            return web.json_response({"Code": "NotFoundException", "Message": f"no asset {key}"}, status=404)
        return web.Response(body=self.files[key])


@pytest.fixture
def asset_server() -> Iterator[AssetServer]:
    server = AssetServer()
    app = web.Application()
    app.router.add_get("/_panoflow/assets/{key:.*}", server.handle)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app, access_log=None)
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        server.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(10)
    yield server
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
