"""The device's half of the relayed live preview (docs/device-protocol.md section 6): :class:`PreviewPusher`.

Each sync answer lists the ``Previews`` a console user is watching on the control plane (instance, until
when, at most how many frames per second, the largest frame). For each one this device runs, a task reads the
instance's latest picture from its loopback preview (``snapshot.jpg`` of the URL the daemon learned from the
instance: the JPEG is already encoded there, once per picture, and only when asked) and posts it to
``POST /_panoflow/device/v1/preview/{instance}``, at most ``FramesPerSecond`` times a second (and never more
than ``max_fps``). A picture equal to the one sent before is not sent again, so a paused camera costs nothing.

A task stops when the preview is no longer wanted (the sync answer stops listing it, its ``Until`` passes, or
the control plane answers ``"Wanted": false``), when the instance is gone or has no preview, or on an error.
Each instance's trouble is logged once (the same message is not repeated until a frame got through); the next
sync answer starts the task again if the preview is still wanted.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import anyio
import anyio.abc
import structlog

from panoflow.cloud_client.client import CloudClient, Offline, ProtocolError, Refused
from panoflow.daemon.preview import loopback_url

__all__ = ["MAX_FPS", "PreviewPusher", "Wanted"]

log = structlog.get_logger("panoflow.cloud")

#: the most frames per second a device sends whatever the control plane asks
MAX_FPS = 5.0
_DEFAULT_FPS = 3.0
_DEFAULT_MAX_BYTES = 512 * 1024
_MAX_WINDOW_S = 300.0
_SNAPSHOT_TIMEOUT = aiohttp.ClientTimeout(total=5, sock_connect=2)

#: a control-plane instance id -> the loopback preview URL of the daemon instance that runs it (None: none)
Resolve = Callable[[str], "str | None"]


@dataclass(frozen=True)
class Wanted:
    """One preview the control plane wants: until (this device's monotonic clock), rate and frame size."""

    until: float
    fps: float
    max_bytes: int


def _number(value: Any, default: float, low: float, high: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    if math.isnan(number):
        return default
    return min(high, max(low, number))


def _seconds_left(until: Any, now: Any) -> float:
    """``Until - Now`` of the answer (both the server's clock, so this device's clock does not matter)."""
    try:
        left = (dt.datetime.fromisoformat(str(until)) - dt.datetime.fromisoformat(str(now))).total_seconds()
    except (TypeError, ValueError):
        return 30.0
    return min(_MAX_WINDOW_S, max(0.0, left))


def parse_previews(answer: dict[str, Any], *, max_fps: float = MAX_FPS,
                   clock: Callable[[], float] = time.monotonic) -> dict[str, Wanted]:
    """The ``Previews`` of a sync answer (malformed items are skipped: old and new servers may differ)."""
    out: dict[str, Wanted] = {}
    items = answer.get("Previews")
    for item in items if isinstance(items, list) else ():
        if not isinstance(item, dict) or not isinstance(item.get("ApplicationInstanceId"), str):
            continue
        left = _seconds_left(item.get("Until"), answer.get("Now"))
        if left <= 0:
            continue
        out[item["ApplicationInstanceId"]] = Wanted(
            until=clock() + left, fps=_number(item.get("FramesPerSecond"), _DEFAULT_FPS, 0.1, max_fps),
            max_bytes=int(_number(item.get("MaxFrameBytes"), _DEFAULT_MAX_BYTES, 1024, 32 * 1024 * 1024)))
    return out


class PreviewPusher:
    """Posts the wanted previews (see the module docstring). :meth:`update` with each sync answer; :meth:`run`
    in the device's task group."""

    def __init__(self, client: CloudClient, resolve: Resolve, *, max_fps: float = MAX_FPS,
                 clock: Callable[[], float] = time.monotonic):
        self.client = client
        self.resolve = resolve
        self.max_fps = max_fps
        self.clock = clock
        self.wanted: dict[str, Wanted] = {}
        self.sent = 0  # frames posted (for tests and logs)
        self._running: set[str] = set()
        self._said: dict[str, str] = {}  # instance -> the last trouble logged (said once)
        self._changed = anyio.Event()
        self._http: aiohttp.ClientSession | None = None

    def update(self, answer: dict[str, Any]) -> None:
        """Take the ``Previews`` of a sync answer (absent: none wanted)."""
        self.wanted = parse_previews(answer, max_fps=self.max_fps, clock=self.clock)
        self._changed.set()

    async def run(self) -> None:
        """Start a task per wanted preview, until cancelled."""
        async with aiohttp.ClientSession() as http, anyio.create_task_group() as tg:
            self._http = http
            while True:
                for instance_id in list(self.wanted):
                    if instance_id not in self._running:
                        self._running.add(instance_id)
                        tg.start_soon(self._push, instance_id)
                await self._changed.wait()
                self._changed = anyio.Event()

    def _say(self, instance_id: str, event: str, why: str) -> None:
        if self._said.get(instance_id) != why:
            self._said[instance_id] = why
            log.warning(event, instance=instance_id, why=why)

    def _still_wanted(self, instance_id: str) -> Wanted | None:
        wanted = self.wanted.get(instance_id)
        return wanted if wanted is not None and wanted.until > self.clock() else None

    async def _snapshot(self, url: str, limit: int) -> bytes | None:
        """The latest picture of the instance's preview (None while there is none, or when it is too big)."""
        assert self._http is not None
        async with self._http.get(url + "snapshot.jpg", timeout=_SNAPSHOT_TIMEOUT) as resp:
            if resp.status != 200:
                return None  # 503 "no frame yet"
            data = bytearray()
            async for chunk in resp.content.iter_chunked(64 * 1024):
                data += chunk
                if len(data) > limit:
                    raise ValueError(f"a preview frame is larger than the {limit} bytes the control plane "
                                     "accepts")
            return bytes(data)

    async def _push(self, instance_id: str) -> None:
        last = b""
        try:
            while (wanted := self._still_wanted(instance_id)) is not None:
                started = self.clock()
                url = loopback_url(self.resolve(instance_id))
                if url is None:
                    self._say(instance_id, "cloud_preview_stopped",
                              "the instance is not running on this device, or its graph has no display node")
                    return
                try:
                    jpeg = await self._snapshot(url, wanted.max_bytes)
                except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                    self._say(instance_id, "cloud_preview_unreadable", f"{type(exc).__name__}: {exc}")
                    jpeg = None
                if jpeg and jpeg != last:
                    answer = await self.client.preview(instance_id, jpeg)
                    last = jpeg
                    self.sent += 1
                    self._said.pop(instance_id, None)
                    if not answer.get("Wanted"):
                        self.wanted.pop(instance_id, None)  # nobody watches any more
                        return
                await anyio.sleep(max(0.0, 1 / wanted.fps - (self.clock() - started)))
        except (Offline, ProtocolError, Refused) as exc:
            self._say(instance_id, "cloud_preview_stopped", str(exc))
        finally:
            self._running.discard(instance_id)
