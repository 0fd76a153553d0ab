"""Previews through the daemon: each instance's MJPEG feed, and the device's HDMI output (``/display.mjpg``).

Every instance serves its display sink's MJPEG stream on a loopback port of its own (``panoflow run --preview
127.0.0.1:0``). The daemon relays it, part by part, without re-encoding: the JPEGs arrive already encoded. The
HDMI relay follows ownership: when another instance becomes the most recently started one, the stream switches
to it without the client reconnecting.

The daemon relays only loopback previews (``http://127.0.0.1:PORT/``, ``[::1]``, ``localhost``:
:func:`loopback_url`): an app that reports another preview URL cannot make the daemon fetch from the network
for it (SSRF; docs/security.md).
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator, Callable
from urllib.parse import urlsplit

import aiohttp
import anyio
from aiohttp import web

from panoflow.plugins.sinks.mjpeg import BOUNDARY

__all__ = ["loopback_url", "mjpeg_parts", "relay_mjpeg", "relay_snapshot"]

MAX_PART = 32 * 1024 * 1024
_STREAM_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=3, sock_read=None)


def loopback_url(url: str | None) -> str | None:
    """``url`` when it is an ``http://`` preview on a loopback address with a port, else None (never
    relayed)."""
    if not url:
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    host = parts.hostname or ""
    if parts.scheme != "http" or port is None or parts.username or parts.password:
        return None
    if host != "localhost":
        try:
            if not ipaddress.ip_address(host).is_loopback:
                return None
        except ValueError:
            return None
    return url


async def mjpeg_parts(content: aiohttp.StreamReader) -> AsyncIterator[bytes]:
    """The JPEGs of a ``multipart/x-mixed-replace`` body (each part carries a Content-Length)."""
    while True:
        line = await content.readline()
        if not line:
            return
        if not line.strip().startswith(b"--"):
            continue
        length = -1
        while True:
            header = await content.readline()
            if not header:
                return
            header = header.strip()
            if not header:
                break
            key, _, value = header.partition(b":")
            if key.strip().lower() == b"content-length":
                try:
                    length = int(value.strip())
                except ValueError:
                    return
        if not 0 <= length <= MAX_PART:
            return
        yield await content.readexactly(length)


async def relay_mjpeg(request: web.Request, session: aiohttp.ClientSession, pick: Callable[[], str | None],
                      keep_waiting: Callable[[], bool]) -> web.StreamResponse:
    """Stream the MJPEG feed at ``pick()`` (a preview base URL, or None while there is none) to the client,
    switching when ``pick()`` changes; while there is none, wait as long as ``keep_waiting()``."""
    resp = web.StreamResponse(headers={
        "Content-Type": f"multipart/x-mixed-replace; boundary={BOUNDARY}",
        "Cache-Control": "no-store",
        "Pragma": "no-cache",
    })
    await resp.prepare(request)

    async def watch(url: str, scope: anyio.CancelScope) -> None:
        while loopback_url(pick()) == url:
            await anyio.sleep(0.25)
        scope.cancel()

    try:
        while True:
            url = loopback_url(pick())
            if url is None:
                if not keep_waiting():
                    break
                await anyio.sleep(0.25)
                continue
            try:
                async with session.get(url + "stream.mjpg", timeout=_STREAM_TIMEOUT) as upstream, \
                        anyio.create_task_group() as tg:
                    tg.start_soon(watch, url, tg.cancel_scope)
                    async for jpeg in mjpeg_parts(upstream.content):
                        head = (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: "
                                f"{len(jpeg)}\r\n\r\n")
                        await resp.write(head.encode() + jpeg + b"\r\n")
                    tg.cancel_scope.cancel()
            except (aiohttp.ClientError, asyncio.IncompleteReadError, ValueError, TimeoutError):
                await anyio.sleep(0.25)  # the instance went away or restarts: pick again
    except ConnectionError:  # the client went away
        pass
    return resp


async def relay_snapshot(session: aiohttp.ClientSession, url: str | None) -> web.Response:
    """The latest picture of the preview at ``url``; 404 (with the reason) while there is none to show."""
    url = loopback_url(url)
    if url is None:
        return _no_picture("no picture: the instance is not running or has no display")
    try:
        async with session.get(url + "snapshot.jpg", timeout=aiohttp.ClientTimeout(total=5)) as upstream:
            body = await upstream.read()
            if upstream.status != 200:
                return _no_picture("no picture yet")
            return web.Response(body=body, content_type="image/jpeg", headers={"Cache-Control": "no-store"})
    except (aiohttp.ClientError, TimeoutError):
        return _no_picture("no picture: the instance's preview did not answer (it may be restarting)")


def _no_picture(message: str) -> web.Response:
    return web.json_response({"error": message}, status=404, headers={"Retry-After": "1"})
