"""Drive RTSP sources without a runtime: collect frames thread-safely and wait for conditions."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import anyio
import numpy as np

from panoflow.core.frame import Frame
from tests.media import read_index

#: ``python -c PANOFLOW_LAUNCHER ARGS...`` is ``panoflow ARGS...`` with the rtsp plugin registered, also
#: before it joins ``panoflow.plugins.BUILTINS``.
PANOFLOW_LAUNCHER = """
import sys
import panoflow.plugins as plugins
if "panoflow.plugins.rtsp" not in plugins.BUILTINS:
    plugins.BUILTINS = (*plugins.BUILTINS, "panoflow.plugins.rtsp")
from panoflow.cli import main
sys.exit(main(sys.argv[1:]))
"""


class Frames:
    """An ``emit`` keeping every frame (or only the last ``keep`` ones); ``delay`` makes it a slow
    consumer."""

    def __init__(self, *, stop_after: int | None = None, delay: float = 0.0, keep: int | None = None):
        self.frames: list[Frame] = []
        self.count = 0
        self.stop_after = stop_after
        self.delay = delay
        self.keep = keep
        self.times: list[float] = []  # time.monotonic() of each frame (kept like ``frames``)
        self._cond = threading.Condition()

    def __call__(self, frame: Frame) -> bool:
        if self.delay:
            time.sleep(self.delay)
        with self._cond:
            self.frames.append(frame)
            self.times.append(time.monotonic())
            if self.keep is not None and len(self.frames) > self.keep:
                del self.frames[0], self.times[0]
            self.count += 1
            self._cond.notify_all()
            return self.stop_after is None or self.count < self.stop_after

    async def wait(self, predicate: Callable[[Frames], bool], timeout: float) -> None:
        """Wait (polling, so the event loop keeps running) until ``predicate(self)`` holds."""
        with anyio.fail_after(timeout):
            while not predicate(self):
                await anyio.sleep(0.01)

    async def wait_count(self, n: int, timeout: float) -> None:
        await self.wait(lambda f: f.count >= n, timeout)


def mismatches(frames: Sequence[Frame], reference: Sequence[np.ndarray]) -> list[int]:
    """Positions of frames that differ from the reference frame their painted index names."""
    return [i for i, f in enumerate(frames) if not np.array_equal(f.image, reference[read_index(f.image)])]


async def run_source(source: Any, emit: Callable[[Frame], bool], timeout: float) -> None:
    """``source.run(emit)`` bounded by ``timeout`` (it must return on its own before)."""
    with anyio.fail_after(timeout):
        await source.run(emit)
