"""MJPEG preview over HTTP (aiohttp): the browser equivalent of Panorama's HDMI output.

``GET /`` a tiny HTML page, ``GET /stream.mjpg`` a ``multipart/x-mixed-replace`` JPEG stream,
``GET /snapshot.jpg`` the latest picture. JPEG is encoded only when someone asks (a connected client or a
snapshot), once per picture however many clients watch, in a worker thread. A slow client simply gets the
newest picture when it is ready for one: nothing is queued per client, so memory never grows.
"""

from __future__ import annotations

import html
from typing import Any

import anyio
import anyio.to_thread
import numpy as np
import structlog
from aiohttp import web

from panoflow.plugins.sinks.draw import encode_jpeg

__all__ = ["BOUNDARY", "MjpegFeed", "PreviewServer"]

log = structlog.get_logger(__name__)

BOUNDARY = "panoflowframe"
_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>panoflow {title}</title>
<style>html,body{{margin:0;background:#111;height:100%}}img{{display:block;margin:auto;max-width:100%;
max-height:100vh}}</style></head>
<body><img src="stream.mjpg" alt="panoflow preview {title}"></body></html>
"""


class MjpegFeed:
    """The latest picture and its lazily encoded JPEG. :meth:`publish` from the event loop; handlers await
    :meth:`next_jpeg`."""

    def __init__(self, quality: int = 80, *, title: str = ""):
        self.quality = quality
        self.title = title
        self.version = 0
        self.clients = 0
        self.jpegs_encoded = 0
        self._image: np.ndarray | None = None
        self._jpeg: tuple[int, bytes] = (-1, b"")
        self._changed: anyio.Event | None = None
        self._encode_lock: anyio.Lock | None = None
        self.closing = False

    def _event(self) -> anyio.Event:
        if self._changed is None:
            self._changed = anyio.Event()
        return self._changed

    def publish(self, image: np.ndarray) -> None:
        """Make ``image`` (BGR, not written to afterwards) the latest picture and wake the waiting clients."""
        self._image = image
        self.version += 1
        self._wake()

    def close(self) -> None:
        """Make every waiting stream handler return."""
        self.closing = True
        self._wake()

    def _wake(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    async def jpeg(self) -> tuple[int, bytes] | None:
        """``(version, JPEG bytes)`` of the latest picture (encoded at most once per version), or None if
        none."""
        if self._encode_lock is None:
            self._encode_lock = anyio.Lock()
        async with self._encode_lock:
            version, image = self.version, self._image
            if image is None:
                return None
            if self._jpeg[0] != version:
                data = await anyio.to_thread.run_sync(encode_jpeg, image, self.quality)
                self._jpeg = (version, data)
                self.jpegs_encoded += 1
            return self._jpeg

    async def next_jpeg(self, after: int) -> tuple[int, bytes] | None:
        """Wait for a picture newer than version ``after``; None once the feed is closing."""
        while self.version <= after and not self.closing:
            await self._event().wait()
        return None if self.closing else await self.jpeg()

    # ---- aiohttp handlers (mountable on another app, e.g. the daemon's)
    # --------------------------------------
    async def handle_page(self, request: web.Request) -> web.Response:
        page = _PAGE.format(title=html.escape(self.title))
        return web.Response(text=page, content_type="text/html")

    async def handle_snapshot(self, request: web.Request) -> web.Response:
        got = await self.jpeg()
        if got is None:
            return web.Response(status=503, text="no frame yet\n", headers={"Retry-After": "1"})
        return web.Response(body=got[1], content_type="image/jpeg", headers={"Cache-Control": "no-store"})

    async def handle_stream(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(
            headers={
                "Content-Type": f"multipart/x-mixed-replace; boundary={BOUNDARY}",
                "Cache-Control": "no-store",
                "Pragma": "no-cache",
            }
        )
        await resp.prepare(request)
        self.clients += 1
        try:
            last = 0  # the current picture (if any) goes out at once
            while (got := await self.next_jpeg(last)) is not None:
                last, data = got
                head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(data)}\r\n\r\n"
                await resp.write(head.encode() + data + b"\r\n")  # waits while the client's socket is full
        except ConnectionError:  # the client went away (aiohttp raises ClientConnectionResetError)
            pass
        finally:
            self.clients -= 1
        return resp

    def add_routes(self, app: web.Application, prefix: str = "") -> None:
        app.router.add_get(f"{prefix}/", self.handle_page)
        app.router.add_get(f"{prefix}/stream.mjpg", self.handle_stream)
        app.router.add_get(f"{prefix}/snapshot.jpg", self.handle_snapshot)


class PreviewServer:
    """An aiohttp server for one :class:`MjpegFeed`. ``port`` is the bound port once :meth:`start` returned
    (ask for port 0 to get a free one)."""

    def __init__(self, feed: MjpegFeed, host: str, port: int, key: str | None = None):
        self.feed = feed
        self.host = host
        self.port = port
        #: a capability: with a key, the preview answers only under ``/KEY/`` (a daemon's instances: the
        #: daemon learns the URL over the instance's private control socket; other local users cannot watch
        #: the camera)
        self.key = key
        self._runner: web.AppRunner | None = None

    @property
    def listening(self) -> bool:
        return self._runner is not None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/" + (f"{self.key}/" if self.key else "")

    async def start(self, **log_fields: Any) -> None:
        app = web.Application()
        self.feed.add_routes(app, f"/{self.key}" if self.key else "")
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        log.info("preview_listening", url=self.url if not self.key else self.url.replace(self.key, "***"),
                 **log_fields)

    async def stop(self) -> None:
        self.feed.close()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
