"""A panoflow sink that writes one JSON line per frame: ``options["path"]`` names the file.

It imports nothing of panoflow but the public facade (``import panoflow``), as any third-party plugin should.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import anyio

import panoflow

__version__ = "0.1.0"


class JsonlSink(panoflow.MediaSink):
    name = "jsonl"

    async def run(self, inbox: panoflow.Inbox[panoflow.Frame]) -> None:
        path = self.options.get("path", "frames.jsonl")
        async with await anyio.open_file(path, "a", encoding="utf-8") as out:  # file I/O in a worker thread
            while True:
                try:
                    batch = await inbox.aget_batch()
                except panoflow.BusClosed:
                    return
                lines = [json.dumps(self.record(frame)) + "\n" for frame in batch.values()]
                await out.writelines(lines)
                await out.flush()

    @staticmethod
    def record(frame: panoflow.Frame) -> dict[str, Any]:
        return {
            "stream_id": frame.stream_id,
            "seq": frame.seq,
            "time_stamp": list(frame.capture_time),
            "size": [frame.width, frame.height],
            "overlays": [{"kind": type(o).__name__.lower(), **dataclasses.asdict(o)} for o in frame.overlays],
        }


@panoflow.hookimpl
def panoflow_media_sinks() -> list[type[panoflow.MediaSink]]:
    return [JsonlSink]
