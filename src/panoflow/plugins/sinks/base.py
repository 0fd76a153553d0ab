"""What the tiling sinks (display, record) share: option parsing and the consume-compose loop."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import anyio
import anyio.to_thread
import numpy as np
import structlog

from panoflow.core.bases import MediaSink
from panoflow.core.bus import BusClosed, Inbox
from panoflow.core.frame import Frame
from panoflow.plugins.uri import Option, parse_options

__all__ = ["TilingSink"]

log = structlog.get_logger(__name__)


class TilingSink(MediaSink):
    """Consumes batches, keeps the newest frame of every stream seen (in order of first appearance: tiles stay
    put) and hands them to :meth:`_process` in a worker thread of its own (one at a time, off the event
    loop)."""

    option_table: ClassVar[Mapping[str, Option]]

    def __init__(self, *, node_id: str, options: Mapping[str, Any]):
        super().__init__(node_id=node_id, options=options)
        self.config = parse_options(self.options, self.option_table, what=f"{self.name} sink {node_id}")
        self._latest: dict[str, Frame] = {}
        self._limiter: anyio.CapacityLimiter | None = None
        #: frames taken from the inbox, and pictures composed from them
        self.frames_in = 0
        self.outputs = 0
        self._log = log.bind(node_id=node_id, sink=self.name)

    @property
    def streams(self) -> tuple[str, ...]:
        """Stream ids in tile order."""
        return tuple(self._latest)

    async def run(self, inbox: Inbox[Frame]) -> None:
        self._limiter = anyio.CapacityLimiter(1)
        try:
            await self._started()
            while True:
                try:
                    batch = await inbox.aget_batch()
                except BusClosed:
                    break
                self._latest.update(batch)
                self.frames_in += len(batch)
                frames = list(self._latest.values())
                result = await anyio.to_thread.run_sync(self._process, frames, limiter=self._limiter)
                self.outputs += 1
                self._processed(result)
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(10):
                await self._finish()
            self._log.info("sink_finished", frames=self.frames_in, outputs=self.outputs)

    async def _started(self) -> None:
        """Called once before the first batch (start servers, ...)."""

    def _process(self, frames: list[Frame]) -> np.ndarray:
        """Per-batch work, in the worker thread: compose (and encode)."""
        raise NotImplementedError

    def _processed(self, result: np.ndarray) -> None:
        """Back on the event loop after :meth:`_process`."""

    async def _finish(self) -> None:
        """Flush and release, shielded from cancellation (bounded by a timeout)."""
