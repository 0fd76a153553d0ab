"""The ``null`` sink: consumes and counts (benchmarks, headless runs, nothing watching the HDMI output)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

import anyio
import anyio.to_thread

from panoflow.core.bases import MediaSink
from panoflow.core.bus import BusClosed, Inbox
from panoflow.core.frame import Frame
from panoflow.plugins.uri import parse_options

__all__ = ["NullSink"]


class NullSink(MediaSink):
    """Takes every batch and drops it. ``frames`` (total and ``per_stream``) and ``batches`` count them."""

    name = "null"

    def __init__(self, *, node_id: str, options: Mapping[str, Any]):
        super().__init__(node_id=node_id, options=options)
        parse_options(self.options, {}, what=f"null sink {node_id}")
        self.frames = 0
        self.batches = 0
        self.per_stream: Counter[str] = Counter()

    async def run(self, inbox: Inbox[Frame]) -> None:
        # A blocking loop in a thread of its own: waking a worker thread per frame costs far less than waking
        # the event loop per frame (measured: ~15% of 1080p decode throughput on 2 cores).
        await anyio.to_thread.run_sync(self._drain, inbox, abandon_on_cancel=True,
                                       limiter=anyio.CapacityLimiter(1))

    def _drain(self, inbox: Inbox[Frame]) -> None:
        while True:
            try:
                batch = inbox.get_batch()
            except BusClosed:
                return
            self.batches += 1
            self.frames += len(batch)
            self.per_stream.update(batch.keys())
