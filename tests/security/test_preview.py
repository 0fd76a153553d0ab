"""Previews (issue #16, the SSRF half): the daemon relays only an instance's loopback preview; a preview URL
an app reports that points elsewhere is never fetched. Real aiohttp servers: one on loopback, one on another
address."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from panoflow.daemon.preview import loopback_url, relay_snapshot


def test_only_loopback_http_with_a_port_is_relayed() -> None:
    for url in ("http://127.0.0.1:8080/", "http://[::1]:9000/", "http://localhost:1234/", "http://127.0.0.2:80/"):
        assert loopback_url(url) == url
    for url in ("http://169.254.169.254/latest/meta-data/", "http://169.254.169.254:80/", "http://10.0.0.5:80/",
                "https://127.0.0.1:8080/", "file:///etc/passwd", "http://user:pw@127.0.0.1:80/",
                "http://127.0.0.1.evil.example:80/", "http://127.0.0.1:99999/", "gopher://127.0.0.1:70/", "",
                None):
        assert loopback_url(url) is None, url


def _outward_address() -> str | None:
    """An address of this machine that is not loopback (None when it has none)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outgoing interface
            address = str(s.getsockname()[0])
    except OSError:
        return None
    return None if address.startswith("127.") else address


@pytest.fixture
async def picture_server() -> AsyncIterator[tuple[int, list[str]]]:
    hits: list[str] = []

    async def snapshot(request: web.Request) -> web.Response:
        hits.append(request.host)
        return web.Response(body=b"\xff\xd8jpeg", content_type="image/jpeg")

    app = web.Application()
    app.router.add_get("/snapshot.jpg", snapshot)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "0.0.0.0", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield port, hits
    await runner.cleanup()


@pytest.mark.anyio
async def test_a_preview_url_off_loopback_is_never_fetched(picture_server: tuple[int, list[str]]) -> None:
    port, hits = picture_server
    async with aiohttp.ClientSession() as session:
        ok = await relay_snapshot(session, f"http://127.0.0.1:{port}/")
        assert ok.status == 200 and ok.body == b"\xff\xd8jpeg" and len(hits) == 1
        outward = _outward_address()
        if outward is not None:  # the same server, reached by a non-loopback address: refused, not fetched
            refused = await relay_snapshot(session, f"http://{outward}:{port}/")
            assert refused.status == 404 and len(hits) == 1
        refused = await relay_snapshot(session, "http://169.254.169.254:80/")
        assert refused.status == 404 and len(hits) == 1
