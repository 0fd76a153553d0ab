"""A native panoflow node: counts the frames of every camera and labels each one with its mean colour.

panoflow runs ``main(node)`` on its event loop (the runtime descriptor's entry path is ``native``). Instead of
blocking on each model call, the node starts one task per set of frames and awaits its result, so up to
``in_flight`` sets await the model at once and panoflow's batcher runs them together. Results go out in
arrival order: a second task takes the jobs in the order they were started and waits for each one.
"""

from __future__ import annotations

import json

import anyio
import numpy as np

from panoflow import ops
from panoflow.plugins.native_runner import with_label

MODEL = "colour_model"
SIZE = (64, 64)


class Job:
    """One set of frames on its way through the model."""

    def __init__(self, frames):
        self.frames = frames
        self.done = anyio.Event()
        self.means = None

    async def run(self, node, stats):
        x = ops.batch([ops.hwc_to_nchw(ops.normalize(ops.resize(f.image, SIZE))) for f in self.frames])
        stats["in_flight"] += 1
        stats["peak_in_flight"] = max(stats["peak_in_flight"], stats["in_flight"])
        try:
            mean, _brightness = await node.call({"data": x}, MODEL)
        finally:
            stats["in_flight"] -= 1
        self.means = np.asarray(mean) * 255.0
        self.done.set()


async def deliver(node, jobs, counts, means):
    async with jobs:
        async for job in jobs:
            await job.done.wait()
            out = []
            for frame, (b, g, r) in zip(job.frames, job.means, strict=True):
                n = counts[frame.stream_id] = counts.get(frame.stream_id, 0) + 1
                means.setdefault(frame.stream_id, []).append([float(b), float(g), float(r)])
                out.append(with_label(frame, f"{frame.stream_id} frame {n}: mean BGR {b:.0f} {g:.0f} {r:.0f}",
                                      0.02, 0.06))
            await node.put(out)


async def main(node):
    counts, means = {}, {}
    stats = {"in_flight": 0, "peak_in_flight": 0}
    send, receive = anyio.create_memory_object_stream(max(1, int(node.param("in_flight"))))
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(deliver, node, receive, counts, means)
            async with send:
                async for frames in node.frames("video_in"):
                    fresh = [f for f in frames if not f.is_cached]
                    if fresh:
                        job = Job(fresh)
                        tg.start_soon(job.run, node, stats)
                        await send.send(job)  # waits while `in_flight` jobs are already queued
    finally:
        node.log.info("frames_counted", counts=counts, peak_in_flight=stats["peak_in_flight"])
        summary = {"counts": counts, "means": means, "peak_in_flight": stats["peak_in_flight"]}
        with anyio.CancelScope(shield=True):  # also when the run is cancelled
            await anyio.Path(node.storage_dir / "native_counter.json").write_text(json.dumps(summary))
