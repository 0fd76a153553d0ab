"""A hand-built code node (real inboxes, a fake model) served to panoramasdk over the real wire: the runtime's
:class:`AppServer` in a thread on one end of a socket pair (:class:`serve`), the SDK client bound to the
other, in this process; :class:`Harness` holds the node's inboxes and the model calls it saw."""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from panoflow.core.bus import Inbox
from panoflow.core.frame import Frame
from panoflow.core.ports import CodeNodeIO
from panoflow.plugins.appproc.memory import FramePool
from panoflow.plugins.appproc.server import AppServer
from panoramasdk import _client
from panoramasdk._wire import Channel

CAMERAS = ("cam1", "cam2")


@dataclass
class Harness:
    io: CodeNodeIO
    video: Inbox[Frame]
    hdmi: Inbox[Frame]
    calls: list[tuple[str, Any, float | None]] = field(default_factory=list)
    server: AppServer | None = None

    def sync(self) -> None:
        """Wait until the runtime has taken everything the app sent (puts are not answered; any answer is
        after)."""
        _client.current().request({"op": "hello"})

    def push(self, stream: str = "cam1", seq: int = 0) -> Frame:
        frame = Frame(
            image=np.zeros((8, 10, 3), np.uint8),
            stream_id=stream,
            seq=seq,
            capture_time=(1700000000, 250000),
            stream_uri=f"rtsp://{stream}",
        )
        assert self.video.put(stream, frame)
        return frame


class serve:
    """``with serve(io) as server:`` panoramasdk in this process talks to ``io`` through a real socket."""

    def __init__(self, io: CodeNodeIO):
        self.io = io

    def __enter__(self) -> AppServer:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.pool = FramePool(self.io.node_id)
        self.server = AppServer(self.io, Channel(ours), self.pool)
        self.thread = threading.Thread(target=self.server.serve, daemon=True)
        self.thread.start()
        self.client = _client.Client(theirs)
        self.client.hello()
        _client.bind(self.client)
        return self.server

    def __exit__(self, *exc: object) -> None:
        _client.unbind()
        self.client.channel.close()
        self.thread.join(5)
        self.server.channel.close()
        self.pool.close()
