"""The application boundary: what a frame and a model call cost to cross from the runtime to the app's
process.

    .venv/bin/python benchmarks/app_boundary.py [--frames 300] [--calls 2000] [--size 1080p]

Same run, alternating: the *direct* column uses the runtime's ports in a thread (what the app did when it ran
in panoflow's process); the *wire* column runs the app's side in a child interpreter, as in production,
through the real protocol (``panoramasdk`` client <-> :class:`~panoflow.plugins.appproc.server.AppServer` over
a unix socket pair, frames in shared memory). Times are taken by the app's side of each loop. Per frame:
``get`` + ``put`` of one 1080p BGR frame (the copy into shared memory included). Per call:
``node.call({"data": x}, "model_node")`` with a 1x3x224x224 float32 input and a 1x1000 output, the model
itself a no-op so only the crossing is timed. Targets (issue #13): added latency per frame <= 1 ms at p95,
call overhead <= 0.3 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import machine_line, percentile
from panoflow.core.bus import Inbox
from panoflow.core.frame import Frame
from panoflow.core.ports import CodeNodeIO, MediaInput, MediaOutput
from panoflow.plugins.appproc.memory import FramePool
from panoflow.plugins.appproc.server import AppServer

SIZES = {"720p": (1280, 720), "1080p": (1920, 1080)}
OUTPUT = np.zeros((1, 1000), np.float32)


def _io() -> tuple[CodeNodeIO, Inbox[Frame], Inbox[Frame]]:
    video: Inbox[Frame] = Inbox("code.video_in", "block(4)", ["cam"])
    out: Inbox[Frame] = Inbox("hdmi", "block(4)")
    io = CodeNodeIO(node_id="code_node", inputs={"video_in": MediaInput("video_in", video, ["cam"])},
                    outputs={"video_out": MediaOutput("video_out", [out], "code_node")},
                    call=lambda name, inputs, timeout=None: (OUTPUT,))
    return io, video, out


def _frames(size: tuple[int, int], n: int) -> list[Frame]:
    w, h = size
    images = [np.random.default_rng(i).integers(0, 255, (h, w, 3), np.uint8) for i in range(4)]
    return [Frame(image=images[i % 4], stream_id="cam", seq=i, capture_time=(0, 0)) for i in range(n)]


_CHILD = r"""
import json, sys, time
import numpy as np
import panoramasdk
kind, n = sys.argv[1], int(sys.argv[2])
node = panoramasdk.node()
times = []
if kind == "frames":
    get, put = node.inputs.video_in.get, node.outputs.video_out.put
    for _ in range(n):
        t = time.perf_counter()
        put(get())
        times.append(time.perf_counter() - t)
else:
    x = np.random.default_rng(0).random((1, 3, 224, 224), dtype=np.float32)
    for _ in range(n):
        t = time.perf_counter()
        node.call({"data": x}, "model_node")
        times.append(time.perf_counter() - t)
print(json.dumps(times))
"""


def _in_app_process(io: CodeNodeIO, kind: str, n: int, feed: Callable[[], None] | None = None) -> list[float]:
    """Run the app's side of the loop in a child interpreter (its own GIL, as in production) over the wire."""
    from panoramasdk._wire import Channel

    ours, theirs = socket.socketpair()
    pool = FramePool("bench")
    server = AppServer(io, Channel(ours), pool)
    threading.Thread(target=server.serve, daemon=True).start()
    env = {**os.environ, "PANOFLOW_SDK_FD": str(theirs.fileno()), "PYTHONPATH": str(ROOT / "src")}
    child = subprocess.Popen([sys.executable, "-c", _CHILD, kind, str(n)], pass_fds=[theirs.fileno()],
                             env=env, stdout=subprocess.PIPE, text=True)
    theirs.close()
    if feed is not None:
        feed()
    out, _ = child.communicate(timeout=600)
    ours.close()
    pool.close()
    return [float(t) for t in json.loads(out)]


def frame_loop(size: tuple[int, int], n: int, wire: bool) -> list[float]:
    """Seconds per get+put of one frame, by the app's side."""
    io, video, out = _io()
    frames = _frames(size, n)

    def drain() -> None:
        for _ in frames:
            out.get(timeout=60)

    def feed() -> None:
        threading.Thread(target=drain, daemon=True).start()
        for frame in frames:
            video.put("cam", frame)

    if wire:
        return _in_app_process(io, "frames", n, feed)
    get, put = io.inputs["video_in"].get, io.outputs["video_out"].put  # type: ignore[union-attr]
    threading.Thread(target=feed, daemon=True).start()
    times = []
    for _ in frames:
        t = time.perf_counter()
        put(get())
        times.append(time.perf_counter() - t)
    return times


def call_loop(n: int, wire: bool) -> list[float]:
    io, _, _ = _io()
    if wire:
        return _in_app_process(io, "calls", n)
    x = np.random.default_rng(0).random((1, 3, 224, 224), dtype=np.float32)
    times = []
    for _ in range(n):
        t = time.perf_counter()
        io.call("model_node", {"data": x}, None)
        times.append(time.perf_counter() - t)
    return times


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--size", choices=sorted(SIZES), default="1080p")
    args = ap.parse_args(argv)
    size = SIZES[args.size]
    print(machine_line())
    direct_f, wire_f = [], []
    for _ in range(3):  # alternate, so both see the same machine
        direct_f += frame_loop(size, args.frames // 3, wire=False)
        wire_f += frame_loop(size, args.frames // 3, wire=True)
    direct_c, wire_c = [], []
    for _ in range(3):
        direct_c += call_loop(args.calls // 3, wire=False)
        wire_c += call_loop(args.calls // 3, wire=True)
    ms = 1e3
    print(f"{'what':<34} {'direct p50':>11} {'wire p50':>9} {'direct p95':>11} {'wire p95':>9} "
          f"{'added p95':>10}")
    for what, d, w in ((f"frame get+put ({args.size})", direct_f, wire_f),
                       ("call 1x3x224x224 f32", direct_c, wire_c)):
        dp50, wp50, dp95, wp95 = (percentile(d, 50) * ms, percentile(w, 50) * ms, percentile(d, 95) * ms,
                                  percentile(w, 95) * ms)
        print(f"{what:<34} {dp50:>9.3f}ms {wp50:>7.3f}ms {dp95:>9.3f}ms {wp95:>7.3f}ms {wp95 - dp95:>8.3f}ms")
    print(f"({len(wire_f)} frames, {len(wire_c)} calls, alternating direct/wire runs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
