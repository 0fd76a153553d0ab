"""The live preview relayed from devices (docs/device-protocol.md section 6, docs/console.md "Live preview"):
:class:`PreviewRelay`, in memory, one per control-plane process.

A console page that shows an instance's preview calls :meth:`PreviewRelay.want` ("preview wanted for instance
X until now + :attr:`~PreviewRelay.window_s`", renewed while the page streams or polls). Each device's sync
answer carries the wanted previews of its running instances (:meth:`PreviewRelay.sync_answer`, which also
remembers which device runs which instance); while wanted, the device posts JPEG frames
(``POST /_panoflow/device/v1/preview/{instance}``), and the relay keeps only the **latest** frame per instance
(never on disk), waking the console's MJPEG streams. Frames of instances nobody wants any more are dropped.

Everything runs on the server's event loop (the device API and console handlers), so there is no lock.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

__all__ = ["DEFAULT_FPS", "JPEG_MAGIC", "MAX_FRAME_BYTES", "PREVIEWS", "WANT_WINDOW_S", "Frame",
           "PreviewRelay", "relay_for"]

#: the largest frame a device may post (413 beyond)
MAX_FRAME_BYTES = 512 * 1024
#: what every JPEG starts with (SOI marker, then the first segment's marker byte)
JPEG_MAGIC = b"\xff\xd8\xff"
#: frames per second a device is asked to send at most
DEFAULT_FPS = 3.0
#: how long one look at a preview keeps it wanted (renewed while the page streams or polls)
WANT_WINDOW_S = 30.0
#: the most instances with a wanted preview at once (the oldest want is forgotten beyond)
MAX_WANTED = 256


@dataclass(frozen=True)
class Frame:
    """One JPEG a device posted: ``seq`` counts the instance's frames (from 1), ``received`` is the relay's
    monotonic clock."""

    jpeg: bytes
    seq: int
    received: float


@dataclass
class _Want:
    since: float  # when this period of being wanted began
    until: float
    frame: Frame | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)


class PreviewRelay:
    """Which previews are wanted until when, which device runs which instance, and the latest frame of each.

    ``fps`` and ``max_frame_bytes`` are what the sync answer asks devices for; ``window_s`` how long a want
    lasts unless renewed; ``clock`` is monotonic (tests move it)."""

    def __init__(self, *, fps: float = DEFAULT_FPS, window_s: float = WANT_WINDOW_S,
                 max_frame_bytes: int = MAX_FRAME_BYTES, clock: Callable[[], float] = time.monotonic):
        self.fps = fps
        self.window_s = window_s
        self.max_frame_bytes = max_frame_bytes
        self.clock = clock
        self._wants: dict[str, _Want] = {}
        self._owner: dict[str, str] = {}  # instance -> the device whose last sync listed it RUNNING
        self._devices: dict[str, set[str]] = {}

    # ------------------------------------------------------------------ wanting
    def _prune(self) -> None:
        now = self.clock()
        for instance_id in [i for i, w in self._wants.items() if w.until <= now]:
            want = self._wants.pop(instance_id)
            want.changed.set()  # a stream waiting on it looks again (and renews, if still open)

    def want(self, instance_id: str) -> _Want:
        """Mark ``instance_id``'s preview wanted for :attr:`window_s` more seconds."""
        self._prune()
        now = self.clock()
        want = self._wants.get(instance_id)
        if want is None:
            if len(self._wants) >= MAX_WANTED:
                del self._wants[min(self._wants, key=lambda i: self._wants[i].until)]
            want = self._wants[instance_id] = _Want(since=now, until=now)
        want.until = max(want.until, now + self.window_s)
        return want

    def is_wanted(self, instance_id: str) -> bool:
        self._prune()
        return instance_id in self._wants

    def wanted_since(self, instance_id: str) -> float | None:
        """When the current period of wanting ``instance_id``'s preview began (monotonic), or None."""
        self._prune()
        want = self._wants.get(instance_id)
        return want.since if want is not None else None

    def _until_text(self, want: _Want) -> str:
        wall = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=max(0.0, want.until - self.clock()))
        return wall.isoformat()

    # ------------------------------------------------------------------ devices
    def sync_answer(self, device_id: str, answer: dict[str, Any]) -> dict[str, Any]:
        """``answer`` (a sync answer for ``device_id``) with ``Previews``: the wanted previews of the
        instances it lists RUNNING. Remembers those instances as the device's (the only ones it may post
        frames of)."""
        running = {str(i.get("ApplicationInstanceId")) for i in answer.get("Instances") or ()
                   if isinstance(i, dict) and i.get("DesiredState") == "RUNNING"}
        for instance_id in self._devices.get(device_id, set()) - running:
            if self._owner.get(instance_id) == device_id:
                del self._owner[instance_id]
        for instance_id in running:
            self._owner[instance_id] = device_id
        self._devices[device_id] = running
        self._prune()
        previews = [{"ApplicationInstanceId": i, "Until": self._until_text(self._wants[i]),
                     "FramesPerSecond": self.fps, "MaxFrameBytes": self.max_frame_bytes}
                    for i in sorted(running) if i in self._wants]
        return {**answer, "Previews": previews}

    def owner(self, instance_id: str) -> str | None:
        """The device whose last sync listed ``instance_id`` as RUNNING (None: no device, or not since this
        server started)."""
        return self._owner.get(instance_id)

    # ------------------------------------------------------------------ frames
    def put(self, instance_id: str, jpeg: bytes) -> dict[str, Any]:
        """Keep ``jpeg`` as the latest frame of ``instance_id`` if its preview is wanted; the answer to the
        device: ``{"Wanted": false}`` (stop sending) or ``{"Wanted": true, "Until": ..., "Stored": true}``."""
        self._prune()
        want = self._wants.get(instance_id)
        if want is None:
            return {"Wanted": False}
        seq = want.frame.seq + 1 if want.frame is not None else 1
        want.frame = Frame(jpeg, seq, self.clock())
        want.changed.set()
        want.changed = asyncio.Event()
        return {"Wanted": True, "Stored": True, "Until": self._until_text(want)}

    def latest(self, instance_id: str) -> Frame | None:
        """The newest frame of a wanted preview (None before the first, or once nobody wants it)."""
        self._prune()
        want = self._wants.get(instance_id)
        return want.frame if want is not None else None

    async def next_frame(self, instance_id: str, after: int, timeout: float) -> Frame | None:
        """Renew the want, then wait up to ``timeout`` seconds for a frame of ``instance_id`` newer than
        ``after`` (its ``seq``); None when none came."""
        want = self.want(instance_id)
        if want.frame is not None and want.frame.seq > after:
            return want.frame
        try:
            await asyncio.wait_for(want.changed.wait(), timeout)
        except TimeoutError:
            return None
        frame = self.latest(instance_id)
        return frame if frame is not None and frame.seq > after else None


PREVIEWS: web.AppKey[PreviewRelay] = web.AppKey("panoflow_previews", PreviewRelay)


def relay_for(app: web.Application) -> PreviewRelay:
    """The relay of ``app`` (created on first use, before the application starts): the device API and the
    console of one server share it."""
    relay = app.get(PREVIEWS)
    if relay is None:
        relay = app[PREVIEWS] = PreviewRelay()
    return relay
